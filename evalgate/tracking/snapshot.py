"""What one sync mirrors, read from the database in one session into plain frozen data (no MLflow here).

    snapshot = load_sweep(sessions, sweep_id)          # the sweep, its candidates and their history
    candidates = load_candidates(sessions, [7, 8])     # candidates registered without a sweep

A candidate carries its finished evaluation runs, its gate decisions and its promotions, each in id
order (oldest first); a sweep also carries the finished base-model runs its candidates were evaluated
beside. Times are milliseconds since the epoch (UTC; SQLite's naive datetimes are taken as UTC).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.models import Candidate, DatasetVersion, EvaluationRun, GateDecision, Promotion, Sweep
from evalgate.db.session import session_scope


@dataclass(frozen=True)
class EvaluationSnapshot:
    """One finished evaluation run: its aggregates and, for a candidate, its paired deltas vs the base."""

    id: int
    dataset: str
    """``NAME@vN`` as the run's summary names it (empty when the summary lacks it)."""
    finished_ms: int
    aggregates: dict[str, dict[str, dict[str, Any]]]
    """``{evaluator: {cohort: {n, mean, ci_low, ci_high, fail_rate, rows}}}``."""
    deltas: dict[str, dict[str, dict[str, Any]]]
    """``{evaluator: {cohort: {n, mean, ci_low, ci_high, unpaired}}}``: candidate minus base, per row."""
    baseline_run_id: int | None


