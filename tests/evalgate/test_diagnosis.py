"""Loss-curve diagnosis on synthetic curves with a known shape."""

from __future__ import annotations

import math

import pytest

from evalgate.diagnosis import compare_within_sweep, diagnose


def _decay(start: float, end: float, steps: int = 32) -> list[float]:
    return [end + (start - end) * math.exp(-5 * i / steps) for i in range(steps)]


@pytest.mark.parametrize(
    ("losses", "label"),
    [
        (_decay(2.0, 0.5), "healthy"),
        (_decay(2.0, 1.95), "flat"),
        ([2.0] * 32, "flat"),
        (_decay(2.0, 0.5)[:16] + [0.6 + 0.05 * i for i in range(16)], "oscillating"),
        ([0.5 + (0.6 if i % 2 else 0.0) - 0.01 * i for i in range(32)], "oscillating"),
        ([*_decay(2.0, 0.5)[:10], float("nan")], "diverged"),
        ([2.0, 1.8, 1.5, 7.0], "diverged"),
        ([2.0 + 0.05 * i for i in range(32)], "diverged"),
    ],
    ids=["decays", "barely-moves", "constant", "rebounds", "zigzags", "nan", "spike", "rises"],
)
def test_curve_shapes_get_their_label(losses: list[float], label: str) -> None:
    assert diagnose(losses).label == label


def test_reason_quotes_the_figures() -> None:
    reason = diagnose(_decay(2.0, 1.95)).reason

    assert reason.startswith("loss fell 1.7%") and "1.95" in reason


def test_a_rate_learning_far_less_than_its_neighbours_is_flat_within_the_sweep() -> None:
    slow, good, wild = _decay(0.6, 0.5), _decay(0.6, 0.05), [0.6, 0.5, 7.0]
    assert diagnose(slow).label == "healthy"

    changes = compare_within_sweep(
        {3e-5: ("healthy", slow), 3e-4: ("healthy", good), 3e-2: ("diverged", wild)}
    )

    assert set(changes) == {3e-5}
    assert changes[3e-5].label == "flat" and "rate too small" in changes[3e-5].reason
