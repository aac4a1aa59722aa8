"""The rows behind a delta: per-row oriented deltas of a candidate run against its baseline run, with
the prompt (from the dataset version's files) and both answers (from the generation cache).

For one evaluator x cohort, rows scored in both runs are paired and ``delta = s x (candidate - base)``
with ``s = +1`` for higher-is-better evaluators and ``-1`` otherwise; zero-baseline signals (``ood_kl``)
use 0 for the base. The worst rows are the most negative deltas (ties broken by row id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.data.store_files import read_verified_split
from evalgate.db.models import Candidate, DatasetVersion, EvaluationRun, GateDecision, Generation, RowScore
from evalgate.db.queries import latest_finished_run
from evalgate.db.session import session_scope
from evalgate.gate.records import ZERO_BASELINE
from evalgate.report.model import CandidateRows, WorstRow

UNAVAILABLE = "(prompt unavailable: dataset file missing or modified)"


@dataclass(frozen=True)
class RowDelta:
    """One paired row: both scores and the oriented delta."""

    row_id: str
    candidate_score: float
    base_score: float | None
    delta: float


def higher_is_better(summary: dict[str, Any], evaluator: str) -> bool:
    """The evaluator's direction as recorded in a run summary (default: higher is better)."""
    info = summary.get("evaluators", {}).get(evaluator, {})
    return bool(info.get("higher_is_better", True)) if isinstance(info, dict) else True


def row_deltas(
    session: Session, run_id: int, baseline_run_id: int | None, evaluator: str, cohort: str
) -> list[RowDelta]:
    """Paired per-row oriented deltas of ``evaluator/cohort``, most negative first."""
    summary = session.get_one(EvaluationRun, run_id).summary
    sign = 1.0 if higher_is_better(summary, evaluator) else -1.0
    candidate = _scores(session, run_id, evaluator, cohort)
    if evaluator in ZERO_BASELINE:
        base: dict[str, float] = dict.fromkeys(candidate, 0.0)
    else:
        base = _scores(session, baseline_run_id, evaluator, cohort) if baseline_run_id else {}
    paired = [
        RowDelta(row, value, base[row], sign * (value - base[row])) for row, value in candidate.items()
        if row in base
    ]  # fmt: skip
    return sorted(paired, key=lambda item: (item.delta, item.row_id))


def worst_rows(
    session: Session,
    run_id: int,
    baseline_run_id: int | None,
    checks: Sequence[tuple[str, str]],
    limit: int,
    source: PromptSource | None = None,
) -> list[WorstRow]:
    """Up to ``limit`` rows with a negative oriented delta per (evaluator, cohort), with prompts (from
    ``source``, shared across calls to read each dataset file once) and answers."""
    picked = [
        (evaluator, cohort, item)
        for evaluator, cohort in checks
        for item in row_deltas(session, run_id, baseline_run_id, evaluator, cohort)[:limit]
        if item.delta < 0
    ]
    ids = {item.row_id for _, _, item in picked}
    run = session.get_one(EvaluationRun, run_id)
    prompts = (source or PromptSource(session)).prompts(run.dataset_version_id, ids)
    answers = _answers(session, run_id, ids)
    base_answers = _answers(session, baseline_run_id, ids) if baseline_run_id else {}
    return [
        WorstRow(
            row_id=item.row_id,
            evaluator=evaluator,
            cohort=cohort,
            prompt=prompts.get(item.row_id, UNAVAILABLE),
            base_answer=base_answers.get(item.row_id),
            candidate_answer=answers.get(item.row_id),
            base_score=item.base_score,
            candidate_score=item.candidate_score,
            delta=item.delta,
        )
        for evaluator, cohort, item in picked
    ]


