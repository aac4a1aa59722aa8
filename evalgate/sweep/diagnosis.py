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

1. Shared hard batches. Every rate of a sweep sees the same batches in the same order, so a run of
   hard batches lifts every curve at the same steps; at a small rate, whose loss falls little, such a
   run can climb back over ``REBOUND`` x its drop and be called oscillating. So each oscillating
   candidate ``k`` is judged again on its curve divided by the batch difficulty its neighbours show
   (the other non-diverged candidates ``j`` with as many steps):

       r_j,t  = log x_j,t - log median(x_j,t-h .. x_j,t+h)   h = smoothing_span(n), the window cut
                                                            symmetrically at the ends (r_j,0 = 0)
       b_t    = median over j of r_j,t   (the shared log-difficulty of batch t)
       x'_k,t = x_k,t * exp(-b_t)

   A centred running median follows a falling curve exactly and is moved by a run of ``m`` hard
   batches only by about ``m`` steps of the curve's own slope, so ``r_j,t`` is most of what batch
   ``t`` added to ``j``'s loss (of a run of three hard batches on a curve falling 1-3% a step, about
   three quarters). ``k``'s own curve is left out of ``b``: a swing only ``k`` shows stays in
   ``x'_k`` and keeps its label. Where the rates saw different batches, ``b`` is noise of the
   neighbours' own and rarely explains a climb away.
2. Underfit: a healthy candidate whose relative drop is under ``UNDERFIT_SHARE`` of the best drop
   among the sweep's non-diverged candidates is relabelled flat (it learns, but far slower than its
   neighbours: rate too small).

The report's and dashboard's loss charts draw ``smooth`` over the raw curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


def compare_within_sweep(curves: dict[str, tuple[str, list[float]]]) -> dict[str, Diagnosis]:
    """Judge the sweep's candidates against each other (module docstring: shared hard batches, then
    underfit).

    ``curves`` maps a trial's name (``lr=0.0003``) -> (current label, losses); returns the changed
    diagnoses only.
    """
    changes = discount_shared_batches(curves)
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


def discount_shared_batches(curves: dict[str, tuple[str, list[float]]]) -> dict[str, Diagnosis]:
    """Judge each oscillating candidate again on its curve less the batch difficulty its neighbours
    share (step 1 of the module docstring); the changed diagnoses only."""
    changes = {}
    for name, (label, losses) in curves.items():
        neighbours = [
            other
            for other_name, (other_label, other) in curves.items()
            if other_name != name and other_label != "diverged" and len(other) == len(losses)
        ]
        if label != "oscillating" or not neighbours or any(loss <= 0 for loss in losses):
            continue
        difficulty = batch_difficulty(neighbours)
        adjusted = [loss * math.exp(-shift) for loss, shift in zip(losses, difficulty, strict=True)]
        verdict = diagnose(adjusted)
        if verdict.label != "oscillating":
            changes[name] = Diagnosis(
                verdict.label,
                f"{verdict.reason}, once the batch difficulty shared by {len(neighbours)} other "
                "rate(s) is taken out (its climb back is theirs too: hard batches, not the rate)",
            )
    return changes


def batch_difficulty(curves: Sequence[Sequence[float]]) -> list[float]:
    """``b_t``: the median over ``curves`` of each curve's log-loss above its centred running median
    (formula in the module docstring)."""
    per_curve = [_log_residuals(curve) for curve in curves]
    return [float(np.median(column)) for column in zip(*per_curve, strict=True)]


def _log_residuals(curve: Sequence[float]) -> list[float]:
    """``r_t = log x_t - log median(x_t-h .. x_t+h)`` (module docstring); all 0 for a curve with a
    loss <= 0 or not finite."""
    if any(not (loss > 0 and math.isfinite(loss)) for loss in curve):
        return [0.0] * len(curve)
    half = smoothing_span(len(curve))
    residuals = []
    for t, loss in enumerate(curve):
        reach = min(half, t, len(curve) - 1 - t)
        residuals.append(math.log(loss / float(np.median(curve[t - reach : t + reach + 1]))))
    return residuals


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
