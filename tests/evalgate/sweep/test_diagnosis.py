"""Loss-curve diagnosis on synthetic curves with a known shape."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from evalgate.sweep.diagnosis import (
    compare_within_sweep,
    diagnose,
    ema,
    largest_climb,
    smooth,
    smoothing_span,
    stable_at_a_larger_rate,
)


def _decay(start: float, end: float, steps: int = 32) -> list[float]:
    return [end + (start - end) * math.exp(-5 * i / steps) for i in range(steps)]


def _noisy_decay(seed: int, sigma: float) -> list[float]:
    """2.0 -> 0.5 with seeded Gaussian batch noise of standard deviation ``sigma`` on every step."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, 32)
    return [float(v) for v in np.array(_decay(2.0, 0.5)) + noise]


@pytest.mark.parametrize(
    ("losses", "label"),
    [
        (_decay(2.0, 0.5), "healthy"),
        (_decay(2.0, 1.95), "flat"),
        ([2.0] * 32, "flat"),
        (_decay(2.0, 0.5)[:16] + [0.6 + 0.05 * i for i in range(16)], "oscillating"),
        ([1.2 + 0.6 * math.cos(2 * math.pi * i / 16) - 0.02 * i for i in range(32)], "oscillating"),
        ([v + (0.4 if i % 2 else 0.0) for i, v in enumerate(_decay(2.0, 0.5))], "healthy"),
        ([*_decay(2.0, 0.5)[:10], float("nan")], "diverged"),
        ([2.0, 1.8, 1.5, 7.0], "diverged"),
        ([2.0 + 0.05 * i for i in range(32)], "diverged"),
    ],
    ids=[
        "decays",
        "barely-moves",
        "constant",
        "rebounds",
        "slow-swing",
        "per-step-zigzag",
        "nan",
        "spike",
        "rises",
    ],
)
def test_curve_shapes_get_their_label(losses: list[float], label: str) -> None:
    assert diagnose(losses).label == label


@pytest.mark.parametrize("seed", range(20))
def test_a_noisy_but_steadily_falling_curve_is_healthy(seed: int) -> None:
    losses = _noisy_decay(seed, sigma=0.3)
    steps_up = sum(b > a for a, b in itertools.pairwise(losses))
    assert steps_up >= 8  # the raw curve zigzags: a per-step rule would call it oscillating

    assert diagnose(losses).label == "healthy"


def test_a_curve_whose_smoothed_value_climbs_back_is_oscillating() -> None:
    falls = _noisy_decay(0, sigma=0.1)[:16]
    climbs = [0.6 + 0.05 * i + n for i, n in enumerate(np.random.default_rng(1).normal(0.0, 0.1, 16))]

    found = diagnose(falls + climbs)

    assert found.label == "oscillating" and "smoothed loss climbed back" in found.reason


def test_a_diverging_noisy_curve_is_diverged() -> None:
    noise = np.random.default_rng(2).normal(0.0, 0.1, 32)
    losses = [1.0 + 0.03 * i + float(n) for i, n in enumerate(noise)]

    assert diagnose(losses).label == "diverged"


def test_ema_is_bias_corrected_and_starts_at_the_first_value() -> None:
    assert ema([3.0, 3.0, 3.0], span=8) == pytest.approx([3.0, 3.0, 3.0])
    beta = 1 - 2 / 4
    expected_second = ((1 - beta) * beta * 1.0 + (1 - beta) * 5.0) / (1 - beta**2)
    assert ema([1.0, 5.0], span=3) == pytest.approx([1.0, expected_second])
    assert ema([1.0, 5.0, 2.0], span=1) == [1.0, 5.0, 2.0]


def test_smoothing_cuts_batch_noise_by_about_the_root_of_the_span() -> None:
    noise = np.random.default_rng(3).normal(0.0, 1.0, 4000)
    smoothed = np.array(ema(list(noise), span=16))[100:]

    assert smoothing_span(32) == 8 and smoothing_span(8) == 4 and smoothing_span(10_000) == 10
    assert float(smoothed.std()) == pytest.approx(1 / math.sqrt(16), rel=0.15)
    assert len(smooth(list(noise[:32]))) == 32


