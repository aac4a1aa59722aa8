"""``--json``: the machine-readable output of the read commands, one JSON document on stdout.

With ``--json`` a command prints exactly one JSON document (UTF-8, indented) on stdout and nothing else:
no table, no progress (progress bars and anything else a command would print go to stderr, with the
warnings). The exit codes are those of the same command without ``--json``; an error prints one line
on stderr, nothing on stdout, and exits 2. Each shape below is a pydantic model, so its JSON Schema is
generated from it (``cli_json_schemas``; ``python -m evalgate.cli.json_output [COMMAND]`` prints them).
Fields are only ever added; timestamps are ISO 8601 strings, hashes full sha256 hex digests.

``evalgate datasets list --json`` (``DatasetList``)::

    {"versions": [{"name", "number", "label", "content_hash", "row_count",
                   "counts": {COHORT: {SPLIT: rows}}, "created_at"}]}

``evalgate datasets show REF --json`` (``DatasetDetail``): one version as above, plus
``"storage_uri"`` and ``"sources": [{"name", "rows"}]``.

``evalgate datasets diff OLD NEW --json`` (``DatasetDiffJson``), as the API's ``/datasets/.../diff``::

    {"old", "new", "added": [ROW_ID], "removed": [ROW_ID], "changed": {ROW_ID: [FIELD]}, "unchanged"}

``evalgate tokens list --json`` (``TokenList``): ``{"tokens": [{"id", "name", "scope", "created_at",
"revoked"}]}`` (never the secret).

``evalgate jobs show ID --json`` (``JobJson``), as the API's ``GET /jobs/{id}``, and ``evalgate jobs
list --json`` (``JobList``: ``{"jobs": [...]}``, newest first)::

    {"id", "kind", "status", "attempts", "max_attempts", "progress": {...}, "log_tail", "error",
     "result": {...} or null, "locked_by", "cancel_requested", "created_at", "updated_at"}

``evalgate gate --json`` (``GateJson``; exit 0 with a recommendation, 1 when every candidate is
blocked)::

    {"sweep_id", "exit_code", "recommended": LABEL or null, "recommended_candidate_id",
     "objective": "EVALUATOR/COHORT", "policy": {"name", "sha256", "inconclusive"},
     "results": PATH, "best": PATH or null,
     "candidates": [{"label", "candidate_id", "verdict": "pass" | "block" | null (not evaluated),
                     "gain", "why_not_recommended", "checks": [CHECK]}]}

    CHECK, as in the checks of ``evalgate ci``'s result.json:
    {"check", "verdict", "reason", "blocking", "interval": [LOW, HIGH] or [], "oriented_delta",
     "margin", "n", "baseline_mean", "candidate_mean", "flips"}

``evalgate evaluate --json`` (``EvaluationJson``): one entry per run, the base model first::

    {"runs": [{"run_id", "candidate_id", "label", "dataset", "dataset_hash", "rows", "generated_rows",
               "cached_rows", "baseline_run_id", "evaluators": {NAME: {"version", "higher_is_better",
               "threshold", ...}},
               "aggregates": {EVALUATOR: {COHORT: {"rows", "n", "mean", "ci_low", "ci_high",
                                                   "fail_rate"}}},
               "deltas": {EVALUATOR: {COHORT: {"n", "mean", "ci_low", "ci_high", "unpaired"}}}}]}

    (``deltas`` is {} and ``baseline_run_id`` null for a base-model run.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from evalgate.ci.result import CHECK_FIELDS, is_failure, verdict_interval
from evalgate.service.views import DatasetVersionView, DiffView, JobView, TokenView

if TYPE_CHECKING:
    from evalgate.evaluation.run import RunResult

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout and nothing else (shapes: evalgate.cli.json_output).",
    ),
]
DIALECT = "https://json-schema.org/draft/2020-12/schema"


class Shape(BaseModel):
    """A documented output shape: built from richer data (extra keys are dropped), so the printed
    document holds exactly the declared fields; its JSON Schema allows no others."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"additionalProperties": False})


# ------------------------------------------------------------------------------------------- datasets


class DatasetVersionJson(DatasetVersionView, Shape):
    """One dataset version."""


class DatasetList(Shape):
    """``evalgate datasets list --json``."""

    versions: list[DatasetVersionJson]


class DatasetSource(Shape):
    """A file the version was imported from."""

    name: str
    rows: int


class DatasetDetail(DatasetVersionJson):
    """``evalgate datasets show REF --json``."""

    storage_uri: str
    sources: list[DatasetSource]


class DatasetDiffJson(DiffView, Shape):
    """``evalgate datasets diff OLD NEW --json``."""


# ---------------------------------------------------------------------------------------- tokens, jobs


class TokenJson(TokenView, Shape):
    """An API token, never its secret."""


class TokenList(Shape):
    """``evalgate tokens list --json``."""

    tokens: list[TokenJson]


class JobJson(JobView, Shape):
    """``evalgate jobs show ID --json``: a background job (sweep, evaluation)."""


class JobList(Shape):
    """``evalgate jobs list --json``."""

    jobs: list[JobJson]


# ------------------------------------------------------------------------------------------------ gate


