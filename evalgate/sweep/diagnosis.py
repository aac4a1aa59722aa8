"""Loss-curve diagnosis of a candidate: healthy, flat, oscillating or diverged.

With ``losses`` the per-step training losses ``x_1..x_n``, ``w = max(1, n // 5)`` steps per window,
``start`` the mean of the first window and ``end`` the mean of the last, the curve is judged on its
smoothed version ``s`` (``smooth``): a bias-corrected exponential moving average, as in Adam's moment
estimates and TensorBoard's smoothing,

    m_0 = 0,   m_t = beta * m_(t-1) + (1 - beta) * x_t,   s_t = m_t / (1 - beta^t),
    beta = 1 - 2 / (span + 1),   span = clamp(n // 4, MIN_SPAN, MAX_SPAN)  (8 steps for 32 steps).

``s_1 = x_1`` (the correction removes the pull towards 0 of the first steps), and each ``s_t`` is a
weighted mean of ``x_1..x_t`` whose weights fall by ``beta`` per step back. White batch noise of
standard deviation ``sigma`` leaves about ``sigma / sqrt(span)`` in ``s``, and a swing of period
``p`` steps keeps most of its amplitude when ``p`` is well above ``span``: the smoothed curve rises
only when the loss itself climbs for several steps, not when one batch is harder than the last.

- diverged     a non-finite loss, a loss above ``DIVERGENCE_FACTOR`` x the first loss (training
               stops there), or ``end > RISE_FACTOR x start`` (it ended higher than it began): rate too large.
- flat         ``(start - end) / start < FLAT_DROP``: the loss barely moved; rate too small (or
               nothing left to learn).
- oscillating  the smoothed loss climbs back, at some step, by more than ``REBOUND`` x its drop
               ``start - min(s)``: the largest climb ``max_j (s_j - min(s_1..s_j))`` of the smoothed
               curve (a rebound after its lowest point, or one long swing up and down again): rate on
               the edge of stability. Per-step swings of a noisy but falling loss are not oscillation.
- healthy      otherwise: the loss fell by at least ``FLAT_DROP`` and the smoothed loss kept falling.

Within a sweep, rates are also compared with each other (``compare_within_sweep``), in two steps:

1. Oscillation is the rate's only when no larger rate was stable on the same batches. Training is
   less stable the larger the rate, all else equal, so an oscillating candidate is relabelled
   healthy when a candidate with a larger rate, the same other settings and as many steps (so the
   same batches in the same order) was healthy or flat. Its climb back then came from the batches
   every rate saw (a run of hard batches lifts a curve that fell little, at a small rate, by more
   than ``REBOUND`` x its drop), not from a rate on the edge of stability.
2. Underfit: a healthy candidate whose relative drop is under ``UNDERFIT_SHARE`` of the best drop
   among the sweep's non-diverged candidates is relabelled flat (it learns, but far slower than its
   neighbours: rate too small).

The report's and dashboard's loss charts draw ``smooth`` over the raw curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DIVERGENCE_FACTOR = 3.0
RISE_FACTOR = 1.25
FLAT_DROP = 0.10
REBOUND = 0.5
MIN_STEPS = 4
UNDERFIT_SHARE = 0.25
MIN_SPAN = 4
"""Shortest smoothing span, in steps."""
MAX_SPAN = 10
"""Longest smoothing span, in steps (a swing over a few tens of steps stays visible in a long curve)."""
LABELS = ("healthy", "flat", "oscillating", "diverged")


@dataclass(frozen=True)
class Diagnosis:
    """A label from ``LABELS`` and the figures that decided it."""

    label: str
    reason: str


def smoothing_span(steps: int) -> int:
    """The EMA span of a curve of ``steps`` steps: ``clamp(steps // 4, MIN_SPAN, MAX_SPAN)``."""
    return min(MAX_SPAN, max(MIN_SPAN, steps // 4))


def ema(values: Sequence[float], span: int) -> list[float]:
    """Bias-corrected exponential moving average (formula in the module docstring); ``span >= 1``;
    ``span`` 1 returns the values unchanged. Same length as ``values``; each output lies within the
    range of the values up to it."""
    if span < 1:
        raise ValueError(f"span must be at least 1, got {span}")
    beta = 1.0 - 2.0 / (span + 1)
    average, out = 0.0, []
    for step, value in enumerate(values, start=1):
        average = beta * average + (1.0 - beta) * value
        out.append(average / (1.0 - beta**step))
    return out


def smooth(losses: Sequence[float]) -> list[float]:
    """The smoothed curve the diagnosis judges and the charts draw: ``ema`` at ``smoothing_span``."""
    return ema(losses, smoothing_span(len(losses)))


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
    smoothed = smooth(losses)
    climb, at = largest_climb(smoothed)
    fallen = start - min(smoothed)
    if climb > REBOUND * fallen:
        return Diagnosis(
            "oscillating",
            f"smoothed loss climbed back {climb:.3g} by step {at + 1}, "
            f"over {REBOUND} x its drop {fallen:.3g}",
        )
    return Diagnosis("healthy", f"loss fell {drop:.1%} from {start:.3g} to {end:.3g}")


def largest_climb(values: Sequence[float]) -> tuple[float, int]:
    """``max_j (values[j] - min(values[:j + 1]))`` and the index ``j`` where it is reached (0 and 0
    for a curve that never rises)."""
    lowest, best, at = math.inf, 0.0, 0
    for index, value in enumerate(values):
        lowest = min(lowest, value)
        if value - lowest > best:
            best, at = value - lowest, index
    return best, at


def relative_drop(losses: list[float]) -> float:
    """``(start - end) / start`` with the windows of ``diagnose``; 0 for short or non-finite curves."""
    if len(losses) < 2 or any(not math.isfinite(loss) for loss in losses):
        return 0.0
    window = max(1, len(losses) // 5)
    start, end = _mean(losses[:window]), _mean(losses[-window:])
    return (start - end) / start if start > 0 else 0.0


def compare_within_sweep(
    curves: dict[str, tuple[str, list[float]]], settings: Mapping[str, tuple[float, str]] | None = None
) -> dict[str, Diagnosis]:
    """Judge the sweep's candidates against each other (module docstring: oscillation, then underfit).

    ``curves`` maps a trial's name (``lr=0.0003``) -> (current label, losses); ``settings`` maps it ->
    (learning rate, a key of its other settings), without which step 1 is skipped. Returns the
    changed diagnoses only.
    """
    changes = stable_at_a_larger_rate(curves, settings or {})
    labels = {name: changes[name].label if name in changes else label for name, (label, _) in curves.items()}
    drops = {
        name: relative_drop(losses) for name, (_, losses) in curves.items() if labels[name] != "diverged"
    }
    if not drops:
        return changes
    best_name = max(drops, key=drops.__getitem__)
    best = drops[best_name]
    for name in drops:
        if labels[name] == "healthy" and drops[name] < UNDERFIT_SHARE * best:
            changes[name] = Diagnosis(
                "flat",
                f"loss fell {drops[name]:.1%}, under {UNDERFIT_SHARE:.0%} of the {best:.1%} reached by "
                f"{best_name}: rate too small",
            )
    return changes


def stable_at_a_larger_rate(
    curves: dict[str, tuple[str, list[float]]], settings: Mapping[str, tuple[float, str]]
) -> dict[str, Diagnosis]:
    """Oscillating candidates relabelled healthy because a larger rate was stable on the same batches
    (step 1 of the module docstring)."""
    changes = {}
    for name, (label, losses) in curves.items():
        if label != "oscillating" or name not in settings:
            continue
        rate, others = settings[name]
        stable = [
            other
            for other, (other_label, other_losses) in curves.items()
            if other_label in ("healthy", "flat")
            and other in settings
            and settings[other][0] > rate
            and settings[other][1] == others
            and len(other_losses) == len(losses)
        ]
        if stable:
            larger = min(stable, key=lambda other: settings[other][0])
            changes[name] = Diagnosis(
                "healthy",
                f"{diagnose(losses).reason}, but {larger} (a larger rate, the same batches) was "
                f"{curves[larger][0]}: the climb came from the batches, not from the rate",
            )
    return changes


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
