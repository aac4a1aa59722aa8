"""The learning-rate schedule as a multiplier of the peak rate, shared by both trainers.

For optimizer step ``s`` (0-based) of ``T``, with ``w`` warmup steps, ``p = (s - w) / (T - w)`` the
decay's progress and ``f`` the final fraction (``lrf``):

    warmup        s / w                       ((s + 1) / (w + 1) for step decay)
    constant      1
    linear        f + (1 - f) * (1 - p)
    cosine        f + (1 - f) * (1 + cos(pi * p)) / 2
    step          max(f, gamma ** ((s - w) // step_size))

With ``f = 0`` these are the transformers schedules ``constant_with_warmup``, ``linear`` and
``cosine``: the peft path uses this function too, so a final fraction means the same in both.
"""

from __future__ import annotations

import math

from evalgate.sweep.config import SchedulerSettings


def warmup_steps(settings: SchedulerSettings, total: int) -> int:
    """``warmup_steps``, else ``ceil(total x warmup_ratio)``."""
    return settings.warmup_steps or math.ceil(total * settings.warmup_ratio)


def schedule_factor(settings: SchedulerSettings, step: int, total: int) -> float:
    """Multiplier of the peak rate at optimizer step ``step`` (0-based) of ``total`` (formulas above)."""
    warmup = warmup_steps(settings, total)
    final = settings.final_fraction
    if settings.kind == "step":
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(final, float(settings.gamma ** ((step - warmup) // settings.step_size)))
    if step < warmup:
        return step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if settings.kind == "linear":
        return final + (1.0 - final) * (1.0 - progress)
    if settings.kind == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0
