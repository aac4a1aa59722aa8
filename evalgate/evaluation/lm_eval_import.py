"""lm-evaluation-harness output as evaluation runs: standard benchmarks as out-of-domain evidence.

    lm_eval --model hf --model_args pretrained=M --tasks T --output_path out --log_samples
    evalgate import lm-eval out --model base --dataset suite@v1
    lm_eval --model hf --model_args pretrained=M,peft=ADAPTER --tasks T --output_path out2 --log_samples
    evalgate import lm-eval out2 --model 7 --dataset suite@v1        # candidate 7, paired with the base

lm-eval's ``--log_samples`` folder holds ``results_<date>.json`` (aggregates, task versions, metric
directions, the model's arguments) and, per task, ``samples_<task>_<date>.jsonl``: one JSON record per
document and filter with ``doc_id``, ``doc``, ``target``, ``filtered_resps``, ``filter``, ``metrics``
(the names of the per-document metrics) and each metric's value (``acc``, ``exact_match``, ...).

One import stores one finished evaluation run of the model on a dataset version (which names where the
evidence is kept; the rows scored are lm-eval's documents, not the version's rows):

- cohort ``lmeval_<task>``; row id ``<task>:<doc_id>``;
- evaluator: the metric name (``acc``), or ``<metric>,<filter>`` for a filter other than ``none``
  (``exact_match,strict-match``), as lm-eval names its aggregates;
- score: the metric's per-document value; direction from the results file's ``higher_is_better``
  (higher is better when it says nothing); ``passed`` is ``score == 1`` when every value of that
  evaluator in that task is 0 or 1, else None.

A candidate's run is paired, as ``evalgate evaluate`` pairs it, with a base-model lm-eval import on the
same dataset version and of the same tasks (the newest one from the same ``pretrained`` model, or the
run given): the summary gets ``baseline_run_id`` and ``deltas`` (mean of ``candidate_i - base_i`` per
evaluator x cohort, rows paired by row id, ``aggregate.delta_table``), so the gate decides benchmark
forgetting with a check such as ``{evaluator: acc, cohort: lmeval_arc_easy}``.

The files are read and checked whole, then the run, its per-row scores and its summary are written in
one transaction: any bad input (``LmEvalImportError`` naming the file, line and key) stores nothing.
No torch here: reading scores needs none.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.base import utcnow
from evalgate.db.models import Candidate, Dataset, DatasetVersion, EvaluationRun, RowScore
from evalgate.db.session import session_scope
from evalgate.evaluation.aggregate import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    ScoreRecord,
    delta_table,
    summarise,
)

SOURCE = "lm-eval"
"""``summary.source`` and ``decoding.source`` of an imported run."""
COHORT_PREFIX = "lmeval_"
NO_FILTER = "none"
RESULTS_PATTERN = re.compile(r"^results_(?P<date>.+)\.json$")
SAMPLE_FIELDS = frozenset(
    {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics"}
    | {"doc_hash", "prompt_hash", "target_hash"}
)
"""The keys of a sample record that are not metrics (older records have no ``metrics`` list)."""
MAX_COHORT, MAX_ROW_ID, MAX_EVALUATOR, MAX_VERSION = 100, 200, 100, 50
"""Column widths of ``row_score`` (cohort, row_id, evaluator, evaluator_version)."""
DETAIL_CHARS = 2000
"""Longest target or response text kept in a row's detail."""


class LmEvalImportError(ValueError):
    """lm-eval output that cannot be imported; the message names the file, line and key."""


@dataclass(frozen=True)
class TaskInfo:
    """One lm-eval task of the output: its version, metric directions and documents."""

    name: str
    version: str
    higher_is_better: Mapping[str, bool]
    samples_file: str
    docs: int


@dataclass(frozen=True)
class ImportedScore:
    """One document's value of one metric."""

    row_id: str
    cohort: str
    evaluator: str
    metric: str
    task: str
    score: float
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class LmEvalOutput:
    """Everything read from one lm-eval ``--log_samples`` output (checked, not yet stored)."""

    folder: Path
    results_file: Path
    model: str
    model_args: dict[str, Any]
    config: dict[str, Any]
    tasks: dict[str, TaskInfo]
    scores: list[ImportedScore] = field(default_factory=list)
    lm_eval_version: str | None = None

    @property
    def pretrained(self) -> str | None:
        """The ``pretrained`` model argument (the base model), when given."""
        value = self.model_args.get("pretrained")
        return None if value is None else str(value)


