"""The interval helper: Tango's paired-proportion test, the studentized and BCa bootstraps, chunking."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import scipy.special
import scipy.stats

from evalgate.evaluation.intervals import (
    CHUNK_ELEMENTS,
    TangoTest,
    bca,
    chunk_sizes,
    is_binary,
    paired_test,
    regularized_beta,
    resample_moments,
    rows_needed,
    student_t_quantile,
    student_t_sf,
    studentized,
    z_quantile,
)


def test_tango_reproduces_the_worked_example_of_tango_1998() -> None:
    """Tango (1998), section 6.1: 44 pairs, the new treatment never alone effective, the standard once.

    The paper prints, for non-inferiority at Δ = 0.1: Z = 1.709, one-sided p = 0.044 and the lower
    limit -0.096 of the 90% interval. Recomputed by hand from equations (24)-(26):
    A = 88, B = -9.9, C = 0.11, q = (7.7 + 9.9) / 176 = 0.1, Z = 3.4 / sqrt(44 * 0.09) = 1.7086.
    """
    test = TangoTest(gains=0, losses=1, n=44)

    assert test.statistic(-0.1) == pytest.approx(3.4 / math.sqrt(3.96), abs=1e-12)
    assert round(test.statistic(-0.1), 3) == 1.709
    assert round(test.p_values(0.1)[0], 3) == 0.044
    assert round(test.interval(0.05)[0], 3) == -0.096


def test_tango_at_no_difference_is_mcnemars_statistic() -> None:
    test = TangoTest(gains=7, losses=19, n=120)

    assert test.statistic(0.0) == pytest.approx((7 - 19) / math.sqrt(7 + 19))


def test_tango_bounds_solve_the_score_equation_and_bracket_the_estimate() -> None:
    test = TangoTest(gains=4, losses=13, n=100)
    z = z_quantile(0.975)

    low, high = test.interval(0.025)

    assert low < test.mean < high
    assert test.statistic(low) == pytest.approx(z, abs=1e-9)
    assert test.statistic(high) == pytest.approx(-z, abs=1e-9)


@pytest.mark.parametrize(("gains", "losses", "n"), [(0, 0, 50), (3, 9, 100), (0, 50, 50), (12, 2, 40)])
def test_tango_p_value_and_lower_bound_agree_on_the_decision(gains: int, losses: int, n: int) -> None:
    test = TangoTest(gains, losses, n)
    for margin in (0.02, 0.05, 0.1, 0.3):
        p_noninferior, p_regress = test.p_values(margin)
        low, high = test.interval(0.025)
        assert (p_noninferior <= 0.025) == (low > -margin)
        assert (p_regress <= 0.025) == (high < -margin)


def test_fifty_unchanged_binary_rows_cannot_show_non_inferiority_at_five_points() -> None:
    """0.95^50 = 7.7%: a 5-point loss rate leaves 50 rows unchanged too often to rule it out at 2.5%."""
    p_noninferior, _ = TangoTest(gains=0, losses=0, n=50).p_values(0.05)

    assert p_noninferior > 0.025
    assert TangoTest(gains=0, losses=0, n=200).p_values(0.05)[0] < 0.025


def test_bca_matches_scipys_bca_on_a_skewed_continuous_sample() -> None:
    sample = np.random.default_rng(0).gamma(2.0, 1.0, size=80)

    ours = bca(sample, resamples=20_000, seed=1).interval(0.025)
    reference = scipy.stats.bootstrap(
        (sample,), np.mean, method="BCa", n_resamples=20_000, confidence_level=0.95, random_state=2
    ).confidence_interval

    assert ours[0] == pytest.approx(reference.low, abs=0.01)
    assert ours[1] == pytest.approx(reference.high, abs=0.01)
    assert ours[1] - sample.mean() > sample.mean() - ours[0]  # right-skewed data: longer upper arm


def test_studentized_interval_is_close_to_the_t_interval_on_normal_data() -> None:
    sample = np.random.default_rng(4).normal(0.1, 0.3, size=200)
    half = 1.972 * sample.std(ddof=1) / math.sqrt(sample.size)  # t quantile, 199 df, 0.975

    low, high = studentized(sample, resamples=20_000, seed=3).interval(0.025)

    assert low == pytest.approx(sample.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(sample.mean() + half, abs=0.1 * half)


def test_studentized_p_value_and_bounds_agree_on_the_decision() -> None:
    rng = np.random.default_rng(5)
    for shift, size in ((-0.08, 80), (-0.05, 80), (-0.02, 80), (0.0, 80), (0.02, 12), (-0.12, 12)):
        test = studentized(rng.normal(shift, 0.2, size=size), resamples=2000, seed=1)
        p_noninferior, p_regress = test.p_values(0.05)
        low, high = test.interval(0.01)
        assert (p_noninferior <= 0.01) == (low > -0.05)
        assert (p_regress <= 0.01) == (high < -0.05)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 49, 99, 299, 4999, 999_999])
def test_student_t_tail_and_quantile_match_scipy(df: int) -> None:
    for t in (-30.0, -2.5, -0.4, 0.0, 0.7, 1.96, 2.01, 3.3, 12.0):
        assert student_t_sf(t, df) == pytest.approx(scipy.stats.t.sf(t, df), rel=1e-8, abs=1e-300)
    for p in (1e-6, 0.0025, 0.025, 0.3, 0.5, 0.975, 0.999):
        assert student_t_quantile(p, df) == pytest.approx(scipy.stats.t.ppf(p, df), rel=1e-8, abs=1e-12)


def test_regularized_beta_matches_scipy_on_both_branches_of_the_continued_fraction() -> None:
    for a, b in ((0.5, 0.5), (2.0, 3.0), (24.5, 0.5), (0.5, 150.0)):
        for x in (1e-9, 0.01, 0.2, 0.5, 0.8, 0.99, 1 - 1e-9):
            assert regularized_beta(x, a, b) == pytest.approx(scipy.special.betainc(a, b, x), rel=1e-9)
    assert regularized_beta(0.0, 2.0, 3.0) == 0.0 and regularized_beta(1.0, 2.0, 3.0) == 1.0


def _bootstrap_t_only(sample: np.ndarray, margin: float, seed: int) -> tuple[float, float]:
    """The bootstrap-t alone: ``P*(t* >= T)`` and ``P*(t* <= T)``, ``T = (mean + margin) / se``."""
    test = studentized(sample, resamples=2000, seed=seed)
    statistic = (sample.mean() + margin) / (sample.std(ddof=1) / math.sqrt(sample.size))
    return float(np.mean(test.t_star >= statistic)), float(np.mean(test.t_star <= statistic))


@pytest.mark.parametrize("skew", [-1.0, 0.0, 1.0])
def test_each_continuous_p_value_is_the_larger_of_bootstrap_t_and_student_t(skew: float) -> None:
    """Either test alone can be the more liberal one (Student's t on normal small samples is exact,
    the bootstrap-t corrects skew): the gate rejects only when both do."""
    rng = np.random.default_rng(21)
    for trial in range(40):
        noise = rng.normal(size=30) if skew == 0 else skew * (rng.exponential(size=30) - 1)
        sample = -0.05 + 0.1 * noise
        test = studentized(sample, resamples=2000, seed=trial)
        statistic = (sample.mean() + 0.05) / (sample.std(ddof=1) / math.sqrt(sample.size))
        boot = _bootstrap_t_only(sample, 0.05, trial)
        student = student_t_sf(statistic, 29), student_t_sf(-statistic, 29)

        assert test.p_values(0.05) == pytest.approx((max(boot[0], student[0]), max(boot[1], student[1])))
        low, high = test.interval(0.025)
        half = student_t_quantile(0.975, 29) * sample.std(ddof=1) / math.sqrt(sample.size)
        assert low <= sample.mean() - half + 1e-12 and high >= sample.mean() + half - 1e-12


def test_normal_samples_at_the_margin_pass_no_more_often_than_students_exact_t_test() -> None:
    """On 1,000 normal samples of 20 rows whose true mean is exactly -δ, Student's t rejects 2.5% in
    expectation (exactly); the gate's test passes only samples that Student's t also rejects, while the
    bootstrap-t alone passes some that Student's t does not."""
    rng = np.random.default_rng(22)
    passed = student = bootstrap_only = 0
    for trial in range(1000):
        sample = rng.normal(-0.05, 0.2, size=20)
        statistic = (sample.mean() + 0.05) / (sample.std(ddof=1) / math.sqrt(sample.size))
        gate = studentized(sample, resamples=1000, seed=trial).p_values(0.05)[0] <= 0.025
        exact = student_t_sf(statistic, 19) <= 0.025
        assert exact or not gate
        passed += gate
        student += exact
        bootstrap_only += _bootstrap_t_only(sample, 0.05, trial)[0] <= 0.025 and not exact

    assert passed <= student and bootstrap_only > 0


