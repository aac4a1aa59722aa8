"""Per-cohort eval-fail rates from stored per-row verdicts, for the report, the dashboard and the CI job.

For one evaluation run and one evaluator x cohort: ``fail rate = failed / judged`` in [0, 1] (lower is
better), where ``judged`` counts the run's ``row_score`` rows with a score and a ``passed`` verdict (a
score of None means the evaluator does not apply to the row: left out) and ``failed`` those with
``passed`` False (below the evaluator's threshold, in its direction). The same figure as the run
summary's ``aggregates[evaluator][cohort]["fail_rate"]``, which ``summary_fail_counts`` reads where only
the summaries are at hand (a CI job talking to a server).

    rates = sweep_fail_rates(sessions, baseline_run_id, [("lr=0.0003", 12), ("lr=0.002", 13)])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.models import RowScore
from evalgate.db.session import session_scope
from evalgate.report.model import Counts, FailRates, fail_rate_matrix

BASELINE = "baseline"
"""The first column's label: the run each candidate is compared with."""


def run_fail_counts(session: Session, run_ids: Iterable[int]) -> dict[int, Counts]:
    """Per run, ``{(evaluator, cohort): (failed, judged)}`` over its judged rows (one grouped query)."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    failed = func.sum(case((RowScore.passed.is_(False), 1), else_=0))
    found = session.execute(
        select(RowScore.evaluation_run_id, RowScore.evaluator, RowScore.cohort, failed, func.count())
        .where(
            RowScore.evaluation_run_id.in_(ids),
            RowScore.score.is_not(None),
            RowScore.passed.is_not(None),
        )
        .group_by(RowScore.evaluation_run_id, RowScore.evaluator, RowScore.cohort)
    ).all()
    counts: dict[int, Counts] = {run_id: {} for run_id in ids}
    for run_id, evaluator, cohort, fails, judged in found:
        counts[run_id][(str(evaluator), str(cohort))] = (int(fails or 0), int(judged))
    return counts


def fail_rates_of_runs(
    session: Session, baseline_run_id: int | None, candidates: Sequence[tuple[str, int | None]]
) -> FailRates:
    """The matrix with the baseline run first, then each (label, run id or None) candidate."""
    ids = [run_id for _, run_id in candidates if run_id is not None]
    counts = run_fail_counts(session, [*ids, *([baseline_run_id] if baseline_run_id is not None else [])])
    columns = [(BASELINE, counts.get(baseline_run_id) if baseline_run_id is not None else None)]
    columns += [(label, counts.get(run_id) if run_id is not None else None) for label, run_id in candidates]
    return fail_rate_matrix(columns)


def sweep_fail_rates(
    sessions: sessionmaker[Session], baseline_run_id: int | None, candidates: Sequence[tuple[str, int | None]]
) -> FailRates:
    """``fail_rates_of_runs`` in its own session."""
    with session_scope(sessions) as session:
        return fail_rates_of_runs(session, baseline_run_id, candidates)


def summary_fail_counts(summary: Mapping[str, Any]) -> Counts:
    """``{(evaluator, cohort): (failed, judged)}`` from a run summary's ``aggregates`` (``fail_rate`` x
    ``n``, rounded to whole rows); pairs without a fail rate are left out."""
    counts: Counts = {}
    for evaluator, by_cohort in (summary.get("aggregates") or {}).items():
        for cohort, entry in by_cohort.items():
            rate, n = entry.get("fail_rate"), int(entry.get("n") or 0)
            if rate is not None and n:
                counts[(str(evaluator), str(cohort))] = (round(float(rate) * n), n)
    return counts