class PromptSource:
    """Prompts of dataset rows: ``question`` (and ``context``, when present), read from a version's
    hash-verified split files, each file at most once per instance, the eval split first. Rows of an
    unreadable or modified file are left out."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._tables: dict[tuple[int, str], pa.Table | None] = {}

    def prompts(self, version_id: int, ids: Iterable[str]) -> dict[str, str]:
        """row id -> prompt for the ``ids`` found in version ``version_id``."""
        wanted = set(ids)
        found: dict[str, str] = {}
        version = self._session.get_one(DatasetVersion, version_id)
        for split in sorted(version.files, key=lambda name: (name != "eval", name)):
            missing = sorted(wanted - found.keys())
            table = self._table(version, split) if missing else None
            if table is None or "id" not in table.column_names:
                continue
            for row in table.filter(pc.is_in(table["id"], value_set=pa.array(missing))).to_pylist():
                found[str(row["id"])] = _prompt(row)
        return found

    def _table(self, version: DatasetVersion, split: str) -> pa.Table | None:
        key = (version.id, split)
        if key not in self._tables:
            try:
                self._tables[key] = read_verified_split(version.storage_uri, version.files[split])
            except (OSError, RuntimeError, ValueError):
                self._tables[key] = None
        return self._tables[key]


def _prompt(row: dict[str, Any]) -> str:
    question = str(row.get("question") or "")
    context = str(row.get("context") or "")
    return f"{question}\n\n{context}" if context else question


def _scores(session: Session, run_id: int | None, evaluator: str, cohort: str) -> dict[str, float]:
    """row id -> score of one run's evaluator x cohort (unscored rows left out)."""
    if run_id is None:
        return {}
    found = session.execute(
        select(RowScore.row_id, RowScore.score).where(
            RowScore.evaluation_run_id == run_id,
            RowScore.evaluator == evaluator,
            RowScore.cohort == cohort,
            RowScore.score.is_not(None),
        )
    ).all()
    return {row: float(score) for row, score in found if score is not None}


def _answers(session: Session, run_id: int | None, ids: set[str]) -> dict[str, str]:
    """The cached answers of a run (``summary.generation_key``) for ``ids``; {} without a key."""
    if run_id is None or not ids:
        return {}
    key = session.get_one(EvaluationRun, run_id).summary.get("generation_key")
    if not key:
        return {}
    found = session.execute(
        select(Generation.row_id, Generation.output).where(
            Generation.cache_key == key, Generation.row_id.in_(sorted(ids))
        )
    ).all()
    return {row: output for row, output in found}


def candidate_rows_view(
    sessions: sessionmaker[Session], candidate_id: int, evaluator: str, cohort: str, limit: int = 50
) -> CandidateRows:
    """Worst rows of ``evaluator/cohort`` for the candidate's decided run (its latest decision), else its
    latest finished run against that run's baseline; ``LookupError`` for an unknown candidate."""
    with session_scope(sessions) as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise LookupError(f"candidate {candidate_id} not found")
        run_id, baseline_id = _runs_of(session, candidate_id)
        if run_id is None:
            return CandidateRows(
                candidate.id, candidate.name, candidate.sweep_id, evaluator, cohort, None, None, 0, 0, [], []
            )
        deltas = row_deltas(session, run_id, baseline_id, evaluator, cohort)
        available = session.execute(
            select(RowScore.evaluator, RowScore.cohort).where(RowScore.evaluation_run_id == run_id).distinct()
        ).all()
        return CandidateRows(
            candidate.id, candidate.name, candidate.sweep_id, evaluator, cohort, run_id, baseline_id,
            len(deltas), sum(1 for d in deltas if d.delta < 0),
            worst_rows(session, run_id, baseline_id, [(evaluator, cohort)], limit),
            sorted((str(e), str(c)) for e, c in available),
        )  # fmt: skip


def _runs_of(session: Session, candidate_id: int) -> tuple[int | None, int | None]:
    """(candidate run, baseline run) of the latest decision, else of the latest finished run."""
    decision = session.scalars(
        select(GateDecision).where(GateDecision.candidate_id == candidate_id).order_by(GateDecision.id.desc())
    ).first()
    if decision is not None:
        return decision.candidate_run_id, decision.baseline_run_id
    run = latest_finished_run(session, candidate_id)
    if run is None:
        return None, None
    baseline = run.summary.get("baseline_run_id")
    return run.id, int(baseline) if baseline is not None else None
