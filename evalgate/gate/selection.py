"""Choosing among a sweep's candidates: the passing one with the largest target gain.

Pure: decisions in, recommendation out. The target gain of a candidate is the oriented mean delta
(positive = better) of the policy's objective check (``GatePolicy.objective``, by default the first
check on the ``target`` cohort). Every other candidate gets the reason it lost: not evaluated (its
training status), blocked (by which checks, and why), or a smaller target gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evalgate.gate.decide import Decision
from evalgate.gate.policy import GatePolicy


@dataclass(frozen=True)
class CandidateOutcome:
    """One candidate of a sweep: its label, and its gate decision (None when it was not evaluated)."""

    label: str
    decision: Decision | None
    status: str = "trained"


@dataclass(frozen=True)
class Recommendation:
    """The recommended candidate (None when none passed) and why each other one lost."""

    recommended: str | None
    objective: str
    gains: dict[str, float | None]
    reasons: dict[str, str] = field(default_factory=dict)


def objective_check(policy: GatePolicy) -> str:
    """``evaluator/cohort`` whose gain ranks passing candidates."""
    if policy.objective:
        return policy.objective
    targets = [check.label for check in policy.checks if check.cohort == "target"]
    return targets[0] if targets else policy.checks[0].label


def recommend(policy: GatePolicy, candidates: Sequence[CandidateOutcome]) -> Recommendation:
    """Recommend the passing candidate with the largest objective gain; explain every other one."""
    objective = objective_check(policy)
    gains = {candidate.label: _gain(candidate, objective) for candidate in candidates}
    passing = [
        c for c in candidates if c.decision is not None and c.decision.passed and gains[c.label] is not None
    ]
    best = max(passing, key=lambda c: gains[c.label] or 0.0, default=None)
    reasons = {}
    for candidate in candidates:
        if best is not None and candidate.label == best.label:
            continue
        reasons[candidate.label] = _why_not(candidate, best, gains, objective)
    return Recommendation(best.label if best else None, objective, gains, reasons)


def _gain(candidate: CandidateOutcome, objective: str) -> float | None:
    if candidate.decision is None:
        return None
    for result in candidate.decision.checks:
        if result.check == objective:
            return float(result.evidence["oriented_delta"])
    return None


def _why_not(
    candidate: CandidateOutcome, best: CandidateOutcome | None, gains: dict[str, float | None], objective: str
) -> str:
    if candidate.decision is None:
        return f"not evaluated (training {candidate.status})"
    if not candidate.decision.passed:
        blocking = [
            f"{r.check} {r.verdict} ({r.reason})" for r in candidate.decision.checks if r.verdict != "pass"
        ]
        return "blocked: " + "; ".join(blocking)
    mine, theirs = gains[candidate.label], gains[best.label] if best else None
    if mine is None:
        return f"passed, but has no {objective} score to rank it"
    return (
        f"passed, smaller {objective} gain ({mine:+.4f} vs {theirs:+.4f} for {best.label if best else '-'})"
    )