def test_largest_climb_finds_the_biggest_rise_after_a_low() -> None:
    assert largest_climb([3.0, 1.0, 2.5, 0.5, 1.0]) == (1.5, 2)
    assert largest_climb([3.0, 2.0, 1.0]) == (0.0, 0)


def test_reason_quotes_the_figures() -> None:
    reason = diagnose(_decay(2.0, 1.95)).reason

    assert reason.startswith("loss fell 1.7%") and "1.95" in reason


def test_a_rate_learning_far_less_than_its_neighbours_is_flat_within_the_sweep() -> None:
    slow, good, wild = _decay(0.6, 0.5), _decay(0.6, 0.05), [0.6, 0.5, 7.0]
    assert diagnose(slow).label == "healthy"

    changes = compare_within_sweep(
        {"lr=3e-05": ("healthy", slow), "lr=0.0003": ("healthy", good), "lr=0.03": ("diverged", wild)}
    )

    assert set(changes) == {"lr=3e-05"}
    assert changes["lr=3e-05"].label == "flat" and "rate too small" in changes["lr=3e-05"].reason
    assert "reached by lr=0.0003" in changes["lr=3e-05"].reason


def _with_batches(curve: list[float], difficulty: np.ndarray) -> list[float]:
    """``curve`` with each step's loss scaled by ``exp(difficulty[t])``, the batch every rate sees."""
    return [float(v) for v in np.array(curve) * np.exp(difficulty)]


def _shared_difficulty(seed: int) -> np.ndarray:
    """Log-difficulty of 32 batches: small noise, and a run of three hard batches at steps 20-22."""
    difficulty = np.random.default_rng(seed).normal(0.0, 0.04, 32)
    difficulty[20:23] += 0.25
    return difficulty


SAME = "r=8"
"""The other settings every trial below shares."""


@pytest.mark.parametrize("seed", range(5))
def test_a_small_rate_climbing_on_batches_a_larger_rate_trained_through_is_not_oscillating(seed: int) -> None:
    batches = _shared_difficulty(seed)
    small = _with_batches(_decay(1.0, 0.84), batches)  # falls ~13%: the hard run climbs back over half
    middle, large = _with_batches(_decay(1.0, 0.4), batches), _with_batches(_decay(1.0, 0.3), batches)
    curves = {"small": ("oscillating", small), "middle": ("healthy", middle), "large": ("healthy", large)}
    assert diagnose(small).label == "oscillating"

    settings = {"small": (3e-5, SAME), "middle": (3e-4, SAME), "large": (1e-2, SAME)}

    relabelled = stable_at_a_larger_rate(curves, settings)
    changes = compare_within_sweep(curves, settings)

    assert relabelled["small"].label == "healthy"
    assert "but middle (a larger rate, the same batches) was healthy" in relabelled["small"].reason
    # it fell about 13%, under a quarter of the larger rates' ~60%: the underfit rule then calls it flat
    assert changes["small"].label == "flat" and "rate too small" in changes["small"].reason
    assert "small" not in compare_within_sweep(curves)  # without the rates, nothing tells the batches


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"swinging": (1e-2, SAME), "middle": (3e-4, SAME)}, "the larger rate is the swinging one"),
        ({"swinging": (3e-5, SAME), "middle": (3e-4, "r=16")}, "the larger rate had other settings"),
        ({"swinging": (3e-5, SAME)}, "no other rate"),
    ],
)
def test_an_oscillating_rate_stays_so_unless_a_larger_rate_was_stable_on_the_same_batches(
    settings, why
) -> None:
    swinging = [1.2 + 0.6 * math.cos(2 * math.pi * i / 16) - 0.02 * i for i in range(32)]
    curves = {
        "swinging": ("oscillating", swinging),
        "middle": ("healthy", _decay(1.0, 0.4)),
        "exploded": ("diverged", [1.0, 9.0]),
    }

    assert compare_within_sweep(curves, {**settings, "exploded": (1e-1, SAME)}) == {}, why
