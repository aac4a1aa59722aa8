"""Loss-curve diagnosis of a candidate: healthy, flat, oscillating or diverged.

With ``losses`` the per-step training losses, ``w = max(1, n // 5)`` steps per window,
``start`` the mean of the first window, ``end`` the mean of the last, and ``smooth`` the
``w``-step moving average:

- diverged     a non-finite loss, a loss above ``DIVERGENCE_FACTOR`` x the first loss (training
               stops there), or ``end > RISE_FACTOR x start`` (it ended higher than it began): rate too large.
- flat         ``(start - end) / start < FLAT_DROP``: the loss barely moved; rate too small (or
               nothing left to learn).
- oscillating  after its lowest point the smoothed loss climbs back by more than ``REBOUND`` x the
               drop achieved so far, or the step-to-step residual ``|loss - smooth|`` over the second
               half averages more than ``ROUGHNESS`` x ``start`` (relative to where the loss began, so
               a loss near zero with small absolute noise is not called oscillating): rate on the edge
               of stability.
- healthy      otherwise: the loss fell by at least ``FLAT_DROP`` and settled.

Within a sweep, rates are also compared with each other (``compare_within_sweep``): a healthy
candidate whose relative drop is under ``UNDERFIT_SHARE`` of the best drop among the sweep's
non-diverged candidates is relabelled flat (it learns, but far slower than its neighbours: rate too
small).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DIVERGENCE_FACTOR = 3.0
RISE_FACTOR = 1.25
FLAT_DROP = 0.10
REBOUND = 0.5
ROUGHNESS = 0.15
MIN_STEPS = 4
UNDERFIT_SHARE = 0.25
LABELS = ("healthy", "flat", "oscillating", "diverged")


@dataclass(frozen=True)
class Diagnosis:
    """A label from ``LABELS`` and the figures that decided it."""

    label: str
    reason: str


def diagnose(losses: list[float]) -> Diagnosis:
    """Classify a per-step loss curve (see the module docstring for the rules)."""
    if any(not math.isfinite(loss) for loss in losses):
        return Diagnosis("diverged", "non-finite loss")
    if len(losses) < MIN_STEPS:
        return Diagnosis("flat" if len(losses) < 2 else "healthy", f"only {len(losses)} steps")
    if max(losses) > DIVERGENCE_FACTOR * losses[0]:
        return Diagnosis(
            "diverged", f"loss reached {max(losses):.3g} > {DIVERGENCE_FACTOR} x start {losses[0]:.3g}"
        )
    window = max(1, len(losses) // 5)
    start, end = _mean(losses[:window]), _mean(losses[-window:])
    if end > RISE_FACTOR * start:
        return Diagnosis("diverged", f"ended at {end:.3g}, above {RISE_FACTOR} x its start {start:.3g}")
    drop = (start - end) / start if start > 0 else 0.0
    if drop < FLAT_DROP:
        return Diagnosis("flat", f"loss fell {drop:.1%} (< {FLAT_DROP:.0%}) from {start:.3g} to {end:.3g}")
    smooth = _moving_average(losses, window)
    lowest = min(range(len(smooth)), key=smooth.__getitem__)
    rebound = max(smooth[lowest:]) - smooth[lowest]
    if rebound > REBOUND * (start - smooth[lowest]):
        return Diagnosis(
            "oscillating", f"smoothed loss climbed back {rebound:.3g} after its low {smooth[lowest]:.3g}"
        )
    half = len(losses) // 2
    residual = _mean([abs(a - b) for a, b in zip(losses[half:], smooth[half:], strict=True)])
    if residual > ROUGHNESS * start:
        return Diagnosis(
            "oscillating", f"step-to-step swing {residual:.3g} > {ROUGHNESS} x start loss {start:.3g}"
        )
    return Diagnosis("healthy", f"loss fell {drop:.1%} from {start:.3g} to {end:.3g}")


def relative_drop(losses: list[float]) -> float:
    """``(start - end) / start`` with the windows of ``diagnose``; 0 for short or non-finite curves."""
    if len(losses) < 2 or any(not math.isfinite(loss) for loss in losses):
        return 0.0
    window = max(1, len(losses) // 5)
    start, end = _mean(losses[:window]), _mean(losses[-window:])
    return (start - end) / start if start > 0 else 0.0


def compare_within_sweep(curves: dict[float, tuple[str, list[float]]]) -> dict[float, Diagnosis]:
    """Relabel healthy candidates that learned far less than the sweep's best rate.

    ``curves`` maps rate -> (current label, losses); returns the changed diagnoses only.
    """
    drops = {rate: relative_drop(losses) for rate, (label, losses) in curves.items() if label != "diverged"}
    if not drops:
        return {}
    best_rate = max(drops, key=drops.__getitem__)
    best = drops[best_rate]
    return {
        rate: Diagnosis(
            "flat",
            f"loss fell {drops[rate]:.1%}, under {UNDERFIT_SHARE:.0%} of the {best:.1%} reached at "
            f"rate {best_rate:g}: rate too small",
        )
        for rate, (label, _) in curves.items()
        if label == "healthy" and rate in drops and drops[rate] < UNDERFIT_SHARE * best
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values ending at each position."""
    return [_mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
