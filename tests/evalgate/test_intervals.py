"""The interval helper: Tango's paired-proportion test, the studentized and BCa bootstraps, chunking."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import scipy.stats

from evalgate.intervals import (
    CHUNK_ELEMENTS,
    TangoTest,
    bca,
    chunk_sizes,
    is_binary,
    paired_test,
    resample_moments,
    rows_needed,
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
    for shift in (-0.08, -0.05, -0.02, 0.0):
        test = studentized(rng.normal(shift, 0.2, size=80), resamples=2000, seed=1)
        p_noninferior, p_regress = test.p_values(0.05)
        low, high = test.interval(0.01)
        assert (p_noninferior <= 0.01) == (low > -0.05)
        assert (p_regress <= 0.01) == (high < -0.05)


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
