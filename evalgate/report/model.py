"""The view model of a sweep report: plain frozen data, built by ``evalgate.report.sweep``, drawn by
the templates in ``evalgate/report/templates/``. Every delta here is *oriented*: ``+`` is an improvement,
whatever the evaluator's direction (``sign x (candidate - baseline)``, ``sign = -1`` for lower-is-better).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

PASSING = "pass"
BLOCKING_CHECK_VERDICTS = ("regress", "below_floor", "too_many_flips")
"""Check verdicts that block whatever the policy says about inconclusive checks."""
STOPPED_TEXT = "stopped early"
"""How a candidate that successive halving stopped (status ``stopped``) is shown."""


def verdict_tone(verdict: str | None) -> str:
    """CSS class of a check verdict: pass, regress (any blocking verdict), inconclusive, or neutral
    (no check)."""
    if verdict is None:
        return "neutral"
    if verdict == PASSING:
        return "pass"
    return "regress" if verdict in BLOCKING_CHECK_VERDICTS else "inconclusive"


@dataclass(frozen=True)
class Estimate:
    """An oriented mean delta and its 95% interval (None where unknown)."""

    mean: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class CheckCell:
    """One evaluator x cohort delta of one candidate; ``verdict`` None when no policy check covers it."""

    evaluator: str
    cohort: str
    estimate: Estimate
    verdict: str | None = None
    reason: str = ""
    margin: float | None = None
    n: int | None = None

    @property
    def label(self) -> str:
        """``evaluator/cohort``."""
        return f"{self.evaluator}/{self.cohort}"

    @property
    def tone(self) -> str:
        """CSS class: pass, regress, inconclusive, or neutral (no check)."""
        return verdict_tone(self.verdict)


@dataclass(frozen=True)
class WorstRow:
    """One eval row where the candidate did worse than its baseline (most negative oriented delta)."""

    row_id: str
    evaluator: str
    cohort: str
    prompt: str
    base_answer: str | None
    candidate_answer: str | None
    base_score: float | None
    candidate_score: float
    delta: float


@dataclass(frozen=True)
class CandidateView:
    """One candidate of a sweep: training, evaluation deltas, gate verdict, worst rows."""

    id: int
    label: str
    rate: float | None
    status: str
    diagnosis: str | None
    diagnosis_reason: str
    losses: tuple[float, ...]
    verdict: str | None
    """pass, block, or None (no gate decision yet)."""
    decision_id: int | None
    run_id: int | None
    baseline_run_id: int | None
    cells: tuple[CheckCell, ...] = ()
    objective: Estimate | None = None
    ood: Estimate | None = None
    reason: str = ""
    """Why it was not recommended (empty for the recommended one)."""
    worst_rows: tuple[WorstRow, ...] = ()
    hyperparameters: Mapping[str, object] = field(default_factory=dict)
    """The trial's rate, schedule, warmup, final fraction, LoRA rank and alpha (empty when registered)."""
    halted: str = ""
    """Why successive halving stopped it ("" when it trained to the end)."""

    @property
    def status_text(self) -> str:
        """The training status as shown: ``stopped early`` for one successive halving stopped."""
        return STOPPED_TEXT if self.status == "stopped" else self.status

    def hyperparameter(self, name: str) -> str:
        """The value of hyperparameter ``name`` as shown: a number in ``%g`` form, a dash when absent."""
        value = self.hyperparameters.get(name)
        if value is None:
            return "\N{EN DASH}"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def cell(self, label: str) -> CheckCell | None:
        """The cell of ``evaluator/cohort``, if this candidate has it."""
        return next((cell for cell in self.cells if cell.label == label), None)

    @property
    def plottable(self) -> bool:
        """True when the trade-off chart can place it: it has both an objective and an ood delta."""
        return self.objective is not None and self.ood is not None


@dataclass(frozen=True)
class SweepView:
    """Everything one sweep report shows."""

    id: int
    name: str
    status: str
    base_model: str
    dataset: str
    """``name@vN`` of the sweep's dataset version."""
    dataset_name: str
    candidates: tuple[CandidateView, ...]
    objective_check: str | None
    """``evaluator/cohort`` whose gain ranks passing candidates (y axis of the trade-off chart)."""
    ood_check: str | None
    """``evaluator/cohort`` of the policy's first out-of-domain check (x axis)."""
    ood_margin: float | None
    """δ of the ood check (the dashed line sits at -δ)."""
    recommended: str | None
    policy_name: str | None = None
    policy_hash: str | None = None
    decided: bool = False
    """True when at least one candidate has a gate decision."""
    fail_rates: FailRates | None = None
    """The per-cohort eval-fail rates of the baseline and each evaluated candidate."""

    @property
    def hyperparameter_names(self) -> list[str]:
        """Every hyperparameter any candidate has, in first-seen order (columns of the candidates table)."""
        return list(dict.fromkeys(name for c in self.candidates for name in c.hyperparameters))

    @property
    def labels(self) -> list[str]:
        """Every evaluator/cohort shown in the delta table, checks first, in a stable order."""
        cells = [cell for candidate in self.candidates for cell in candidate.cells]
        checked = {cell.label for cell in cells if cell.verdict is not None}
        return sorted({cell.label for cell in cells}, key=lambda label: (label not in checked, label))


