"""The gate as a service: decide a candidate against its baseline, list decisions, promote.

    decide_candidate(sessions, candidate_id=7, policy=policy)      # -> StoredDecision
    promote(sessions, candidate_id=7, promoted_by="ci-token")      # only after a passing decision

The baseline is, by default, the candidate last promoted for the same base model (its latest finished
run on the same dataset version), else the base model's run the candidate was evaluated beside.
Deciding is idempotent: the same candidate run, baseline run and policy return the stored decision
instead of appending an identical one (decisions are deterministic, and never changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from evalgate.db.locks import serialised
from evalgate.db.models import Candidate, EvaluationRun, GateDecision, Promotion
from evalgate.db.session import read_scope, session_scope
from evalgate.gate.decide import GateRefusal
from evalgate.gate.policy import GatePolicy
from evalgate.gate.records import add_decision, decide_runs

BASELINE_CHOICES = ("auto", "base", "promoted")


class PromotionRefused(ValueError):
    """The candidate may not become the baseline (its latest decision is not a pass)."""


@dataclass(frozen=True)
class StoredDecision:
    """A stored gate decision and its evidence."""

    id: int
    candidate_id: int
    candidate_run_id: int
    baseline_run_id: int
    verdict: str
    policy_hash: str
    evidence: dict[str, Any]
    decided_by: str
    created_at: datetime
    reused: bool = False
    """True when an identical earlier decision was returned instead of deciding again."""


@dataclass(frozen=True)
class PromotionInfo:
    """A promotion: which candidate is now the baseline of which base model."""

    id: int
    base_model: str
    candidate_id: int
    decision_id: int
    promoted_by: str
    created_at: datetime


def decide_candidate(
    sessions: sessionmaker[Session],
    candidate_id: int,
    policy: GatePolicy,
    *,
    baseline: str | int = "auto",
    decided_by: str = "",
) -> StoredDecision:
    """Decide the candidate's latest finished run against ``baseline`` (a choice or a run id); store it.

    Idempotent: the same runs and policy return the stored decision. Two identical requests racing
    each other store one decision: the insert re-checks under a lock on (runs, policy hash).
    """
    with read_scope(sessions) as session:  # one autocommit session for the lookups: the stored path is hot
        run_id, baseline_run_id = _chosen_runs(session, candidate_id, baseline)
        existing = _find_decision(session, run_id, baseline_run_id, policy.sha256)
    if existing is not None:
        return existing
    decision = decide_runs(sessions, run_id, baseline_run_id, policy)
    with serialised(sessions, "decision", run_id, baseline_run_id, policy.sha256) as session:
        existing = _find_decision(session, run_id, baseline_run_id, policy.sha256)
        if existing is not None:
            return existing
        decision_id = add_decision(
            session, candidate_id, run_id, baseline_run_id, policy, decision, decided_by=decided_by
        )
    return get_decision(sessions, decision_id)


def get_decision(sessions: sessionmaker[Session], decision_id: int) -> StoredDecision:
    """One stored decision; ``LookupError`` when there is none with this id."""
    with read_scope(sessions) as session:
        row = session.get(GateDecision, decision_id)
        if row is None:
            raise LookupError(f"decision {decision_id} not found")
        return _stored(row)


def list_decisions(
    sessions: sessionmaker[Session], candidate_id: int | None = None, limit: int = 100
) -> list[StoredDecision]:
    """Decisions, newest first (optionally of one candidate)."""
    query = select(GateDecision).order_by(GateDecision.id.desc()).limit(limit)
    if candidate_id is not None:
        query = query.where(GateDecision.candidate_id == candidate_id)
    with session_scope(sessions) as session:
        return [_stored(row) for row in session.scalars(query)]


def promote(sessions: sessionmaker[Session], candidate_id: int, promoted_by: str = "") -> PromotionInfo:
    """Make the candidate the baseline of its base model; ``PromotionRefused`` unless its latest
    decision is a pass."""
    with session_scope(sessions) as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise LookupError(f"candidate {candidate_id} not found")
        latest = session.scalars(
            select(GateDecision)
            .where(GateDecision.candidate_id == candidate_id)
            .order_by(GateDecision.id.desc())
            .limit(1)
        ).first()
        if latest is None:
            raise PromotionRefused(f"candidate {candidate_id} has no gate decision: decide it first")
        if latest.verdict != "pass":
            blocking = [c["check"] for c in latest.evidence.get("checks", []) if c.get("verdict") != "pass"]
            raise PromotionRefused(
                f"candidate {candidate_id}'s latest decision {latest.id} is {latest.verdict} "
                f"(checks not passing: {', '.join(blocking) or '-'})"
            )
        row = Promotion(
            base_model=candidate.base_model,
            candidate_id=candidate_id,
            decision_id=latest.id,
            promoted_by=promoted_by,
        )
        session.add(row)
        session.flush()
        return _promotion(row)


def current_baseline(sessions: sessionmaker[Session], base_model: str) -> PromotionInfo | None:
    """The latest promotion for ``base_model`` (None: the base model itself is the baseline)."""
    with session_scope(sessions) as session:
        return _current_baseline(session, base_model)


def _current_baseline(session: Session, base_model: str) -> PromotionInfo | None:
    row = session.scalars(
        select(Promotion).where(Promotion.base_model == base_model).order_by(Promotion.id.desc()).limit(1)
    ).first()
    return _promotion(row) if row is not None else None


@dataclass(frozen=True)
class _Standing:
    """What choosing a candidate's runs needs, read in one statement (``_standing``)."""

    base_model: str
    run_id: int | None
    """The candidate's latest finished run."""
    base_run_id: int | None
    """The base-model run that ``run_id`` was evaluated beside (its summary's ``baseline_run_id``)."""
    promoted_id: int | None
    """The candidate of the latest promotion for ``base_model``."""
    promoted_run_id: int | None
    """``promoted_id``'s latest finished run on ``run_id``'s dataset version."""


