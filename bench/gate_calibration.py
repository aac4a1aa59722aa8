"""How often the gate blocks a candidate with a known truth, on synthetic score tables.

    python bench/gate_calibration.py [--trials 200] [--rows 300]

Targets (at the default policy: margin δ = 0.05, 95% intervals, Holm across checks): a candidate from
the baseline's own distribution is blocked in <= 5% of trials; a true regression of 2δ in >= 90%.
Printed for one-check and three-check policies and four score models (evalgate/gate_synthetic.py).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from evalgate.gate import decide
from evalgate.gate_policy import DEFAULT_MARGIN, Check, GatePolicy
from evalgate.gate_synthetic import Scenario, synthetic_pair

SCENARIOS = (
    Scenario("continuous", noise=0.1),
    Scenario("continuous", noise=0.25),
    Scenario("binary", persistence=0.8),
    Scenario("binary", persistence=0.0),
)
CHECK_SETS = {
    "1 check": (("quality", "target"),),
    "3 checks": (("quality", "target"), ("quality", "ood"), ("safety", "safety")),
}


def block_rate(
    scenario: Scenario, *, checks: tuple[tuple[str, str], ...], shift: float, rows: int, trials: int
) -> float:
    """Share of ``trials`` in which the default policy blocks the candidate."""
    policy = GatePolicy(checks=tuple(Check(evaluator, cohort) for evaluator, cohort in checks))
    directions = {evaluator: True for evaluator, _ in checks}
    rng = np.random.default_rng(20261123)
    blocked = 0
    for _ in range(trials):
        candidate, baseline = synthetic_pair(rng, scenario, rows=rows, shift=shift, checks=checks)
        blocked += not decide(policy, candidate, baseline, directions).passed
    return blocked / trials


def main() -> None:
    """Print the block rates under the null and under a 2δ regression."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor()}, python {platform.python_version()}")
    drop = 2 * DEFAULT_MARGIN
    print(f"{args.trials} trials x {args.rows} rows, margin {DEFAULT_MARGIN}, true regression {drop}")
    print(f"{'scores':<28} {'policy':<9} {'blocked, same dist.':>20} {'blocked, 2δ drop':>17} {'s/trial':>8}")
    for scenario in SCENARIOS:
        for label, checks in CHECK_SETS.items():
            started = time.perf_counter()
            common = {"checks": checks, "rows": args.rows, "trials": args.trials}
            null = block_rate(scenario, shift=0.0, **common)
            blocked_drop = block_rate(scenario, shift=drop, **common)
            per_trial = (time.perf_counter() - started) / (2 * args.trials)
            print(f"{scenario.label:<28} {label:<9} {null:>20.1%} {blocked_drop:>17.1%} {per_trial:>8.3f}")


if __name__ == "__main__":
    main()
