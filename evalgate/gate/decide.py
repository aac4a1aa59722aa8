"""The gate's decision: scores in, decision out. Pure: no database, no files, no clock.

For each check (evaluator x cohort) of the policy, candidate and baseline scores are paired by row and
oriented so that a positive delta is an improvement: ``d_i = s * (candidate_i - baseline_i)`` with
``s = +1`` for higher-is-better evaluators and ``-1`` otherwise. The test is chosen from the data
(evalgate/evaluation/intervals.py, recorded as ``method`` in the evidence): Tango's score test for paired
proportions when every score on both sides is 0 or 1, the studentized (bootstrap-t) bootstrap of the
mean delta, never less conservative than Student's t, otherwise (``resamples`` resamples, seeded per
check). With margin δ each check gives two one-sided p-values:

- ``p_pass``: for ``H0: mean delta <= -δ``, small when the candidate is non-inferior;
- ``p_regress``: for ``H0: mean delta >= -δ``, small when it is worse by more than δ.

Each family of one-sided p-values is Holm-corrected at ``alpha = (1 - confidence) / 2``: sort ascending,
reject the k-th smallest while ``p_(k) <= alpha / (m - k + 1)``, stop at the first that is not. A check
passes when its non-inferiority is rejected, regresses when its regression is, and is inconclusive
otherwise (which blocks unless the policy says ``inconclusive: pass``). A statistically inconclusive
check states ``rows_needed`` (``intervals.rows_needed``: the rows at which a candidate with the same
mean delta and per-row spread would be decided at this margin and Holm level) and ``margin_decidable``
(``-`` the Holm-level bound on its side: the smallest δ these rows show non-inferiority at, or the
largest δ they show a regression beyond; None when no positive δ would). Floors and the pass-to-fail
flip limit come on top. The candidate passes only when every check passes. A check depends on the
multiset of its paired deltas only: not on the order or the ids of the rows.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalgate.evaluation.intervals import PairedTest, is_binary, paired_test, rows_needed
from evalgate.gate.policy import Check, GatePolicy

RowScores = Mapping[str, tuple[float, bool | None]]
"""row id -> (score, passed)."""


class GateRefusal(ValueError):
    """The candidate cannot be compared with this baseline (different data, evaluators or rows)."""


@dataclass(frozen=True)
class ScoreTable:
    """One model's per-row scores on one dataset version, keyed by (evaluator, cohort)."""

    dataset_hash: str
    scores: Mapping[tuple[str, str], RowScores]
    evaluator_versions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """The evidence and verdict of one check."""

    check: str
    verdict: str
    """pass, regress, inconclusive, below_floor or too_many_flips."""
    reason: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """Pass or block, each check's result, and everything needed to reproduce it."""

    verdict: str
    checks: list[CheckResult]
    evidence: dict[str, Any]

    @property
    def passed(self) -> bool:
        """True when the candidate may ship."""
        return self.verdict == "pass"


def decide(
    policy: GatePolicy, candidate: ScoreTable, baseline: ScoreTable, higher_is_better: Mapping[str, bool]
) -> Decision:
    """Compare ``candidate`` with ``baseline`` under ``policy``; raise ``GateRefusal`` if incomparable."""
    _check_comparable(policy, candidate, baseline, higher_is_better)
    alpha = (1 - policy.confidence) / 2
    stats = [
        _check_statistics(policy, check, candidate, baseline, higher_is_better) for check in policy.checks
    ]
    passes = holm([s["p_pass"] for s in stats], alpha)
    regressions = holm([s["p_regress"] for s in stats], alpha)
    results = [
        _verdict(policy, check, stat, (passed, level), (regressed, regress_level))
        for check, stat, (passed, level), (regressed, regress_level) in zip(
            policy.checks, stats, passes, regressions, strict=True
        )
    ]
    allowed = {"pass"} | ({"inconclusive"} if policy.inconclusive == "pass" else set())
    verdict = "pass" if all(result.verdict in allowed for result in results) else "block"
    evidence = {
        "policy": policy.to_dict(),
        "policy_sha256": policy.sha256,
        "dataset_hash": candidate.dataset_hash,
        "evaluator_versions": dict(candidate.evaluator_versions),
        "seed": policy.seed,
        "alpha_one_sided": alpha,
        "checks": [
            {"check": r.check, "verdict": r.verdict, "reason": r.reason, **r.evidence} for r in results
        ],
    }
    return Decision(verdict, results, evidence)