@dataclass(frozen=True)
class ImportedRun:
    """A stored import: the run's id, whose it is, and its summary."""

    run_id: int
    candidate_id: int | None
    label: str
    summary: dict[str, Any]


# ------------------------------------------------------------------------------------------ the files


def read_output(folder: Path) -> LmEvalOutput:
    """Read and check the newest lm-eval run in ``folder`` (or in its one model subfolder).

    Raises ``LmEvalImportError`` for a missing folder, no results or samples files, a line that is
    not JSON, a record without ``doc_id``, a metric that is not a finite number, a repeated document
    or a task whose documents do not match the results file's ``n-samples``.
    """
    results_file, date = _results_file(Path(folder))
    results = _read_json(results_file)
    config = _mapping(results.get("config", {}), results_file, "config")
    tasks: dict[str, TaskInfo] = {}
    scores: list[ImportedScore] = []
    for task, samples_file in _samples_files(results_file, date, results).items():
        info, task_scores = _read_task(task, samples_file, results, results_file)
        tasks[task] = info
        scores.extend(task_scores)
    return LmEvalOutput(
        folder=results_file.parent,
        results_file=results_file,
        model=str(config.get("model", "")),
        model_args=model_arguments(config.get("model_args"), results_file),
        config=config,
        tasks=tasks,
        scores=scores,
        lm_eval_version=None if results.get("lm_eval_version") is None else str(results["lm_eval_version"]),
    )


def _results_file(folder: Path) -> tuple[Path, str]:
    """The newest ``results_<date>.json`` in ``folder``, else in its single subfolder that has one
    (lm-eval writes into ``<output_path>/<model name>/``); and its date."""
    if not folder.is_dir():
        raise LmEvalImportError(f"{folder}: no such folder")
    found = _dated_results(folder)
    if not found:
        holders = sorted(sub for sub in folder.iterdir() if sub.is_dir() and _dated_results(sub))
        if len(holders) > 1:
            names = ", ".join(str(sub) for sub in holders)
            raise LmEvalImportError(f"{folder}: several models' lm-eval results ({names}): give one folder")
        found = _dated_results(holders[0]) if holders else []
    if not found:
        deeper = sorted({str(path.parent) for path in folder.rglob("results_*.json")})
        if deeper:
            raise LmEvalImportError(
                f"{folder}: lm-eval results lie deeper, in {', '.join(deeper[:5])}: give one"
            )
        samples = "" if any(folder.rglob("samples_*.jsonl")) else " and no samples_*.jsonl"
        raise LmEvalImportError(
            f"{folder}: no lm-eval results_*.json{samples} (run lm_eval with --output_path and --log_samples)"
        )
    date, path = max(found)
    return path, date


def _dated_results(folder: Path) -> list[tuple[str, Path]]:
    matches = ((RESULTS_PATTERN.match(path.name), path) for path in folder.glob("results_*.json"))
    return [(match["date"], path) for match, path in matches if match]


