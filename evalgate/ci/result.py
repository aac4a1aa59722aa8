"""What one ``evalgate ci`` run found: each candidate's training outcome and gate decision, the
recommendation, and the exit code. Shared by the standalone and server flows and the output writers.

A decision is kept as the REST API returns it (``DecisionOut``): ``{"id", "verdict", "evidence":
{"checks": [{"check", "verdict", "reason", "oriented_delta", "ci_95", "ci_holm_pass",
"ci_holm_regress", "margin", "n", ...}], "policy_sha256", "dataset_hash", ...}, "baseline_run_id",
"candidate_run_id", ...}``; the recommendation is rebuilt from that evidence in both flows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalgate.ci.config import CiConfig
from evalgate.gate.decide import CheckResult, Decision
from evalgate.gate.selection import CandidateOutcome, Recommendation, recommend
from evalgate.report.model import Counts, FailRates, fail_rate_matrix

EXIT_RECOMMENDED = 0
"""A candidate passed the gate and is recommended (and promoted with ``promote: true``)."""
EXIT_ALL_BLOCKED = 1
"""Every candidate is blocked, or none trained."""
EXIT_ERROR = 2
"""Bad config, unknown dataset, unreachable server, failed job, refused comparison, ..."""
BLOCKING_VERDICTS = ("regress", "below_floor", "too_many_flips")
DECIDED_BY = "evalgate ci"
CHECK_FIELDS = ("oriented_delta", "margin", "n", "baseline_mean", "candidate_mean", "flips")
"""Evidence fields of a check copied into result.json and JUnit failure bodies."""
SELF_NOTE = " (the promoted candidate itself is compared with the base model)"
"""Appended to a promoted baseline's description: ``decide_candidate`` never compares it with itself."""


@dataclass(frozen=True)
class CandidateResult:
    """One candidate: its training outcome and, when it was evaluated, its gate decision."""

    label: str
    candidate_id: int
    learning_rate: float | None
    status: str
    """Training status: trained, diverged, failed, ..."""
    diagnosis: str | None = None
    error: str | None = None
    """Why training failed, if it did."""
    decision: Mapping[str, Any] | None = None
    """The stored decision (``DecisionOut`` shape); None when the candidate was not evaluated."""

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The decision's per-check evidence, in policy order ([] when not evaluated)."""
        return list(self.decision["evidence"]["checks"]) if self.decision else []

    def with_decision(self, decision: Mapping[str, Any]) -> CandidateResult:
        """A copy carrying ``decision``."""
        return CandidateResult(
            self.label,
            self.candidate_id,
            self.learning_rate,
            self.status,
            self.diagnosis,
            self.error,
            decision,
        )


@dataclass(frozen=True)
class CiResult:
    """Everything the outputs report."""

    config: CiConfig
    dataset_hash: str
    candidates: list[CandidateResult]
    recommendation: Recommendation
    baseline: str
    """What the candidates were compared with: the base model or the promoted candidate."""
    sweep_id: int | None = None
    promoted: Mapping[str, Any] | None = None
    """The promotion made by this run (``PromotionOut`` shape), if any."""
    server: str | None = None
    """The server URL in server mode."""
    fail_rates: FailRates | None = None
    """Per-cohort eval-fail rates of the baseline and each evaluated candidate (None: not read)."""

    @property
    def recommended(self) -> CandidateResult | None:
        """The recommended candidate, None when none passed."""
        name = self.recommendation.recommended
        return next((c for c in self.candidates if c.label == name), None) if name else None

    @property
    def exit_code(self) -> int:
        """0 with a recommendation, 1 without."""
        return EXIT_RECOMMENDED if self.recommended is not None else EXIT_ALL_BLOCKED


def as_decision(stored: Mapping[str, Any]) -> Decision:
    """The gate ``Decision`` a stored decision's evidence describes."""
    evidence = dict(stored["evidence"])
    checks = [CheckResult(c["check"], c["verdict"], c["reason"], dict(c)) for c in evidence["checks"]]
    return Decision(str(stored["verdict"]), checks, evidence)


def recommendation_for(config: CiConfig, candidates: Sequence[CandidateResult]) -> Recommendation:
    """``selection.recommend`` over the candidates' decisions (not evaluated: their training status)."""
    outcomes = [
        CandidateOutcome(c.label, as_decision(c.decision) if c.decision else None, c.status)
        for c in candidates
    ]
    return recommend(config.policy, outcomes)


