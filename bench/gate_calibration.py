"""Does the gate keep its promise at the margin? Wrong passes and power on synthetic score tables.

    python bench/gate_calibration.py [--trials 1000] [--part binary|continuous|all] [--seed 0]
    python bench/gate_calibration.py --part margin [--samples 10000] [--rows 50 100] [--shape normal skewed]

Default policy, one check: margin δ = 0.05, confidence 0.95, so alpha = 2.5% one-sided. The promise:
a candidate whose true mean drop is exactly δ passes in at most alpha of trials (plus Monte Carlo
error: the bound printed is alpha + 2 sqrt(alpha (1 - alpha) / trials)). At a drop of 1.5δ passes
should be near 0; with no drop the pass rate is the power. Each case runs the gate
(evalgate.gate.decide.decide)
and, on the same tables, the percentile bootstrap the gate used before (``legacy_passes``).

Binary scores (as answer_accuracy, json_validation, content_safety give): each row falls in one of
four cells, both pass / loss (baseline passes, candidate fails) / gain / both fail, with
P(loss) = (flips + drop) / 2 and P(gain) = (flips - drop) / 2, so ``flips`` of the answers change
and losses outnumber gains by exactly ``drop``; the base rate sets P(both pass) = base - P(loss).
Cases where a cell probability would be negative are skipped. The paired tests see only the
gains and losses, so the base rate matters only through which flip shares it allows.
Continuous scores: row level mu_i ~ Beta(5, 2), baseline mu_i + N(0, noise), candidate
mu_i - drop + N(0, noise), unclipped (so the true mean delta is exactly -drop; clipping to [0, 1]
would move it). The row level cancels in the paired delta, which is N(-drop, 2 noise^2); at the
margin the studentized statistic ``(mean + δ) / se`` is then free of the noise level, so for a given
row count the three noise cells measure the same wrong-pass rate (independent replicates, each with
its own Monte Carlo error). ``--rows`` / ``--noise`` rerun chosen continuous cells (with the seeds
they have in the full run, e.g. with more ``--trials``).

``--part margin`` measures the continuous test itself, without score tables: each sample is ``rows``
paired deltas whose true mean is exactly -δ, either normal, ``N(-δ, s^2)``, or skewed with the long
tail below, ``-δ + s (1 - E)`` with ``E ~ Exp(1)`` (mean -δ, sd s, skewness -2). The statistic
``(mean + δ) / se`` and the bootstrap's ``t*`` are then free of ``s``. One resampling per sample
(``POLICY.resamples``, its own seed) gives the four verdicts printed for each cell, each a pass rate at
the margin ± its Monte Carlo standard error ``sqrt(p (1 - p) / samples)``: the gate's continuous test
as shipped (``evalgate.evaluation.intervals.paired_test``: bootstrap-t capped by Student's t), the bootstrap-t
alone (``P*(t* >= T) <= alpha``), Student's t alone (``P(t_(n-1) >= T) <= alpha``, exactly alpha on
normal deltas) and the BCa lower bound alone (``evalgate.evaluation.intervals.bca``, pass when it clears -δ).
``--samples`` is ``--trials``; a cell's seed depends on ``--seed``, its shape and its rows only.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evalgate.evaluation.intervals import StudentizedTest, bca, paired_test, student_t_sf
from evalgate.gate.decide import ScoreTable, decide
from evalgate.gate.policy import DEFAULT_MARGIN, Check, GatePolicy

POLICY = GatePolicy(checks=(Check("quality", "target"),))
KEY = ("quality", "target")
ALPHA = (1 - POLICY.confidence) / 2
BINARY_ROWS = (50, 100, 200, 300)
BASE_RATES = (0.80, 0.96)
FLIP_SHARES = (0.05, 0.10, 0.20)
CONTINUOUS_ROWS = (50, 100, 300)
NOISE_LEVELS = (0.05, 0.15, 0.3)
SHAPES = ("normal", "skewed")
MARGIN_ROWS = (50, 100)
DELTA_SD = 0.2
"""Standard deviation of the deltas in ``--part margin`` (the rates at the margin do not depend on it)."""
Pair = tuple[np.ndarray, np.ndarray]
Draw = Callable[[np.random.Generator], Pair]


def binary_cells(base_rate: float, flips: float, drop: float) -> list[float] | None:
    """Probabilities of (both pass, loss, gain, both fail), or None when the case is impossible."""
    loss, gain = (flips + drop) / 2, (flips - drop) / 2
    cells = [base_rate - loss, loss, gain, 1 - base_rate - gain]
    return cells if min(cells) >= -1e-12 else None


def binary_pair(rng: np.random.Generator, rows: int, cells: list[float]) -> Pair:
    """(candidate, baseline) 0/1 scores of ``rows`` rows drawn from the four cells."""
    cell = rng.choice(4, size=rows, p=np.clip(cells, 0, 1))
    baseline = np.isin(cell, (0, 1)).astype(np.float64)
    candidate = np.isin(cell, (0, 2)).astype(np.float64)
    return candidate, baseline


def continuous_pair(rng: np.random.Generator, rows: int, noise: float, drop: float) -> Pair:
    """(candidate, baseline) continuous scores whose true mean delta is exactly ``-drop``."""
    level = rng.beta(5, 2, rows)
    return level - drop + rng.normal(0, noise, rows), level + rng.normal(0, noise, rows)


def table(scores: np.ndarray) -> ScoreTable:
    """A one-check score table keyed by row."""
    rows = {f"row-{i}": (float(s), bool(s >= 0.5)) for i, s in enumerate(scores)}
    return ScoreTable("synthetic", {KEY: rows}, {"quality": "1"})


def gate_passes(candidate: np.ndarray, baseline: np.ndarray) -> bool:
    """The gate's verdict under the default one-check policy."""
    return decide(POLICY, table(candidate), table(baseline), {"quality": True}).passed