def _samples_files(results_file: Path, date: str, results: Mapping[str, Any]) -> dict[str, Path]:
    """``{task: samples file}`` of the run dated ``date``; every task of ``configs`` must have one."""
    pattern = re.compile(rf"^samples_(?P<task>.+)_{re.escape(date)}\.jsonl$")
    files = {
        match["task"]: path
        for path in sorted(results_file.parent.glob("samples_*.jsonl"))
        if (match := pattern.match(path.name))
    }
    if not files:
        raise LmEvalImportError(
            f"{results_file.parent}: no samples_<task>_{date}.jsonl beside {results_file.name} "
            "(run lm_eval with --log_samples)"
        )
    configs = _mapping(results.get("configs", {}), results_file, "configs")
    missing = sorted(set(configs) - set(files))
    if missing:
        raise LmEvalImportError(
            f"{results_file}: no samples file for task {missing[0]!r} "
            f"(expected samples_{missing[0]}_{date}.jsonl)"
        )
    return files


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise LmEvalImportError(f"{path}: cannot be read ({error})") from None
    except json.JSONDecodeError as error:
        raise LmEvalImportError(f"{path}, line {error.lineno}: not JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise LmEvalImportError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _mapping(value: Any, path: Path, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LmEvalImportError(f"{path}: key {key!r} is {type(value).__name__}, expected an object")
    return value


def model_arguments(value: Any, path: Path) -> dict[str, Any]:
    """lm-eval's ``model_args``: ``"pretrained=M,peft=A"`` or an object, as a dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise LmEvalImportError(f"{path}: key 'config.model_args' is {type(value).__name__}")
    pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
    bad = [item[0] for item in pairs if len(item) != 2]
    if bad:
        raise LmEvalImportError(f"{path}: key 'config.model_args': {bad[0]!r} is not KEY=VALUE")
    return {key.strip(): val.strip() for key, val in pairs}


def _read_task(
    task: str, path: Path, results: Mapping[str, Any], results_file: Path
) -> tuple[TaskInfo, list[ImportedScore]]:
    """One task's samples file as scores, checked against the results file."""
    cohort = COHORT_PREFIX + task
    if len(cohort) > MAX_COHORT:
        raise LmEvalImportError(f"{path}: task name {task!r} is too long (cohort over {MAX_COHORT} chars)")
    directions = _directions(task, results, results_file)
    scores: list[ImportedScore] = []
    seen: set[tuple[str, str]] = set()
    docs: set[str] = set()
    fallback = _fallback_metrics(task, results)
    for line, record in _records(path):
        record_scores = _record_scores(task, record, path, line, fallback)
        docs.add(f"{task}:{record['doc_id']}")
        for score in record_scores:
            if (score.evaluator, score.row_id) in seen:
                raise LmEvalImportError(
                    f"{path}, line {line}: doc_id {record['doc_id']!r} repeated for {score.evaluator!r}"
                )
            seen.add((score.evaluator, score.row_id))
            scores.append(score)
    _check_count(task, len(docs), results, results_file, path)
    info = TaskInfo(task, _task_version(task, results), directions, path.name, len(docs))
    return info, scores


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line of a samples file."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as error:
                    raise LmEvalImportError(f"{path}, line {number}: not JSON ({error.msg})") from None
                if not isinstance(record, dict):
                    raise LmEvalImportError(f"{path}, line {number}: expected a JSON object")
                yield number, record
    except UnicodeDecodeError as error:
        raise LmEvalImportError(f"{path}: not UTF-8 text ({error.reason})") from None


def _fallback_metrics(task: str, results: Mapping[str, Any]) -> list[str]:
    """Metric names of ``task`` from the results file (``"acc,none"`` -> acc), for records that
    carry no ``metrics`` list."""
    table = results.get("results")
    entry = table.get(task) if isinstance(table, dict) else None
    names = {key.split(",", 1)[0] for key in entry if "," in key} if isinstance(entry, dict) else set()
    return sorted(name for name in names if not name.endswith("_stderr"))


def _record_scores(
    task: str, record: Mapping[str, Any], path: Path, line: int, fallback: Sequence[str]
) -> list[ImportedScore]:
    """The per-document metric values of one sample record."""
    doc_id = record.get("doc_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, int | str) or doc_id == "":
        raise LmEvalImportError(f"{path}, line {line}: key 'doc_id' missing or not an integer or string")
    row_id = f"{task}:{doc_id}"
    if len(row_id) > MAX_ROW_ID:
        raise LmEvalImportError(f"{path}, line {line}: row id {row_id[:40]!r}... over {MAX_ROW_ID} chars")
    filter_name = str(record.get("filter") or NO_FILTER)
    metrics = record.get("metrics")
    if metrics is None:
        metrics = [name for name in fallback if name in record and name not in SAMPLE_FIELDS]
    if not isinstance(metrics, list) or not all(isinstance(name, str) for name in metrics):
        raise LmEvalImportError(f"{path}, line {line}: key 'metrics' is not a list of names")
    detail = _detail(task, doc_id, filter_name, record)
    return [
        ImportedScore(
            row_id=row_id,
            cohort=COHORT_PREFIX + task,
            evaluator=evaluator_name(metric, filter_name),
            metric=metric,
            task=task,
            score=_number(record, metric, path, line),
            detail=detail,
        )
        for metric in metrics
    ]


def evaluator_name(metric: str, filter_name: str) -> str:
    """``acc`` for filter ``none``, else ``<metric>,<filter>`` (lm-eval's aggregate key)."""
    name = metric if filter_name == NO_FILTER else f"{metric},{filter_name}"
    if len(name) > MAX_EVALUATOR:
        raise LmEvalImportError(f"metric {name[:40]!r}... is over {MAX_EVALUATOR} chars")
    return name


def _number(record: Mapping[str, Any], metric: str, path: Path, line: int) -> float:
    if metric not in record:
        raise LmEvalImportError(f"{path}, line {line}: metric {metric!r} is listed but has no value")
    value = record[metric]
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not math.isfinite(value):
        shown = json.dumps(value, default=str)[:60]
        raise LmEvalImportError(
            f"{path}, line {line}: metric {metric!r} is {shown}, not a finite number "
            "(lm-eval metrics aggregated over the corpus, such as f1 or bleu, have no per-document score)"
        )
    return float(value)


def _detail(task: str, doc_id: Any, filter_name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """What a row's score came from: the task, document, filter, target and filtered response."""
    return {
        "source": SOURCE,
        "task": task,
        "doc_id": doc_id,
        "filter": filter_name,
        "target": _text(record.get("target")),
        "response": _text(record.get("filtered_resps")),
    }


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text[:DETAIL_CHARS]


def _directions(task: str, results: Mapping[str, Any], results_file: Path) -> dict[str, bool]:
    """``{metric: higher is better}`` of ``task`` from the results file."""
    table = _mapping(results.get("higher_is_better", {}), results_file, "higher_is_better")
    entry = _mapping(table.get(task, {}), results_file, f"higher_is_better.{task}")
    for metric, value in entry.items():
        if not isinstance(value, bool):
            raise LmEvalImportError(
                f"{results_file}: key 'higher_is_better.{task}.{metric}' is not true/false"
            )
    return dict(entry)


def _task_version(task: str, results: Mapping[str, Any]) -> str:
    versions = results.get("versions", {})
    value = versions.get(task) if isinstance(versions, dict) else None
    return "none" if value is None else str(value)


def _check_count(task: str, docs: int, results: Mapping[str, Any], results_file: Path, path: Path) -> None:
    """The samples file must hold as many documents as the results file says the task scored."""
    counts = results.get("n-samples")
    entry = counts.get(task) if isinstance(counts, dict) else None
    effective = entry.get("effective") if isinstance(entry, dict) else None
    if isinstance(effective, int) and effective != docs:
        raise LmEvalImportError(
            f"{path}: {docs} documents, but {results_file.name} says task {task!r} scored {effective} "
            "(key 'n-samples.effective'): the samples file is incomplete or from another run"
        )


# ------------------------------------------------------------------------------------------ the store


def import_lm_eval(
    folder: Path,
    *,
    model: str,
    dataset: str,
    settings: Settings,
    baseline_run_id: int | None = None,
    seed: int = 0,
) -> ImportedRun:
    """Store the lm-eval output in ``folder`` as one finished run of ``model`` (``base`` or a candidate
    id) on ``dataset`` (``NAME@vN``); a candidate's run is paired with a base-model import (module
    docstring). All or nothing: on any error nothing is stored."""
    output = read_output(folder)
    candidate_id = parse_model(model)
    if candidate_id is None and "peft" in output.model_args:
        raise LmEvalImportError(
            f"{output.results_file}: model_args has peft={output.model_args['peft']} (an adapter): "
            "import it with --model <candidate id>"
        )
    if candidate_id is None and baseline_run_id is not None:
        raise LmEvalImportError("--baseline-run pairs a candidate's import: not with --model base")
    store = DatasetStore.from_settings(settings)
    version = store.get(dataset)
    records = score_records(output)
    with session_scope(store.sessions) as session:
        version_id = session.scalars(
            select(DatasetVersion.id)
            .join(Dataset)
            .where(Dataset.name == version.name, DatasetVersion.number == version.number)
        ).one()
        label = "base" if candidate_id is None else _candidate_name(session, candidate_id)
        baseline = None
        if candidate_id is not None:
            baseline = _baseline(session, output, version_id, baseline_run_id)
            _check_paired(records, baseline[1], baseline[0])
        summary = _summary(output, version.label, version.content_hash, records, baseline, seed)
        run_id = _store(session, output, candidate_id, version_id, summary)
    return ImportedRun(run_id, candidate_id, label, summary)


def parse_model(model: str) -> int | None:
    """``base`` -> None; a candidate id -> that id."""
    text = model.strip()
    if text == "base":
        return None
    if not text.isdigit():
        raise LmEvalImportError(f"--model {model!r}: give 'base' or a candidate id")
    return int(text)


def score_records(output: LmEvalOutput) -> list[ScoreRecord]:
    """The output's scores as aggregation records; ``passed`` is ``score == 1`` where every value of
    the evaluator in the task is 0 or 1, else None."""
    binary = _binary_groups(output.scores)
    return [
        ScoreRecord(
            s.evaluator,
            s.cohort,
            s.row_id,
            s.score,
            (s.score == 1.0) if (s.evaluator, s.cohort) in binary else None,
        )
        for s in output.scores
    ]


def _binary_groups(scores: Sequence[ImportedScore]) -> set[tuple[str, str]]:
    values: dict[tuple[str, str], set[float]] = defaultdict(set)
    for s in scores:
        values[(s.evaluator, s.cohort)].add(s.score)
    return {key for key, seen in values.items() if seen <= {0.0, 1.0}}


def _candidate_name(session: Session, candidate_id: int) -> str:
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise LmEvalImportError(f"--model {candidate_id}: no candidate with id {candidate_id}")
    return candidate.name


def _baseline(
    session: Session, output: LmEvalOutput, version_id: int, run_id: int | None
) -> tuple[int, list[ScoreRecord]]:
    """The base-model import to pair with: ``run_id``, else the newest on the same dataset version, of
    the same tasks and from the same ``pretrained`` model; its id and records."""
    tasks = sorted(output.tasks)
    if run_id is not None:
        run = session.get(EvaluationRun, run_id)
        problem = _not_a_baseline(run, version_id, tasks)
        if problem:
            raise LmEvalImportError(f"--baseline-run {run_id}: {problem}")
        assert run is not None
        return run.id, _run_records(session, run.id)
    runs = session.scalars(
        select(EvaluationRun)
        .where(
            EvaluationRun.candidate_id.is_(None),
            EvaluationRun.dataset_version_id == version_id,
            EvaluationRun.status == "finished",
        )
        .order_by(EvaluationRun.id.desc())
    )
    for run in runs:
        imported = run.summary.get("lm_eval", {})
        same_model = output.pretrained is None or imported.get("pretrained") in (None, output.pretrained)
        if not _not_a_baseline(run, version_id, tasks) and same_model:
            return run.id, _run_records(session, run.id)
    raise LmEvalImportError(
        f"no base-model lm-eval import of tasks {', '.join(tasks)} from {output.pretrained or 'this model'} "
        "on this dataset version to pair with: import the base model's lm-eval output first "
        "(--model base), or name one with --baseline-run"
    )


def _not_a_baseline(run: EvaluationRun | None, version_id: int, tasks: list[str]) -> str | None:
    """Why ``run`` cannot be a candidate import's baseline (None when it can)."""
    if run is None:
        return "no such evaluation run"
    if run.status != "finished" or run.candidate_id is not None:
        return "not a finished base-model run"
    if run.summary.get("source") != SOURCE:
        return "not an lm-eval import"
    if run.dataset_version_id != version_id:
        return "on another dataset version"
    theirs = sorted(run.summary.get("lm_eval", {}).get("tasks", {}))
    if theirs != tasks:
        return f"of tasks {', '.join(theirs)}, not {', '.join(tasks)}"
    return None


def _run_records(session: Session, run_id: int) -> list[ScoreRecord]:
    found = session.execute(
        select(RowScore.evaluator, RowScore.cohort, RowScore.row_id, RowScore.score, RowScore.passed)
        .where(RowScore.evaluation_run_id == run_id)
        .order_by(RowScore.evaluator, RowScore.row_id)
    ).all()
    return [ScoreRecord(*values) for values in found]


def _check_paired(records: Sequence[ScoreRecord], base: Sequence[ScoreRecord], base_run_id: int) -> None:
    """Candidate and base must score the same documents with the same metrics (same tasks, limit)."""
    ours = {(r.evaluator, r.cohort, r.row_id) for r in records}
    theirs = {(r.evaluator, r.cohort, r.row_id) for r in base}
    if ours != theirs:
        only_ours, only_base = sorted(ours - theirs), sorted(theirs - ours)
        raise LmEvalImportError(
            f"cannot pair with base run {base_run_id}: {len(only_ours)} scores only in this import "
            f"{[f'{e}/{r}' for e, _, r in only_ours[:3]]}, {len(only_base)} only in the base "
            f"{[f'{e}/{r}' for e, _, r in only_base[:3]]} (run both with the same tasks and --limit)"
        )


def _summary(
    output: LmEvalOutput,
    dataset: str,
    dataset_hash: str,
    records: list[ScoreRecord],
    baseline: tuple[int, list[ScoreRecord]] | None,
    seed: int,
) -> dict[str, Any]:
    """The run's summary, shaped as ``evalgate evaluate`` shapes it, plus what was imported."""
    summary: dict[str, Any] = {
        "source": SOURCE,
        "dataset": dataset,
        "dataset_hash": dataset_hash,
        "seed": seed,
        "resamples": DEFAULT_RESAMPLES,
        "confidence": DEFAULT_CONFIDENCE,
        "rows": len({r.row_id for r in records}),
        "generated_rows": 0,
        "evaluators": _evaluators(output),
        "aggregates": summarise(records, seed=seed, resamples=DEFAULT_RESAMPLES),
        "lm_eval": _provenance(output),
    }
    if baseline is not None:
        base_run_id, base_records = baseline
        deltas = delta_table(records, base_records, seed=seed, resamples=DEFAULT_RESAMPLES)
        summary["baseline_run_id"] = base_run_id
        summary["deltas"] = deltas
        summary["ood_delta"] = {name: cohorts["ood"] for name, cohorts in deltas.items() if "ood" in cohorts}
    return summary


def _evaluators(output: LmEvalOutput) -> dict[str, dict[str, Any]]:
    """``{evaluator: {version, higher_is_better, source, task_versions}}``; the version is the task
    version when all tasks of the evaluator share one, else a hash of them (it must match the base's)."""
    tasks_of: dict[str, dict[str, str]] = defaultdict(dict)
    directions: dict[str, set[bool]] = defaultdict(set)
    for s in output.scores:
        info = output.tasks[s.task]
        tasks_of[s.evaluator][s.task] = info.version
        directions[s.evaluator].add(bool(info.higher_is_better.get(s.metric, True)))
    described = {}
    for evaluator, versions in sorted(tasks_of.items()):
        if len(directions[evaluator]) > 1:
            raise LmEvalImportError(
                f"{output.results_file}: higher_is_better of {evaluator!r} differs between its tasks"
            )
        described[evaluator] = {
            "version": evaluator_version(versions),
            "higher_is_better": directions[evaluator].pop(),
            "source": SOURCE,
            "task_versions": dict(sorted(versions.items())),
        }
    return described


def evaluator_version(task_versions: Mapping[str, str]) -> str:
    """``lm-eval/<version>`` when every task has the same version, else ``lm-eval/<sha256[:16]>`` of
    the sorted ``task=version`` pairs; at most 50 characters."""
    distinct = set(task_versions.values())
    text = distinct.pop() if len(distinct) == 1 else ""
    if not text or len(text) > MAX_VERSION - len("lm-eval/"):
        canonical = json.dumps(dict(sorted(task_versions.items())))
        text = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return f"lm-eval/{text}"


def _provenance(output: LmEvalOutput) -> dict[str, Any]:
    """Where the run came from: folder, results file, model, arguments, lm-eval version, tasks."""
    return {
        "folder": str(output.folder),
        "results_file": output.results_file.name,
        "model": output.model,
        "model_args": _json_ready(output.model_args),
        "pretrained": output.pretrained,
        "lm_eval_version": output.lm_eval_version,
        "limit": _json_ready(output.config.get("limit")),
        "tasks": {
            name: {"version": info.version, "docs": info.docs, "samples_file": info.samples_file}
            for name, info in sorted(output.tasks.items())
        },
    }


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _store(
    session: Session,
    output: LmEvalOutput,
    candidate_id: int | None,
    version_id: int,
    summary: dict[str, Any],
) -> int:
    """Add the finished run and its per-row scores to ``session`` (committed with it); its id."""
    decoding = {"source": SOURCE, "model": output.model, "model_args": _json_ready(output.model_args)}
    run = EvaluationRun(
        candidate_id=candidate_id,
        dataset_version_id=version_id,
        model_fingerprint=_fingerprint(output),
        decoding=decoding,
        status="finished",
        summary=summary,
        finished_at=utcnow(),
    )
    session.add(run)
    session.flush()
    versions = {name: info["version"] for name, info in summary["evaluators"].items()}
    passed = {(r.evaluator, r.row_id): r.passed for r in score_records(output)}
    session.add_all(
        RowScore(
            evaluation_run_id=run.id,
            row_id=s.row_id,
            cohort=s.cohort,
            evaluator=s.evaluator,
            evaluator_version=versions[s.evaluator],
            score=s.score,
            passed=passed[(s.evaluator, s.row_id)],
            detail=dict(s.detail),
        )
        for s in output.scores
    )
    session.flush()
    return run.id


def _fingerprint(output: LmEvalOutput) -> str:
    """sha256 of the lm-eval model name and its canonical model arguments."""
    canonical = json.dumps(
        {"model": output.model, "model_args": _json_ready(output.model_args)}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
