"""Gate decisions from stored evaluation runs: load score tables, decide, store, recommend.

    evalgate gate --sweep 1 --policy examples/policy.yaml

Each candidate of the sweep is compared with the base-model run its latest finished evaluation run
was paired with (``summary.baseline_run_id``). Decisions are appended to ``gate_decision`` with their
evidence, policy and policy hash; an existing decision is never changed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.models import Candidate, EvaluationRun, GateDecision, RowScore
from evalgate.db.queries import latest_finished_run
from evalgate.db.session import session_scope
from evalgate.evaluation.pseudo_evaluators import OOD_KL
from evalgate.gate.decide import Decision, ScoreTable, decide
from evalgate.gate.policy import GatePolicy
from evalgate.gate.selection import CandidateOutcome, Recommendation, recommend

ZERO_BASELINE = (OOD_KL,)
"""Signals measured against the base model itself: the base run has none, its value is 0 per row."""


@dataclass(frozen=True)
class SweepVerdicts:
    """Every candidate's decision (None when it was not evaluated) and the recommendation."""

    decisions: dict[str, tuple[int, Decision | None]]
    """label -> (candidate id, decision)."""
    recommendation: Recommendation


def gate_sweep(sessions: sessionmaker[Session], sweep_id: int, policy: GatePolicy) -> SweepVerdicts:
    """Decide every candidate of ``sweep_id`` against its baseline run, store the decisions, recommend."""
    outcomes, decisions = [], {}
    for candidate_id, label, status, run_id in _sweep_runs(sessions, sweep_id):
        decision = None
        if run_id is not None:
            baseline_id = base_run_of(sessions, run_id)
            decision = decide_runs(sessions, run_id, baseline_id, policy)
            with session_scope(sessions) as session:
                add_decision(session, candidate_id, run_id, baseline_id, policy, decision)
        decisions[label] = (candidate_id, decision)
        outcomes.append(CandidateOutcome(label, decision, status))
    return SweepVerdicts(decisions, recommend(policy, outcomes))


def base_run_of(sessions: sessionmaker[Session], run_id: int) -> int:
    """The base-model run that candidate run ``run_id`` was evaluated beside."""
    baseline_id = _summary(sessions, run_id).get("baseline_run_id")
    if baseline_id is None:
        raise ValueError(
            f"evaluation run {run_id} has no baseline run: evaluate the candidate, not the base model"
        )
    return int(baseline_id)


def decide_runs(
    sessions: sessionmaker[Session], candidate_run_id: int, baseline_run_id: int, policy: GatePolicy
) -> Decision:
    """The decision for candidate run against baseline run (a base-model run or a promoted candidate's)."""
    summary = _summary(sessions, candidate_run_id)
    candidate = score_table(sessions, candidate_run_id)
    baseline = score_table(sessions, baseline_run_id, zero_for=candidate)
    directions = {name: bool(info["higher_is_better"]) for name, info in summary["evaluators"].items()}
    return decide(policy, candidate, baseline, directions)


def score_table(
    sessions: sessionmaker[Session], run_id: int, zero_for: ScoreTable | None = None
) -> ScoreTable:
    """A run's scored rows as a ``ScoreTable``; with ``zero_for``, zero-baseline signals are filled in."""
    summary = _summary(sessions, run_id)
    scores: dict[tuple[str, str], dict[str, tuple[float, bool | None]]] = defaultdict(dict)
    versions: dict[str, str] = {}
    with session_scope(sessions) as session:
        rows = session.execute(
            select(RowScore.evaluator, RowScore.cohort, RowScore.row_id, RowScore.score, RowScore.passed,
                   RowScore.evaluator_version)
            .where(RowScore.evaluation_run_id == run_id, RowScore.score.is_not(None))
        ).all()  # fmt: skip
    for evaluator, cohort, row_id, value, passed, version in rows:
        if value is None:
            continue
        scores[(evaluator, cohort)][row_id] = (float(value), passed)
        versions[evaluator] = version
    if zero_for is not None:
        for (evaluator, cohort), candidate_rows in zero_for.scores.items():
            if evaluator in ZERO_BASELINE and (evaluator, cohort) not in scores:
                scores[(evaluator, cohort)] = {row: (0.0, True) for row in candidate_rows}
                versions[evaluator] = zero_for.evaluator_versions[evaluator]
    return ScoreTable(str(summary.get("dataset_hash", "")), dict(scores), versions)


def _summary(sessions: sessionmaker[Session], run_id: int) -> dict[str, Any]:
    with session_scope(sessions) as session:
        run = session.get(EvaluationRun, run_id)
        if run is None or run.status != "finished":
            raise ValueError(f"evaluation run {run_id} is missing or not finished")
        return dict(run.summary)


def _sweep_runs(sessions: sessionmaker[Session], sweep_id: int) -> list[tuple[int, str, str, int | None]]:
    """(candidate id, label, status, latest finished run id or None) for each candidate, by rate."""
    with session_scope(sessions) as session:
        candidates = session.scalars(
            select(Candidate).where(Candidate.sweep_id == sweep_id).order_by(Candidate.learning_rate)
        ).all()
        if not candidates:
            raise ValueError(f"sweep {sweep_id} has no candidates")
        result = []
        for candidate in candidates:
            run = latest_finished_run(session, candidate.id)
            result.append((candidate.id, candidate.name, candidate.status, run.id if run else None))
        return result


def add_decision(
    session: Session,
    candidate_id: int,
    run_id: int,
    baseline_run_id: int,
    policy: GatePolicy,
    decision: Decision,
    decided_by: str = "",
) -> int:
    """Add the decision row to ``session`` (flushed, not committed); returns its id."""
    row = GateDecision(
        candidate_id=candidate_id,
        baseline_run_id=baseline_run_id,
        candidate_run_id=run_id,
        policy=policy.to_dict(),
        policy_hash=policy.sha256,
        verdict=decision.verdict,
        evidence=decision.evidence,
        decided_by=decided_by,
    )
    session.add(row)
    session.flush()
    return row.id