def _standing_query() -> Select[Any]:
    """The SELECT of correlated subqueries behind ``_standing`` (built once: the candidate is a bound
    parameter, so each call reuses the compiled statement)."""
    latest, of_version, promoted_run = (aliased(EvaluationRun) for _ in range(3))
    run_id = _newest_finished(latest, latest.candidate_id == Candidate.id)
    version_id = (
        select(of_version.dataset_version_id)
        .where(of_version.id == run_id)
        .correlate(Candidate)
        .scalar_subquery()
    )
    promoted_id = (
        select(Promotion.candidate_id)
        .where(Promotion.base_model == Candidate.base_model)
        .order_by(Promotion.id.desc())
        .limit(1)
        .correlate(Candidate)
        .scalar_subquery()
    )
    base_run_id = (
        select(EvaluationRun.summary["baseline_run_id"].as_integer())
        .where(EvaluationRun.id == run_id)
        .correlate(Candidate)
        .scalar_subquery()
    )
    promoted_run_id = _newest_finished(
        promoted_run, promoted_run.candidate_id == promoted_id, promoted_run.dataset_version_id == version_id
    )
    columns = (Candidate.base_model, run_id, base_run_id, promoted_id, promoted_run_id)
    return select(*columns).where(Candidate.id == bindparam("candidate_id"))


def _standing(session: Session, candidate_id: int) -> _Standing:
    """The candidate's ``_Standing``, in one round trip instead of four (the stored-decision path is
    hot); ``LookupError`` when there is no such candidate."""
    row = session.execute(_STANDING, {"candidate_id": candidate_id}).first()
    if row is None:
        raise LookupError(f"candidate {candidate_id} not found")
    return _Standing(*row)


def _newest_finished(run: Any, *conditions: Any) -> Any:
    """The id of the newest finished run of the alias ``run`` meeting ``conditions`` (a subquery; the
    candidate it names is the enclosing query's, however deep it is nested)."""
    return (
        select(run.id)
        .where(run.status == "finished", *conditions)
        .order_by(run.id.desc())
        .limit(1)
        .correlate(Candidate)
        .scalar_subquery()
    )


_STANDING = _standing_query()


def _chosen_runs(session: Session, candidate_id: int, baseline: str | int) -> tuple[int, int]:
    """(candidate run, baseline run): the candidate's latest finished run, and an explicit run id, the
    promoted candidate's run on the same dataset version, or the base-model run beside it."""
    if not isinstance(baseline, int) and baseline not in BASELINE_CHOICES:
        raise ValueError(f"baseline must be a run id or one of {BASELINE_CHOICES}, got {baseline!r}")
    standing = _standing(session, candidate_id)
    run_id = standing.run_id
    if run_id is None:
        raise GateRefusal(f"candidate {candidate_id} has no finished evaluation run: evaluate it first")
    if isinstance(baseline, int):
        return run_id, _finished_run(session, baseline).id
    promoted = None if baseline == "base" else standing.promoted_id
    if promoted is None or promoted == candidate_id:
        if baseline == "promoted":
            raise GateRefusal(f"no other candidate of {standing.base_model} has been promoted")
        if standing.base_run_id is None:
            raise GateRefusal(f"evaluation run {run_id} has no base-model run beside it")
        return run_id, standing.base_run_id
    if standing.promoted_run_id is None:
        raise GateRefusal(
            f"the promoted baseline (candidate {promoted}) has no finished evaluation on the dataset "
            f"version of run {run_id}: evaluate it there first"
        )
    return run_id, standing.promoted_run_id


def _finished_run(session: Session, run_id: int) -> EvaluationRun:
    run = session.get(EvaluationRun, run_id)
    if run is None:
        raise LookupError(f"evaluation run {run_id} not found")
    if run.status != "finished":
        raise GateRefusal(f"evaluation run {run_id} is {run.status}, not finished")
    return run


def _find_decision(
    session: Session, run_id: int, baseline_run_id: int, policy_hash: str
) -> StoredDecision | None:
    row = session.scalars(
        select(GateDecision)
        .where(
            GateDecision.candidate_run_id == run_id,
            GateDecision.baseline_run_id == baseline_run_id,
            GateDecision.policy_hash == policy_hash,
        )
        .order_by(GateDecision.id)
        .limit(1)
    ).first()
    return _stored(row, reused=True) if row is not None else None


def _stored(row: GateDecision, reused: bool = False) -> StoredDecision:
    return StoredDecision(
        id=row.id,
        candidate_id=row.candidate_id,
        candidate_run_id=row.candidate_run_id,
        baseline_run_id=row.baseline_run_id,
        verdict=row.verdict,
        policy_hash=row.policy_hash,
        evidence=row.evidence,
        decided_by=row.decided_by,
        created_at=row.created_at,
        reused=reused,
    )


def _promotion(row: Promotion) -> PromotionInfo:
    return PromotionInfo(
        row.id, row.base_model, row.candidate_id, row.decision_id, row.promoted_by, row.created_at
    )