def test_a_few_rows_carrying_every_change_keep_finite_bounds() -> None:
    deltas = np.array([0.0] * 97 + [-0.01] * 3)

    test = studentized(deltas, resamples=2000, seed=0)

    assert all(math.isfinite(bound) for bound in test.interval(0.025))
    assert test.p_values(0.05)[0] < 0.001  # every delta is within a fifth of the margin


def test_identical_deltas_decide_by_their_mean() -> None:
    assert studentized(np.zeros(30), resamples=200, seed=0).p_values(0.05) == (0.0, 1.0)
    assert studentized(np.full(30, -0.2), resamples=200, seed=0).p_values(0.05) == (1.0, 0.0)


def test_the_method_follows_the_data() -> None:
    assert is_binary(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    assert not is_binary(np.array([0.0, 1.0]), np.array([0.5, 1.0]))
    assert paired_test(np.array([1.0, 0.0, -1.0]), binary=True, resamples=100, seed=0).method == "tango_score"
    continuous = paired_test(np.array([0.5, 0.0, -1.0]), binary=False, resamples=100, seed=0)
    assert continuous.method == "studentized_bootstrap"


def test_chunking_bounds_memory_and_does_not_change_the_resamples() -> None:
    values = np.random.default_rng(6).normal(size=1000)

    whole = resample_moments(values, 300, seed=9, chunk_elements=10**9)
    chunked = resample_moments(values, 300, seed=9, chunk_elements=7000)

    assert list(chunk_sizes(1000, 300, 7000)) == [7] * 42 + [6]
    assert np.array_equal(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])
    assert all(size * 1_000_000 <= CHUNK_ELEMENTS for size in chunk_sizes(1_000_000, 2000))


def test_a_million_rows_resample_within_a_modest_peak_of_memory() -> None:
    values = np.random.default_rng(7).normal(size=1_000_000)  # 8 MB
    tracemalloc.start()
    try:
        test = studentized(values, resamples=20, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert test.n == 1_000_000 and test.t_star.size == 20
    assert peak < 80 * 2**20  # unchunked, 20 x 10^6 indices alone would take 160 MB


def test_rows_needed_is_the_size_at_which_the_same_proportions_are_decided() -> None:
    test = TangoTest(gains=10, losses=16, n=200)  # mean -0.03, margin 0.05: not decided at 200 rows
    level = 0.025
    assert test.p_values(0.05)[0] > level

    needed = rows_needed(test, 0.05, level)
    assert needed is not None
    larger = TangoTest(round(10 * needed / 200 * 1.02), round(16 * needed / 200 * 1.02), round(needed * 1.02))
    smaller = TangoTest(
        round(10 * needed / 200 * 0.98), round(16 * needed / 200 * 0.98), round(needed * 0.98)
    )

    assert larger.p_values(0.05)[0] <= level < smaller.p_values(0.05)[0]
    assert rows_needed(TangoTest(gains=0, losses=5, n=100), 0.05, level) is None  # mean exactly -margin