def holm(p_values: Sequence[float], alpha: float) -> list[tuple[bool, float]]:
    """Holm step-down: for each hypothesis, (rejected, the level it was tested at), in input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    outcome: list[tuple[bool, float]] = [(False, alpha)] * len(p_values)
    still_rejecting = True
    for rank, index in enumerate(order):
        level = alpha / (len(p_values) - rank)
        still_rejecting = still_rejecting and p_values[index] <= level
        outcome[index] = (still_rejecting, level)
    return outcome


def _check_comparable(
    policy: GatePolicy, candidate: ScoreTable, baseline: ScoreTable, higher_is_better: Mapping[str, bool]
) -> None:
    if candidate.dataset_hash != baseline.dataset_hash:
        raise GateRefusal(
            "different dataset versions: "
            f"candidate {candidate.dataset_hash[:12]}, baseline {baseline.dataset_hash[:12]}"
        )
    for check in policy.checks:
        key = (check.evaluator, check.cohort)
        for side, table in (("candidate", candidate), ("baseline", baseline)):
            if key not in table.scores or not table.scores[key]:
                raise GateRefusal(f"{check.label}: no {side} scores")
        if check.evaluator not in higher_is_better:
            raise GateRefusal(f"{check.label}: direction of evaluator {check.evaluator!r} unknown")
        versions = (
            candidate.evaluator_versions.get(check.evaluator),
            baseline.evaluator_versions.get(check.evaluator),
        )
        if versions[0] != versions[1]:
            raise GateRefusal(f"{check.label}: evaluator versions differ ({versions[0]} vs {versions[1]})")
        if not candidate.scores[key].keys() & baseline.scores[key].keys():
            raise GateRefusal(f"{check.label}: no row is scored on both sides")
        for side, table in (("candidate", candidate), ("baseline", baseline)):
            broken = sorted(row for row, (value, _) in table.scores[key].items() if not np.isfinite(value))
            if broken:
                raise GateRefusal(f"{check.label}: non-finite {side} scores on rows {broken[:5]}")


def _check_statistics(
    policy: GatePolicy,
    check: Check,
    candidate: ScoreTable,
    baseline: ScoreTable,
    higher_is_better: Mapping[str, bool],
) -> dict[str, Any]:
    """Paired, oriented deltas of one check, its test (popped by ``_verdict``) and its p-values."""
    key = (check.evaluator, check.cohort)
    rows = sorted(baseline.scores[key].keys() & candidate.scores[key].keys())
    unpaired = len(baseline.scores[key].keys() ^ candidate.scores[key].keys())
    base = np.array([baseline.scores[key][row][0] for row in rows], dtype=np.float64)
    cand = np.array([candidate.scores[key][row][0] for row in rows], dtype=np.float64)
    canonical = np.lexsort((cand, base))  # row order and ids cannot change any sum below
    base, cand = base[canonical], cand[canonical]
    sign = 1.0 if higher_is_better[check.evaluator] else -1.0
    deltas = sign * (cand - base)
    margin = check.delta(float(base.mean()))
    seed = policy.seed ^ zlib.crc32(check.label.encode())
    test = paired_test(deltas, binary=is_binary(base, cand), resamples=policy.resamples, seed=seed)
    p_pass, p_regress = test.p_values(margin)
    return {
        "n": len(rows),
        "method": test.method,
        "higher_is_better": bool(sign > 0),
        "baseline_mean": float(base.mean()),
        "candidate_mean": float(cand.mean()),
        "mean_delta": float(cand.mean() - base.mean()),
        "oriented_delta": float(deltas.mean()),
        "row_sd": test.row_sd,
        "ci_95": list(test.interval((1 - policy.confidence) / 2)),
        "margin": margin,
        "p_pass": p_pass,
        "p_regress": p_regress,
        "flips": _flips(candidate.scores[key], baseline.scores[key]),
        "unpaired_rows": unpaired,
        "test": test,
    }


def _flips(candidate: RowScores, baseline: RowScores) -> int:
    """Rows (scored on both sides) that pass for the baseline and fail for the candidate."""
    return sum(
        1
        for row, (_, passed) in baseline.items()
        if passed and row in candidate and candidate[row][1] is False
    )


def _verdict(
    policy: GatePolicy,
    check: Check,
    stat: dict[str, Any],
    passing: tuple[bool, float],
    regressing: tuple[bool, float],
) -> CheckResult:
    """The check's verdict; each interval is reported at the Holm level its family tested it at."""
    test: PairedTest = stat.pop("test")
    (passed, pass_level), (regressed, regress_level) = passing, regressing
    stat["ci_holm_pass"] = list(test.interval(pass_level))
    stat["ci_holm_regress"] = list(test.interval(regress_level))
    stat["holm_levels"] = {"pass": pass_level, "regress": regress_level}
    delta, margin = stat["oriented_delta"], stat["margin"]
    if check.floor is not None and not _meets_floor(
        stat["candidate_mean"], check.floor, stat["higher_is_better"]
    ):
        side = "below" if stat["higher_is_better"] else "above"
        reason = f"mean {stat['candidate_mean']:.4f} {side} floor {check.floor}"
        return CheckResult(check.label, "below_floor", reason, stat)
    if check.max_flips is not None and stat["flips"] > check.max_flips:
        reason = f"{stat['flips']} rows flipped from pass to fail (at most {check.max_flips})"
        return CheckResult(check.label, "too_many_flips", reason, stat)
    low, high = stat["ci_holm_pass"]
    if passed and stat["unpaired_rows"]:
        reason = f"{stat['unpaired_rows']} rows are scored on one side only: cannot show non-inferiority"
        return CheckResult(check.label, "inconclusive", reason, stat)
    interval = f"oriented delta {delta:+.4f}, Holm interval [{low:+.4f}, {high:+.4f}]"
    if passed:
        return CheckResult(check.label, "pass", f"{interval}: lower bound >= -{margin:.4f}", stat)
    if regressed:
        low, high = stat["ci_holm_regress"]
        interval = f"oriented delta {delta:+.4f}, Holm interval [{low:+.4f}, {high:+.4f}]"
        return CheckResult(check.label, "regress", f"{interval}: upper bound < -{margin:.4f}", stat)
    stat.update(_rows_to_decide(test, stat, pass_level, regress_level))
    reason = f"{interval} straddles -{margin:.4f}; {_needs_sentence(stat)}"
    return CheckResult(check.label, "inconclusive", reason, stat)


