"""Across sweeps: the sweep list, datasets with their decision counts, and one dataset's decision
history (for the dashboard).

A dataset's history is every gate decision whose candidate run was on one of its versions, grouped
into series by candidate (base model and name, e.g. ``lr=0.0001``: the same rate retrained each week),
oldest first. Decisions repeating the same candidate run, baseline run and policy are shown once (the
latest). Each check's verdict is compared with the same check in the series' previous decision: a
check that passed before and now blocks (regress, below_floor, too_many_flips) is a *new regression*.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.models import Candidate, Dataset, DatasetVersion, EvaluationRun, GateDecision, Sweep
from evalgate.db.session import session_scope
from evalgate.report.model import (
    PASSING,
    DatasetHistory,
    DatasetRow,
    HistoryCheck,
    HistoryEntry,
    SweepRow,
)
from evalgate.report.sweep import latest_recommendation


def sweep_rows(sessions: sessionmaker[Session], limit: int = 200) -> list[SweepRow]:
    """The newest sweeps with their dataset, candidate count and current recommendation."""
    with session_scope(sessions) as session:
        sweeps = session.scalars(select(Sweep).order_by(Sweep.id.desc()).limit(limit)).all()
        counted = session.execute(select(Candidate.sweep_id, func.count()).group_by(Candidate.sweep_id)).all()
        counts = {sweep_id: int(n) for sweep_id, n in counted}
        rows = []
        for sweep in sweeps:
            version = session.get_one(DatasetVersion, sweep.dataset_version_id)
            rows.append(
                SweepRow(
                    id=sweep.id,
                    name=sweep.name,
                    status=sweep.status,
                    base_model=sweep.base_model,
                    dataset=f"{version.dataset.name}@v{version.number}",
                    dataset_name=version.dataset.name,
                    candidates=int(counts.get(sweep.id, 0)),
                    recommended=latest_recommendation(session, sweep.id),
                    created_at=sweep.created_at,
                )
            )
        return rows


def dataset_rows(sessions: sessionmaker[Session]) -> list[DatasetRow]:
    """Every dataset, with its version count and the decisions made on its versions."""
    with session_scope(sessions) as session:
        found = session.execute(
            select(Dataset.name, func.count(func.distinct(DatasetVersion.id)), func.count(GateDecision.id),
                   func.coalesce(func.sum(case((GateDecision.verdict == PASSING, 1), else_=0)), 0),
                   func.max(GateDecision.created_at))
            .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
            .outerjoin(EvaluationRun, EvaluationRun.dataset_version_id == DatasetVersion.id)
            .outerjoin(GateDecision, GateDecision.candidate_run_id == EvaluationRun.id)
            .group_by(Dataset.name)
            .order_by(Dataset.name)
        ).all()  # fmt: skip
        return [DatasetRow(name, int(v), int(d), int(p), latest) for name, v, d, p, latest in found]


def dataset_history(sessions: sessionmaker[Session], name: str) -> DatasetHistory:
    """Every decision on ``name``'s versions as series per candidate; ``LookupError`` if unknown."""
    with session_scope(sessions) as session:
        if session.scalar(select(Dataset.id).where(Dataset.name == name)) is None:
            raise LookupError(f"dataset {name!r} not found")
        found = session.execute(
            select(GateDecision, Candidate, DatasetVersion.number, Sweep.name)
            .join(Candidate, Candidate.id == GateDecision.candidate_id)
            .join(EvaluationRun, EvaluationRun.id == GateDecision.candidate_run_id)
            .join(DatasetVersion, DatasetVersion.id == EvaluationRun.dataset_version_id)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
            .outerjoin(Sweep, Sweep.id == Candidate.sweep_id)
            .where(Dataset.name == name)
            .order_by(GateDecision.id)
        ).all()
        latest: dict[tuple[int, int, str], tuple[GateDecision, Candidate, int, str | None]] = {}
        for decision, candidate, number, sweep_name in found:
            key = (decision.candidate_run_id, decision.baseline_run_id, decision.policy_hash)
            latest.pop(key, None)  # re-inserted: keeps the order of the latest repeat
            latest[key] = (decision, candidate, number, sweep_name)
        series: dict[str, list[HistoryEntry]] = defaultdict(list)
        labels: dict[str, None] = {}
        for decided, owner, version_number, sweep_label in latest.values():
            entries = series[f"{owner.base_model} · {owner.name}"]
            entry = _entry(
                decided, owner, f"{name}@v{version_number}", sweep_label, entries[-1] if entries else None
            )
            entries.append(entry)
            labels.update(dict.fromkeys(entry.checks))
        return DatasetHistory(name, list(labels), dict(series))


def _entry(
    decision: GateDecision,
    candidate: Candidate,
    version: str,
    sweep_name: str | None,
    previous: HistoryEntry | None,
) -> HistoryEntry:
    """One decision with each check compared against the previous decision of its series."""
    checks = {}
    for check in decision.evidence.get("checks", []):
        label = str(check.get("check"))
        before = previous.checks.get(label) if previous else None
        delta = check.get("oriented_delta")
        checks[label] = HistoryCheck(
            str(check.get("verdict")),
            float(delta) if delta is not None else None,
            before.verdict if before else None,
        )
    return HistoryEntry(
        decision.id, decision.created_at, candidate.id, candidate.sweep_id,
        sweep_name or "(registered)", version, decision.verdict, checks,
    )  # fmt: skip