def is_failure(check: Mapping[str, Any], inconclusive_blocks: bool) -> bool:
    """True when the check blocks the candidate."""
    verdict = check["verdict"]
    return verdict in BLOCKING_VERDICTS or (verdict == "inconclusive" and inconclusive_blocks)


def verdict_interval(check: Mapping[str, Any]) -> tuple[float, float] | None:
    """The interval the check's verdict was tested at: the Holm-corrected regression interval for a
    regression, the non-inferiority one otherwise (the plain 95% interval for older evidence)."""
    key = "ci_holm_regress" if check.get("verdict") == "regress" else "ci_holm_pass"
    interval = check.get(key) or check.get("ci_95")
    return (float(interval[0]), float(interval[1])) if interval else None


def is_out_of_domain(cohort: str) -> bool:
    """True for the out-of-domain cohorts: ``ood`` and ``ood_*`` (e.g. ``ood_grounded``)."""
    return cohort == "ood" or cohort.startswith("ood_")


VERDICT_SEVERITY = {"regress": 0, "below_floor": 1, "too_many_flips": 2, "inconclusive": 3, "pass": 4}
"""Order in which a check's verdict decides a candidate: a regression first, a pass last."""


def decisive_ood(candidate: CandidateResult) -> dict[str, Any] | None:
    """The candidate's out-of-domain check that decides it: the most severe verdict (regress, below
    floor, too many flips, inconclusive, pass), ties broken by the least room to spare, ``low + margin``
    of the interval the verdict was tested at (lowest first). None without an out-of-domain check."""
    checks = [c for c in candidate.checks if is_out_of_domain(str(c["check"]).partition("/")[2])]

    def rank(check: Mapping[str, Any]) -> tuple[int, float]:
        interval = verdict_interval(check)
        room = interval[0] + float(check.get("margin") or 0.0) if interval else float(check["oriented_delta"])
        return VERDICT_SEVERITY.get(str(check["verdict"]), 0), room

    return min(checks, key=rank, default=None)


def compact_estimate(check: Mapping[str, Any] | None) -> str:
    """``+0.123 [-0.010,+0.250]``: oriented delta and the interval its verdict was tested at; ``-``
    without a check."""
    if check is None:
        return "-"
    interval = verdict_interval(check)
    shown = f"{float(check['oriented_delta']):+.3f}"
    return shown + (f" [{interval[0]:+.3f},{interval[1]:+.3f}]" if interval else "")


_INTERVAL_REASON = re.compile(
    r"^oriented delta [-+0-9.e]+, Holm interval \[[^\]]*\]"
    r"(: (lower|upper) bound (>=|<) -?[0-9.e]+| straddles -?[0-9.e]+)?[;,:]?\s*"
)


_SHORTER = (
    (re.compile(r"needs about ([0-9,]+) rows to show [a-z-]+ at δ = [0-9.e-]+"), r"needs about \1 rows"),
    (re.compile(r"its delta sits on the margin: no number of rows shows [a-z-]+ at δ = [0-9.e-]+"),
     "on the margin: no number of rows decides it"),
    (re.compile(r", or δ (>=|<=|>|<) ([0-9.e-]+) with these [0-9,]+ rows"), r" (or δ \1 \2)"),
    (re.compile(r"; no positive δ is decided with these [0-9,]+ rows"), ""),
)  # fmt: skip


def reason_note(check: Mapping[str, Any]) -> str:
    """What a check's reason adds to its verdict, delta, interval and margin, shortened: the gate's
    reason without the interval wording they repeat (``mean 0.41 below floor 0.5``, ``12 rows flipped
    ...``), rows-to-decide sentences cut to ``needs about N rows (or δ >= D)``, and ``needs about N
    rows`` from the evidence's ``rows_needed`` when the reason does not say it."""
    note = _INTERVAL_REASON.sub("", str(check.get("reason") or ""), count=1).strip()
    for pattern, replacement in _SHORTER:
        note = pattern.sub(replacement, note)
    needed = check.get("rows_needed")
    if needed is not None and "rows" not in note:
        note = f"{note}; needs about {int(needed)} rows" if note else f"needs about {int(needed)} rows"
    return note


def failing_checks(result: CiResult, candidate: CandidateResult) -> list[dict[str, Any]]:
    """The checks that block ``candidate`` under the result's policy, in policy order."""
    blocks = result.config.policy.inconclusive == "block"
    return [c for c in candidate.checks if is_failure(c, blocks)]