class GateCheck(Shape):
    """One policy check of a candidate (the check shape of ``evalgate ci``'s result.json)."""

    check: str
    """``EVALUATOR/COHORT``."""
    verdict: str
    """pass, regress, inconclusive, below_floor or too_many_flips."""
    reason: str
    blocking: bool
    interval: list[float]
    """The interval the verdict was tested at (``[low, high]``), ``[]`` when the evidence has none."""
    oriented_delta: float | None
    margin: float | None
    n: int | None
    baseline_mean: float | None
    candidate_mean: float | None
    flips: int | None
    """Rows that pass for the baseline and fail for the candidate."""


class GateCandidate(Shape):
    """One candidate's decision."""

    label: str
    candidate_id: int
    verdict: Literal["pass", "block"] | None
    """None when the candidate was not evaluated (its training failed or diverged)."""
    gain: float | None
    """Its gain on the objective check."""
    why_not_recommended: str | None
    checks: list[GateCheck]


class GatePolicyJson(Shape):
    """The policy the candidates were decided under."""

    name: str
    sha256: str
    inconclusive: str


class GateJson(Shape):
    """``evalgate gate --json``."""

    sweep_id: int
    exit_code: int
    recommended: str | None
    recommended_candidate_id: int | None
    objective: str
    policy: GatePolicyJson
    results: str
    """The rewritten results.csv."""
    best: str | None
    """The recommended trial's runnable sweep config, when there is one."""
    candidates: list[GateCandidate]


# ------------------------------------------------------------------------------------------ evaluation


class Aggregate(Shape):
    """An evaluator's scores on one cohort: mean and bootstrap 95% interval over ``n`` scored rows."""

    rows: int
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    fail_rate: float | None


class Delta(Shape):
    """Paired candidate - base delta and its bootstrap 95% interval."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    unpaired: int


class EvaluationRunJson(Shape):
    """One evaluation run."""

    run_id: int
    candidate_id: int | None
    label: str
    """``base`` or the candidate's name."""
    dataset: str
    dataset_hash: str
    rows: int
    generated_rows: int
    """Answers this command generated."""
    cached_rows: int
    """Answers found in the cache (``rows - generated_rows``)."""
    baseline_run_id: int | None = None
    evaluators: dict[str, dict[str, Any]]
    aggregates: dict[str, dict[str, Aggregate]]
    deltas: dict[str, dict[str, Delta]] = Field(default_factory=dict)


class EvaluationJson(Shape):
    """``evalgate evaluate --json``."""

    runs: list[EvaluationRunJson]


COMMAND_SHAPES: dict[str, type[Shape]] = {
    "datasets list": DatasetList,
    "datasets show": DatasetDetail,
    "datasets diff": DatasetDiffJson,
    "tokens list": TokenList,
    "jobs show": JobJson,
    "jobs list": JobList,
    "gate": GateJson,
    "evaluate": EvaluationJson,
}
"""Command -> the shape its ``--json`` prints."""


def cli_json_schemas() -> dict[str, dict[str, Any]]:
    """Command -> JSON Schema (draft 2020-12) of its ``--json`` document."""
    return {
        command: {"$schema": DIALECT, **shape.model_json_schema(mode="serialization"), "title": command}
        for command, shape in COMMAND_SHAPES.items()
    }


def gate_check(check: Mapping[str, Any], inconclusive_blocks: bool) -> GateCheck:
    """A check's evidence (``{"check", "verdict", "reason", ...}``) in the result.json check shape."""
    return GateCheck(
        check=check["check"],
        verdict=check["verdict"],
        reason=check["reason"],
        blocking=is_failure(check, inconclusive_blocks),
        interval=list(verdict_interval(check) or []),
        **{name: check.get(name) for name in CHECK_FIELDS},
    )


def evaluation_run(result: RunResult) -> EvaluationRunJson:
    """A run's JSON from its stored summary (``evalgate.evaluation.run``); ``generated_rows`` counts the
    answers this command generated, ``cached_rows`` the rest."""
    rows = int(result.summary.get("rows", 0))
    return EvaluationRunJson.model_validate(
        {
            **result.summary,
            "run_id": result.run_id,
            "candidate_id": result.candidate_id,
            "label": result.label,
            "generated_rows": result.generated_rows,
            "cached_rows": rows - result.generated_rows,
        }
    )


def emit(document: Shape) -> None:
    """Print ``document`` as the command's one JSON document on stdout."""
    sys.stdout.write(document.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()


@contextmanager
def stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While enabled, whatever the work prints on stdout (tables, progress) goes to stderr instead, so
    stdout holds the JSON document alone."""
    if not enabled:
        yield
        return
    with redirect_stdout(sys.stderr):
        yield


def main(argv: list[str] | None = None) -> int:
    """Print the JSON Schema of one command's ``--json`` document, or of every command's."""
    args = sys.argv[1:] if argv is None else argv
    schemas = cli_json_schemas()
    command = " ".join(args)
    if command and command not in schemas:
        sys.stderr.write(f"error: no --json shape for {command!r}; one of: {', '.join(schemas)}\n")
        return 2
    sys.stdout.write(json.dumps(schemas[command] if command else schemas, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