def _rows_to_decide(test: PairedTest, stat: dict[str, Any], pass_level: float, regress_level: float) -> dict:
    """``rows_needed`` and ``margin_decidable`` of an inconclusive check (module docstring)."""
    margin = stat["margin"]
    if test.mean >= -margin:
        side, level, bound = "non_inferiority", pass_level, -stat["ci_holm_pass"][0]
    else:
        side, level, bound = "regression", regress_level, -stat["ci_holm_regress"][1]
    return {
        "decides": side,
        "rows_needed": rows_needed(test, margin, level),
        "margin_decidable": float(bound) if bound > 0 else None,
    }


def _needs_sentence(stat: dict[str, Any]) -> str:
    """ "needs about 640 rows to show non-inferiority at δ = 0.05, or δ >= 0.08 with these 200 rows"."""
    n, rows, bound = stat["n"], stat["rows_needed"], stat["margin_decidable"]
    goal = "non-inferiority at" if stat["decides"] == "non_inferiority" else "a regression beyond"
    needs = (
        f"needs about {_about(rows)} rows to show {goal} δ = {stat['margin']:.4g}"
        if rows is not None
        else f"its delta sits on the margin: no number of rows shows {goal} δ = {stat['margin']:.4g}"
    )
    if bound is None:
        return f"{needs}; no positive δ is decided with these {n} rows"
    relation = ">=" if stat["decides"] == "non_inferiority" else "<="
    return f"{needs}, or δ {relation} {_round_away(bound, stat['decides']):.2g} with these {n} rows"


def _about(rows: int) -> str:
    """Rows rounded up to two significant figures (637 -> 640), with thousands separators."""
    scale = 10 ** max(len(str(rows)) - 2, 0)
    return f"{-(-rows // scale) * scale:,}"


def _round_away(bound: float, side: str) -> float:
    """The margin rounded (2 significant figures) toward the side where it still decides."""
    scale = 10 ** (math.floor(math.log10(bound)) - 1)
    steps = bound / scale
    return (math.ceil(steps) if side == "non_inferiority" else math.floor(steps)) * scale


def _meets_floor(mean: float, floor: float, higher_is_better: bool) -> bool:
    return mean >= floor if higher_is_better else mean <= floor