Counts = dict[tuple[str, str], tuple[int, int]]
"""One run's (evaluator, cohort) -> (failed, judged) rows."""


@dataclass(frozen=True)
class FailRateRow:
    """One evaluator x cohort of the eval-fail-rate matrix: per column, the share of judged rows below the
    evaluator's threshold (``passed`` False) in [0, 1], lower is better; None where the column's run has
    no judged row there. ``n`` is the judged row count per column (0 where none)."""

    evaluator: str
    cohort: str
    rates: tuple[float | None, ...]
    n: tuple[int, ...]

    @property
    def label(self) -> str:
        """``evaluator/cohort``."""
        return f"{self.evaluator}/{self.cohort}"

    @property
    def rows(self) -> int:
        """The row count shown once per line: the first column's that has judged rows."""
        return next((count for count in self.n if count), 0)


@dataclass(frozen=True)
class FailRates:
    """The per-cohort eval-fail-rate matrix: ``columns`` are the baseline then each candidate; one row
    per evaluator x cohort that any of their runs judged. Rows whose score is None (not applicable) are
    not judged."""

    columns: tuple[str, ...]
    rows: tuple[FailRateRow, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``{"columns": [...], "rows": [{"evaluator", "cohort", "fail_rate": {column: rate},
        "n": {column: count}}]}``."""
        return {
            "columns": list(self.columns),
            "rows": [
                {
                    "evaluator": row.evaluator,
                    "cohort": row.cohort,
                    "fail_rate": dict(zip(self.columns, row.rates, strict=True)),
                    "n": dict(zip(self.columns, row.n, strict=True)),
                }
                for row in self.rows
            ],
        }


def fail_rate_matrix(
    columns: Sequence[tuple[str, Mapping[tuple[str, str], tuple[int, int]] | None]],
) -> FailRates:
    """The matrix from, per column (label, ``{(evaluator, cohort): (failed, judged)}`` or None for a
    column without a run), in column order; rows sorted by cohort then evaluator."""
    keys = sorted({key for _, counts in columns if counts for key in counts}, key=lambda k: (k[1], k[0]))
    rows = []
    for evaluator, cohort in keys:
        cells = [(counts or {}).get((evaluator, cohort), (0, 0)) for _, counts in columns]
        rates = tuple(failed / judged if judged else None for failed, judged in cells)
        rows.append(FailRateRow(evaluator, cohort, rates, tuple(judged for _, judged in cells)))
    return FailRates(tuple(label for label, _ in columns), tuple(rows))


# ------------------------------------------------------------------ dashboard lists and drill-downs


@dataclass(frozen=True)
class SweepRow:
    """One line of the sweep list."""

    id: int
    name: str
    status: str
    base_model: str
    dataset: str
    dataset_name: str
    candidates: int
    recommended: str | None
    created_at: datetime


@dataclass(frozen=True)
class DatasetRow:
    """One line of the dataset list: versions and decisions made on them."""

    name: str
    versions: int
    decisions: int
    passes: int
    latest: datetime | None


@dataclass(frozen=True)
class HistoryCheck:
    """One check of one decision, and what it was in the series' previous decision."""

    verdict: str
    delta: float | None
    previous: str | None

    @property
    def new_regression(self) -> bool:
        """Passed in the previous decision, blocks now."""
        return self.previous == PASSING and self.verdict in BLOCKING_CHECK_VERDICTS

    @property
    def changed(self) -> bool:
        """Differs from the previous decision (which had this check)."""
        return self.previous is not None and self.previous != self.verdict


@dataclass(frozen=True)
class HistoryEntry:
    """One decision in a series."""

    decision_id: int
    created_at: datetime
    candidate_id: int
    sweep_id: int | None
    sweep_name: str
    version: str
    verdict: str
    checks: dict[str, HistoryCheck] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetHistory:
    """Decision series of one dataset and the union of their check labels."""

    name: str
    labels: list[str]
    series: dict[str, list[HistoryEntry]]
    """``base_model · candidate name`` -> decisions, oldest first."""


@dataclass(frozen=True)
class CandidateRows:
    """The drill-down of one candidate and check: its worst rows and how many rows got worse."""

    candidate_id: int
    label: str
    sweep_id: int | None
    evaluator: str
    cohort: str
    run_id: int | None
    baseline_run_id: int | None
    paired: int
    worse: int
    rows: list[WorstRow]
    available: list[tuple[str, str]]
    """(evaluator, cohort) pairs scored in the candidate's run."""