def legacy_passes(candidate: np.ndarray, baseline: np.ndarray, seed: int) -> bool:
    """The gate before: percentile bootstrap of the mean delta, pass when P*(mean* < -δ) <= alpha."""
    deltas = candidate - baseline
    rng = np.random.default_rng(seed)
    means = deltas[rng.integers(0, deltas.size, size=(POLICY.resamples, deltas.size))].mean(axis=1)
    return bool(np.mean(means < -DEFAULT_MARGIN) <= ALPHA)


def pass_rates(draw: Draw, trials: int, seed: int, legacy: bool) -> tuple:
    """(gate pass rate, legacy pass rate or None) over ``trials`` seeded draws."""
    rng = np.random.default_rng(seed)
    new = old = 0
    for trial in range(trials):
        candidate, baseline = draw(rng)
        new += gate_passes(candidate, baseline)
        old += legacy and legacy_passes(candidate, baseline, seed + trial)
    return new / trials, (old / trials if legacy else None)


def _cell(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def run_case(label: str, make: Callable[[float], Draw | None], trials: int, seed: int) -> bool:
    """Print one case's row; True when wrong passes at δ stay within alpha + 2 MC errors."""
    bound = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / trials)
    at_margin, above, null = (make(DEFAULT_MARGIN * k) for k in (1.0, 1.5, 0.0))
    if at_margin is None:
        return True
    started = time.perf_counter()
    wrong, wrong_old = pass_rates(at_margin, trials, seed, legacy=True)
    far = pass_rates(above, trials, seed + 1, legacy=False)[0] if above is not None else None
    power, power_old = pass_rates(null, trials, seed + 2, legacy=True) if null else (None, None)
    ok = wrong <= bound
    seconds = time.perf_counter() - started
    print(
        f"| {label} | {_cell(wrong)}{'' if ok else ' (!)'} | {_cell(wrong_old)} | {_cell(far)} "
        f"| {_cell(power)} | {_cell(power_old)} | {seconds:.0f} |",
        flush=True,
    )
    return ok


