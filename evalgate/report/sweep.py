"""A sweep's report from the database: which candidate to ship, what each one trades, and why.

    html = render_sweep_report(sessions, sweep_id=3)        # one self-contained HTML document

Per candidate, the gate decision shown is its latest one under the sweep's newest policy (the policy
of the newest decision of any candidate of the sweep). Its evidence gives each checked evaluator x
cohort its oriented delta, 95% bootstrap interval and verdict; evaluator x cohort pairs the policy
does not check come from the evaluation run's summary deltas (oriented, shown without verdict).
Without any decision every pair comes from the summary. The recommendation is
``evalgate.gate.selection.recommend`` over those decisions. The per-cohort eval-fail rates
(``evalgate.report.fail_rates``) put each evaluated candidate's run next to its baseline run. Each
candidate carries its trial's hyperparameters and, when successive halving stopped it, why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.models import Candidate, DatasetVersion, EvaluationRun, GateDecision, Sweep
from evalgate.db.queries import latest_finished_run
from evalgate.db.session import session_scope
from evalgate.gate.decide import CheckResult, Decision
from evalgate.gate.policy import GatePolicy, PolicyError
from evalgate.gate.records import ZERO_BASELINE
from evalgate.gate.selection import CandidateOutcome, Recommendation, objective_check, recommend
from evalgate.report.fail_rates import fail_rates_of_runs
from evalgate.report.html import sweep_document
from evalgate.report.model import CandidateView, CheckCell, Estimate, FailRates, SweepView
from evalgate.report.rows import PromptSource, higher_is_better, worst_rows
from evalgate.sweep.analysis import in_order

WORST_ROWS = 3
"""Worst rows per check and candidate in the report (the dashboard's drill-down shows more)."""


def render_sweep_report(sessions: sessionmaker[Session], sweep_id: int, *, title: str | None = None) -> str:
    """The sweep's report as one self-contained HTML document (inline CSS and SVG, no script, no URL);
    ``LookupError`` when there is no such sweep."""
    return sweep_document(build_sweep_view(sessions, sweep_id), title=title)


def build_sweep_view(sessions: sessionmaker[Session], sweep_id: int, worst: int = WORST_ROWS) -> SweepView:
    """The view model of sweep ``sweep_id``; ``LookupError`` when there is no such sweep."""
    with session_scope(sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            raise LookupError(f"sweep {sweep_id} not found")
        version = session.get_one(DatasetVersion, sweep.dataset_version_id)
        candidates = session.scalars(
            select(Candidate)
            .where(Candidate.sweep_id == sweep_id)
            .order_by(Candidate.learning_rate, Candidate.name)
        ).all()
        decisions = {c.id: _decisions(session, c.id) for c in candidates}
        policy_row = max((d for ds in decisions.values() for d in ds), key=lambda d: d.id, default=None)
        policy = _policy(policy_row)
        latest = {c.id: _latest_under(decisions[c.id], policy_row) for c in candidates}
        runs = {c.id: _run(session, c.id, latest[c.id]) for c in candidates}
        cells = {c.id: _cells(_summary_of(runs[c.id]), latest[c.id]) for c in candidates}
        objective, ood, margin = _axes(policy, latest) if policy else _fallback_axes(cells.values())
        source = PromptSource(session)
        views = [
            _candidate(session, c, (latest[c.id], runs[c.id]), cells[c.id], (objective, ood), (worst, source))
            for c in candidates
        ]
        recommendation = _recommendation(views, policy, latest)
        fail_rates = _fail_rates(session, views)
        return SweepView(
            id=sweep.id,
            name=sweep.name,
            status=sweep.status,
            base_model=sweep.base_model,
            dataset=f"{version.dataset.name}@v{version.number}",
            dataset_name=version.dataset.name,
            candidates=tuple(_with_reasons(views, recommendation)),
            objective_check=objective,
            ood_check=ood,
            ood_margin=margin,
            recommended=recommendation.recommended if recommendation else None,
            policy_name=policy.name if policy else None,
            policy_hash=policy_row.policy_hash if policy_row else None,
            decided=policy_row is not None,
            fail_rates=fail_rates,
        )


def decision_of(row: GateDecision) -> Decision:
    """A stored decision as the gate's ``Decision`` (for ``recommend``), from its evidence."""
    checks = [
        CheckResult(str(c.get("check")), str(c.get("verdict")), str(c.get("reason", "")), dict(c))
        for c in row.evidence.get("checks", [])
    ]
    return Decision(row.verdict, checks, dict(row.evidence))


def latest_recommendation(session: Session, sweep_id: int) -> str | None:
    """The label ``recommend`` picks from the sweep's latest decisions (None: none passed, or none)."""
    candidates = session.scalars(select(Candidate).where(Candidate.sweep_id == sweep_id)).all()
    decisions = {c.id: _decisions(session, c.id) for c in candidates}
    newest = max((d for ds in decisions.values() for d in ds), key=lambda d: d.id, default=None)
    policy = _policy(newest)
    if policy is None:
        return None
    outcomes = [_outcome(c.name, c.status, _latest_under(decisions[c.id], newest)) for c in candidates]
    return recommend(policy, outcomes).recommended


def _decisions(session: Session, candidate_id: int) -> list[GateDecision]:
    query = select(GateDecision).where(GateDecision.candidate_id == candidate_id).order_by(GateDecision.id)
    return list(session.scalars(query))


def _policy(row: GateDecision | None) -> GatePolicy | None:
    if row is None:
        return None
    try:
        return GatePolicy.from_dict(dict(row.policy))
    except (PolicyError, TypeError):
        return None


def _latest_under(rows: Sequence[GateDecision], newest: GateDecision | None) -> GateDecision | None:
    """The candidate's latest decision made under the policy of ``newest``."""
    if newest is None:
        return None
    return next((row for row in reversed(rows) if row.policy_hash == newest.policy_hash), None)


def _axes(
    policy: GatePolicy | None, latest: dict[int, GateDecision | None]
) -> tuple[str | None, str | None, float | None]:
    """(objective check, ood check, δ of the ood check) of the policy; (None, None, None) without one."""
    if policy is None:
        return None, None, None
    ood = next((check for check in policy.checks if check.cohort == "ood"), None)
    if ood is None:
        return objective_check(policy), None, None
    margins = [
        float(c["margin"])
        for row in latest.values()
        if row is not None
        for c in row.evidence.get("checks", [])
        if c.get("check") == ood.label and c.get("margin") is not None
    ]
    margin = margins[0] if margins else ood.delta(0.0)
    return objective_check(policy), ood.label, margin


def _candidate(
    session: Session,
    candidate: Candidate,
    decided: tuple[GateDecision | None, EvaluationRun | None],
    cells: list[CheckCell],
    axes: tuple[str | None, str | None],
    worst: tuple[int, PromptSource],
) -> CandidateView:
    """One candidate's view from its decision, its run (the decided one, else the latest finished) and
    its cells; up to ``worst[0]`` worst rows per objective and ood check."""
    decision, run = decided
    baseline_id = decision.baseline_run_id if decision else _summary_of(run).get("baseline_run_id")
    by_label = {cell.label: cell for cell in cells}
    checks = [(by_label[label].evaluator, by_label[label].cohort) for label in axes if label in by_label]
    limit, source = worst
    rows = (
        worst_rows(session, run.id, baseline_id, checks, limit, source) if run is not None and limit else []
    )
    training = candidate.training or {}
    return CandidateView(
        id=candidate.id,
        label=candidate.name,
        rate=candidate.learning_rate,
        status=candidate.status,
        diagnosis=candidate.diagnosis,
        diagnosis_reason=str(training.get("diagnosis_reason") or ""),
        losses=tuple(float(v) for v in training.get("loss", []) if isinstance(v, int | float)),
        verdict=decision.verdict if decision else None,
        decision_id=decision.id if decision else None,
        run_id=run.id if run is not None else None,
        baseline_run_id=int(baseline_id) if baseline_id is not None else None,
        cells=tuple(cells),
        objective=by_label[axes[0]].estimate if axes[0] in by_label else None,
        ood=by_label[axes[1]].estimate if axes[1] in by_label else None,
        worst_rows=tuple(rows),
        hyperparameters=in_order(candidate.hyperparameters or {}),
        halted=str(training.get("halted") or "") if candidate.status == "stopped" else "",
    )


def _fail_rates(session: Session, views: Sequence[CandidateView]) -> FailRates | None:
    """Eval-fail rates of the evaluated candidates next to their (most common) baseline run."""
    evaluated = [view for view in views if view.run_id is not None]
    if not evaluated:
        return None
    baselines = Counter(view.baseline_run_id for view in evaluated if view.baseline_run_id is not None)
    baseline = baselines.most_common(1)[0][0] if baselines else None
    return fail_rates_of_runs(session, baseline, [(view.label, view.run_id) for view in evaluated])


def _fallback_axes(cells: Iterable[list[CheckCell]]) -> tuple[str | None, str | None, float | None]:
    """Without a policy: the first target pair, the first ood pair (not a zero-baseline signal), no δ."""
    labels = sorted(
        {(cell.cohort, cell.evaluator in ZERO_BASELINE, cell.label) for cs in cells for cell in cs}
    )
    target = next((label for cohort, _, label in labels if cohort == "target"), None)
    ood = next((label for cohort, _, label in labels if cohort == "ood"), None)
    return target, ood, None


def _summary_of(run: EvaluationRun | None) -> dict[str, Any]:
    return dict(run.summary) if run is not None else {}


def _run(session: Session, candidate_id: int, decision: GateDecision | None) -> EvaluationRun | None:
    if decision is not None:
        return session.get(EvaluationRun, decision.candidate_run_id)
    return latest_finished_run(session, candidate_id)


def _cells(summary: dict[str, Any], decision: GateDecision | None) -> list[CheckCell]:
    """Summary deltas (oriented, no verdict), replaced by the decision's checks where it has them."""
    cells: dict[str, CheckCell] = {}
    for evaluator, by_cohort in (summary.get("deltas") or {}).items():
        sign = 1.0 if higher_is_better(summary, evaluator) else -1.0
        for cohort, d in by_cohort.items():
            low, high = sorted((sign * float(d["ci_low"]), sign * float(d["ci_high"])))
            estimate = Estimate(sign * float(d["mean"]), low, high)
            cells[f"{evaluator}/{cohort}"] = CheckCell(evaluator, cohort, estimate, n=int(d.get("n", 0)))
    for check in decision.evidence.get("checks", []) if decision else []:
        evaluator, _, cohort = str(check.get("check")).partition("/")
        interval = check.get("ci_95") or []
        bounds = (float(interval[0]), float(interval[1])) if len(interval) == 2 else (None, None)
        estimate = Estimate(float(check["oriented_delta"]), *bounds)
        cells[f"{evaluator}/{cohort}"] = CheckCell(
            evaluator, cohort, estimate, check.get("verdict"), str(check.get("reason", "")),
            check.get("margin"), check.get("n"),
        )  # fmt: skip
    return list(cells.values())


def _outcome(label: str, status: str, row: GateDecision | None) -> CandidateOutcome:
    return CandidateOutcome(label, decision_of(row) if row is not None else None, status)


def _recommendation(
    views: Sequence[CandidateView], policy: GatePolicy | None, latest: dict[int, GateDecision | None]
) -> Recommendation | None:
    """``recommend`` over the candidates' decisions (None without a policy)."""
    if policy is None:
        return None
    return recommend(policy, [_outcome(v.label, v.status, latest[v.id]) for v in views])


def _with_reasons(
    views: Sequence[CandidateView], recommendation: Recommendation | None
) -> list[CandidateView]:
    """Each view with why it lost (``recommend``'s reason, or why it has no decision: its training
    status, or for a candidate successive halving stopped, the rung and reason)."""
    reasons = recommendation.reasons if recommendation else {}
    result = []
    for view in views:
        reason = reasons.get(view.label, "")
        if view.verdict is None:
            done = "evaluated, no gate decision yet" if view.run_id else "not evaluated"
            reason = f"{done} ({view.halted or f'training {view.status}'})"
        result.append(replace(view, reason=reason))
    return result