@dataclass(frozen=True)
class DecisionSnapshot:
    """One gate decision and its evidence."""

    id: int
    candidate_run_id: int
    baseline_run_id: int
    verdict: str
    policy_hash: str
    policy: dict[str, Any]
    decided_by: str
    created_at: str
    """ISO 8601, UTC."""
    evidence: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """The decision as JSON-ready data (the artifact's content)."""
        return {
            "decision_id": self.id,
            "verdict": self.verdict,
            "candidate_run_id": self.candidate_run_id,
            "baseline_run_id": self.baseline_run_id,
            "policy_hash": self.policy_hash,
            "policy": self.policy,
            "decided_by": self.decided_by,
            "created_at": self.created_at,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class PromotionSnapshot:
    """A promotion of the candidate; ``current`` when it is the newest promotion of its base model."""

    id: int
    base_model: str
    decision_id: int
    promoted_by: str
    created_at: str
    current: bool


@dataclass(frozen=True)
class CandidateSnapshot:
    """A candidate and everything recorded about it."""

    id: int
    name: str
    sweep_id: int | None
    base_model: str
    learning_rate: float | None
    hyperparameters: dict[str, Any]
    status: str
    diagnosis: str | None
    training: dict[str, Any]
    """Loss (one value per step, step 1 first; None where it was not a number), learning rate per step,
    ``validation_loss`` as ``[step, loss]`` pairs, steps, wall_seconds, tokens_per_second."""
    adapter_uri: str | None
    adapter_hash: str | None
    error: str | None
    created_at: str
    created_ms: int
    evaluations: tuple[EvaluationSnapshot, ...]
    decisions: tuple[DecisionSnapshot, ...]
    promotions: tuple[PromotionSnapshot, ...]


@dataclass(frozen=True)
class SweepSnapshot:
    """A sweep, its candidates (by rate, then name) and the base-model runs they were evaluated beside."""

    id: int
    name: str
    base_model: str
    dataset: str
    """``NAME@vN`` of the dataset version it trained on."""
    config: dict[str, Any]
    config_hash: str
    status: str
    created_at: str
    created_ms: int
    finished_ms: int | None
    candidates: tuple[CandidateSnapshot, ...]
    base_evaluations: tuple[EvaluationSnapshot, ...]


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one, as SQLite returns them, is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def millis(moment: datetime) -> int:
    """Milliseconds since the epoch: ``round(seconds x 1000)``."""
    return round(utc(moment).timestamp() * 1000)


def load_sweep(sessions: sessionmaker[Session], sweep_id: int) -> SweepSnapshot:
    """The sweep with everything recorded about it; ``LookupError`` when there is no such sweep."""
    with session_scope(sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            raise LookupError(f"sweep {sweep_id} not found")
        version = session.get_one(DatasetVersion, sweep.dataset_version_id)
        rows = session.scalars(
            select(Candidate)
            .where(Candidate.sweep_id == sweep_id)
            .order_by(Candidate.learning_rate, Candidate.name)
        ).all()
        candidates = _candidates(session, rows)
        base_ids = {e.baseline_run_id for c in candidates for e in c.evaluations if e.baseline_run_id}
        return SweepSnapshot(
            id=sweep.id,
            name=sweep.name,
            base_model=sweep.base_model,
            dataset=version.label,
            config=dict(sweep.config),
            config_hash=sweep.config_hash,
            status=sweep.status,
            created_at=utc(sweep.created_at).isoformat(),
            created_ms=millis(sweep.created_at),
            finished_ms=millis(sweep.finished_at) if sweep.finished_at is not None else None,
            candidates=candidates,
            base_evaluations=tuple(_finished_runs(session, EvaluationRun.id.in_(base_ids))),
        )


def load_candidates(
    sessions: sessionmaker[Session], candidate_ids: Collection[int]
) -> tuple[CandidateSnapshot, ...]:
    """The candidates (in id order) with everything recorded about them; ``LookupError`` naming the ids
    not found."""
    with session_scope(sessions) as session:
        rows = session.scalars(
            select(Candidate).where(Candidate.id.in_(candidate_ids)).order_by(Candidate.id)
        ).all()
        missing = sorted(set(candidate_ids) - {row.id for row in rows})
        if missing:
            raise LookupError(f"candidate(s) {missing} not found")
        return _candidates(session, rows)


def _candidates(session: Session, rows: Sequence[Candidate]) -> tuple[CandidateSnapshot, ...]:
    """Snapshots of ``rows`` with their runs, decisions and promotions (three queries in all)."""
    ids = [row.id for row in rows]
    evaluations: dict[int, list[EvaluationSnapshot]] = defaultdict(list)
    for candidate_id, run in _finished_runs_of(session, ids):
        evaluations[candidate_id].append(run)
    decisions: dict[int, list[DecisionSnapshot]] = defaultdict(list)
    for decision in session.scalars(
        select(GateDecision).where(GateDecision.candidate_id.in_(ids)).order_by(GateDecision.id)
    ):
        decisions[decision.candidate_id].append(_decision(decision))
    promotions = _promotions(session, ids)
    return tuple(
        CandidateSnapshot(
            id=row.id,
            name=row.name,
            sweep_id=row.sweep_id,
            base_model=row.base_model,
            learning_rate=row.learning_rate,
            hyperparameters=dict(row.hyperparameters or {}),
            status=row.status,
            diagnosis=row.diagnosis,
            training=dict(row.training or {}),
            adapter_uri=row.adapter_uri,
            adapter_hash=row.adapter_hash,
            error=row.error,
            created_at=utc(row.created_at).isoformat(),
            created_ms=millis(row.created_at),
            evaluations=tuple(evaluations[row.id]),
            decisions=tuple(decisions[row.id]),
            promotions=tuple(promotions[row.id]),
        )
        for row in rows
    )


def _finished_runs_of(session: Session, candidate_ids: Sequence[int]) -> list[tuple[int, EvaluationSnapshot]]:
    """``(candidate id, run)`` of every finished run of the candidates, in run id order."""
    query = (
        select(EvaluationRun)
        .where(EvaluationRun.candidate_id.in_(candidate_ids), EvaluationRun.status == "finished")
        .order_by(EvaluationRun.id)
    )
    return [(int(run.candidate_id or 0), _evaluation(run)) for run in session.scalars(query)]


def _finished_runs(session: Session, condition: Any) -> list[EvaluationSnapshot]:
    """Finished base-model runs (no candidate) matching ``condition``, in id order."""
    query = (
        select(EvaluationRun)
        .where(condition, EvaluationRun.candidate_id.is_(None), EvaluationRun.status == "finished")
        .order_by(EvaluationRun.id)
    )
    return [_evaluation(run) for run in session.scalars(query)]


def _evaluation(run: EvaluationRun) -> EvaluationSnapshot:
    summary = run.summary or {}
    baseline = summary.get("baseline_run_id")
    return EvaluationSnapshot(
        id=run.id,
        dataset=str(summary.get("dataset", "")),
        finished_ms=millis(run.finished_at or run.created_at),
        aggregates=dict(summary.get("aggregates") or {}),
        deltas=dict(summary.get("deltas") or {}),
        baseline_run_id=int(baseline) if baseline is not None else None,
    )


def _decision(row: GateDecision) -> DecisionSnapshot:
    return DecisionSnapshot(
        id=row.id,
        candidate_run_id=row.candidate_run_id,
        baseline_run_id=row.baseline_run_id,
        verdict=row.verdict,
        policy_hash=row.policy_hash,
        policy=dict(row.policy),
        decided_by=row.decided_by,
        created_at=utc(row.created_at).isoformat(),
        evidence=dict(row.evidence),
    )


def _promotions(session: Session, candidate_ids: Sequence[int]) -> dict[int, list[PromotionSnapshot]]:
    """The candidates' promotions by candidate id, each marked ``current`` when no later promotion of its
    base model exists (the newest promotion per base model is the baseline)."""
    rows = session.scalars(
        select(Promotion).where(Promotion.candidate_id.in_(candidate_ids)).order_by(Promotion.id)
    ).all()
    query = (
        select(Promotion.base_model, func.max(Promotion.id))
        .where(Promotion.base_model.in_({row.base_model for row in rows}))
        .group_by(Promotion.base_model)
    )
    newest = {base_model: newest_id for base_model, newest_id in session.execute(query)}
    found: dict[int, list[PromotionSnapshot]] = defaultdict(list)
    for row in rows:
        found[row.candidate_id].append(
            PromotionSnapshot(
                id=row.id,
                base_model=row.base_model,
                decision_id=row.decision_id,
                promoted_by=row.promoted_by,
                created_at=utc(row.created_at).isoformat(),
                current=newest.get(row.base_model) == row.id,
            )
        )
    return found