def binary_cases(trials: int, seed: int) -> bool:
    """Every binary case; True when all keep the promise."""
    print(
        "\n| rows | base pass rate | answers flipped | wrong passes at δ | before | passes at 1.5δ "
        "| passes, no drop | before | s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ok = True
    for rows in BINARY_ROWS:
        for base_rate in BASE_RATES:
            for flips in FLIP_SHARES:

                def make(
                    drop: float, rows: int = rows, base: float = base_rate, flips: float = flips
                ) -> Draw | None:
                    cells = binary_cells(base, flips, drop)
                    return None if cells is None else lambda rng: binary_pair(rng, rows, cells)

                seed += 3
                ok &= run_case(f"{rows} | {base_rate:.2f} | {flips:.0%}", make, trials, seed)
    return ok


def continuous_cases(
    trials: int, seed: int, rows_only: list[int] | None = None, noise_only: list[float] | None = None
) -> bool:
    """Every continuous case (or those with the given rows / noise); True when all keep the promise."""
    print(
        "\n| rows | noise (sd per score) | wrong passes at δ | before | passes at 1.5δ "
        "| passes, no drop | before | s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ok = True
    for rows in CONTINUOUS_ROWS:
        for noise in NOISE_LEVELS:

            def make(drop: float, rows: int = rows, noise: float = noise) -> Draw | None:
                return lambda rng: continuous_pair(rng, rows, noise, drop)

            seed += 3  # before the filter: a cell's seeds do not depend on which cells run
            if (rows_only and rows not in rows_only) or (noise_only and noise not in noise_only):
                continue
            ok &= run_case(f"{rows} | {noise}", make, trials, seed)
    return ok


def student_t_passes(candidate: np.ndarray, baseline: np.ndarray) -> bool:
    """Student's one-sided t test alone: pass when ``P(t_(n-1) >= (mean + δ) / se) <= alpha``."""
    deltas = candidate - baseline
    return student_t_sf(margin_statistic(deltas), deltas.size - 1) <= ALPHA


def margin_statistic(deltas: np.ndarray) -> float:
    """``T = (mean + δ) / (sd / sqrt(n))`` of the deltas (sd with n - 1); large when well above -δ."""
    return float((deltas.mean() + DEFAULT_MARGIN) / (deltas.std(ddof=1) / math.sqrt(deltas.size)))


def student_t_cases(
    trials: int, seed: int, rows_only: list[int] | None, noise_only: list[float] | None
) -> None:
    """Wrong passes at δ of Student's t alone, on the very tables of ``continuous_cases`` (same seeds).

    The deltas are normal, so this test's true rate is exactly alpha: its figure in a cell shows how
    far that cell's draws alone move a rate (the gate passes only tables this test also passes).
    """
    print("\n| rows | noise (sd per score) | Student's t alone: wrong passes at δ |")
    print("| --- | --- | --- |")
    for rows in CONTINUOUS_ROWS:
        for noise in NOISE_LEVELS:
            seed += 3
            if (rows_only and rows not in rows_only) or (noise_only and noise not in noise_only):
                continue
            rng = np.random.default_rng(seed)
            passes = sum(
                student_t_passes(*continuous_pair(rng, rows, noise, DEFAULT_MARGIN)) for _ in range(trials)
            )
            print(f"| {rows} | {noise} | {_cell(passes / trials)} |", flush=True)


def margin_deltas(rng: np.random.Generator, rows: int, shape: str, sd: float = DELTA_SD) -> np.ndarray:
    """``rows`` paired deltas with true mean exactly -δ and standard deviation ``sd``.

    normal: ``N(-δ, sd^2)``; skewed: ``-δ + sd (1 - E)``, ``E ~ Exp(1)`` (mean 1, sd 1, skewness 2), so
    the deltas have skewness -2, the long tail below (a few rows much worse).
    """
    if shape == "normal":
        return rng.normal(-DEFAULT_MARGIN, sd, rows)
    if shape == "skewed":
        return -DEFAULT_MARGIN + sd * (1 - rng.exponential(1.0, rows))
    raise ValueError(f"unknown shape {shape!r}")


MARGIN_TESTS = ("gate", "bootstrap-t alone", "Student's t alone", "BCa alone")


def margin_verdicts(deltas: np.ndarray, seed: int) -> tuple[bool, bool, bool, bool]:
    """Passes at δ of (the gate's continuous test, bootstrap-t alone, Student's t alone, BCa alone).

    With ``T = (mean + δ) / se``: the gate's test passes when ``max(P*(t* >= T), P(t_(n-1) >= T))
    <= alpha`` (``paired_test`` as the gate calls it), the bootstrap-t alone when ``P*(t* >= T) <=
    alpha``, Student's t alone when ``P(t_(n-1) >= T) <= alpha``, BCa when its lower bound at level
    alpha is above -δ. Bootstrap-t and BCa use the same ``seed``, hence the same resampled rows.
    """
    test = paired_test(deltas, binary=False, resamples=POLICY.resamples, seed=seed)
    assert isinstance(test, StudentizedTest)
    statistic = margin_statistic(deltas)
    gate = test.p_values(DEFAULT_MARGIN)[0] <= ALPHA
    bootstrap_t = float(np.mean(test.t_star >= statistic)) <= ALPHA
    student = student_t_sf(statistic, deltas.size - 1) <= ALPHA
    bca_low = bca(deltas, resamples=POLICY.resamples, seed=seed).interval(ALPHA)[0]
    return gate, bootstrap_t, student, bca_low > -DEFAULT_MARGIN


def rate_with_error(passes: int, samples: int) -> str:
    """``p ± sqrt(p (1 - p) / samples)`` in percent, p = passes / samples."""
    rate = passes / samples
    return f"{rate:.2%} ± {math.sqrt(rate * (1 - rate) / samples):.2%}"


def margin_cases(samples: int, seed: int, rows_list: list[int], shapes: list[str]) -> None:
    """One row per (shape, rows): pass rates at δ of each of ``MARGIN_TESTS`` on the same samples."""
    print(f"\n| deltas | rows | samples | {' | '.join(MARGIN_TESTS)} | s |")
    print("| --- | --- | --- |" + " --- |" * len(MARGIN_TESTS) + " --- |")
    for shape in shapes:
        for rows in rows_list:
            rng = np.random.default_rng([seed, SHAPES.index(shape), rows])
            started = time.perf_counter()
            passes = np.zeros(len(MARGIN_TESTS), dtype=np.int64)
            for _ in range(samples):
                deltas = margin_deltas(rng, rows, shape)
                passes += margin_verdicts(deltas, int(rng.integers(2**32)))
            rates = " | ".join(rate_with_error(int(count), samples) for count in passes)
            seconds = time.perf_counter() - started
            print(f"| {shape} | {rows} | {samples} | {rates} | {seconds:.0f} |", flush=True)


def machine_line() -> str:
    """The machine as the other benchmarks print it (imported late: it loads torch), the CPU model
    (from /proc/cpuinfo where there is one) and count, python and numpy."""
    from common import machine  # bench/ is on sys.path when run as a script

    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
        if line.startswith("model name")
    ]
    model = f"{names[0]}, " if names else ""
    versions = f"python {platform.python_version()}, numpy {np.__version__}"
    return f"{machine()}; {model}{os.cpu_count()} CPUs; {versions}"


def main() -> None:
    """Print the calibration tables (markdown) with trials, Monte Carlo error and machine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", "--samples", type=int, default=1000, help="trials (samples) per cell")
    parser.add_argument("--part", choices=("binary", "continuous", "all", "margin"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rows", type=int, nargs="*", help="continuous (or margin) cells with these row counts only"
    )
    parser.add_argument(
        "--shape", choices=SHAPES, nargs="*", help="--part margin: these shapes of deltas only (default both)"
    )
    parser.add_argument(
        "--noise", type=float, nargs="*", help="continuous cells with these noise levels only"
    )
    parser.add_argument(
        "--student-t",
        action="store_true",
        help="continuous cells: only Student's t alone at δ on the same tables (seconds, no gate runs)",
    )
    args = parser.parse_args()
    error = math.sqrt(ALPHA * (1 - ALPHA) / args.trials)
    unit = "samples" if args.part == "margin" else "trials"
    print(f"machine: {machine_line()}")
    print(
        f"{args.trials} {unit} per cell; δ = {DEFAULT_MARGIN}, alpha = {ALPHA:.1%} one-sided; Monte "
        f"Carlo error of a rate near alpha: ±{error:.2%} (1 se); bound alpha + 2 se = {ALPHA + 2 * error:.2%}"
    )
    if args.part == "margin":
        print(
            f"paired deltas with true mean exactly -δ (sd {DELTA_SD}; skewed: skewness -2, tail below); "
            f"{POLICY.resamples} resamples per sample, shared by the bootstrap-t and BCa; "
            "gate = bootstrap-t capped by Student's t, as shipped"
        )
        margin_cases(args.trials, args.seed, args.rows or list(MARGIN_ROWS), args.shape or list(SHAPES))
        return
    print(
        "'before' = the percentile bootstrap the gate used before its studentized tests, on the same tables; "
        "(!) = above the bound"
    )
    if args.student_t:
        student_t_cases(args.trials, args.seed, args.rows, args.noise)
        return
    ok = True
    if args.part in ("binary", "all"):
        ok &= binary_cases(args.trials, args.seed)
    if args.part in ("continuous", "all"):
        ok &= continuous_cases(args.trials, args.seed, args.rows, args.noise)
    print(f"\nevery case within the promise: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