def rate_label(candidate: CandidateResult, swept: bool) -> str:
    """The rate (``0.0003``) of a sweep candidate that differs from the others by its rate alone, its
    trial's name (``lr=0.0003 cosine r=4``) when the sweep searched more; ``name (lr 0.0003)`` or
    ``name`` for registered ones."""
    rate = f"{candidate.learning_rate:g}" if candidate.learning_rate is not None else None
    if swept and rate is not None:
        return rate if candidate.label == f"lr={rate}" else candidate.label
    return f"{candidate.label} (lr {rate})" if rate else candidate.label


def fail_rate_runs(result: CiResult) -> tuple[int | None, list[tuple[str, int]]]:
    """The runs of the eval-fail-rate matrix: the baseline run most decisions compared with (None
    without a decision), and each decided candidate's label and run."""
    decided = [c for c in result.candidates if c.decision is not None]
    baselines = Counter(int(c.decision["baseline_run_id"]) for c in decided if c.decision)
    baseline = baselines.most_common(1)[0][0] if baselines else None
    return baseline, [(c.label, int(c.decision["candidate_run_id"])) for c in decided if c.decision]


def fail_rates_for(result: CiResult, counts: Callable[[list[int]], Mapping[int, Counts]]) -> FailRates | None:
    """The eval-fail-rate matrix of ``fail_rate_runs`` from ``counts`` (run ids -> per-run counts, read
    from the database or from the runs' summaries); None without a decided candidate."""
    baseline, candidates = fail_rate_runs(result)
    if baseline is None:
        return None
    found = counts([baseline, *(run_id for _, run_id in candidates)])
    columns = [("baseline", found.get(baseline)), *((label, found.get(run)) for label, run in candidates)]
    return fail_rate_matrix(columns)


def covers_policy(config: CiConfig, summary: Mapping[str, Any]) -> bool:
    """True when a run summary's evaluators include every evaluator the policy checks."""
    scored: Collection[str] = summary.get("evaluators", {}).keys()
    return all(check.evaluator in scored for check in config.policy.checks)


def result_data(result: CiResult) -> dict[str, Any]:
    """``result.json``: the machine-readable result (format in ``evalgate.ci.outputs``)."""
    config, recommendation = result.config, result.recommendation
    chosen = result.recommended
    return {
        "exit_code": result.exit_code,
        "recommended": chosen.label if chosen else None,
        "recommended_candidate_id": chosen.candidate_id if chosen else None,
        "promoted": dict(result.promoted) if result.promoted is not None else None,
        "error": None,
        "mode": "server" if result.server else "standalone",
        "server": result.server,
        "sweep_id": result.sweep_id,
        "dataset": {"label": config.dataset, "sha256": result.dataset_hash},
        "policy": {
            "name": config.policy.name,
            "sha256": config.policy.sha256,
            "inconclusive": config.policy.inconclusive,
        },
        "objective": recommendation.objective,
        "baseline": result.baseline,
        "candidates": [_candidate_data(result, candidate) for candidate in result.candidates],
        "fail_rates": result.fail_rates.to_dict() if result.fail_rates is not None else None,
    }


def _candidate_data(result: CiResult, candidate: CandidateResult) -> dict[str, Any]:
    decision = candidate.decision or {}
    blocks = result.config.policy.inconclusive == "block"
    recommendation = result.recommendation
    return {
        "label": candidate.label,
        "candidate_id": candidate.candidate_id,
        "learning_rate": candidate.learning_rate,
        "status": candidate.status,
        "diagnosis": candidate.diagnosis,
        "error": candidate.error,
        "verdict": decision.get("verdict"),
        "decision_id": decision.get("id"),
        "candidate_run_id": decision.get("candidate_run_id"),
        "baseline_run_id": decision.get("baseline_run_id"),
        "gain": recommendation.gains.get(candidate.label),
        "why_not_recommended": recommendation.reasons.get(candidate.label),
        "checks": [
            {
                "check": c["check"],
                "verdict": c["verdict"],
                "reason": c["reason"],
                "blocking": is_failure(c, blocks),
                "interval": list(verdict_interval(c) or []),
                **{name: c.get(name) for name in CHECK_FIELDS},
            }
            for c in candidate.checks
        ],
    }
