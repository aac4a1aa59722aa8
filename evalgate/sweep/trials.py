"""Trials: the points of a sweep's search space, one candidate each.

A sweep without ``search`` has one trial per learning rate, every other setting its own. With
``search`` (``evalgate.sweep.config.SearchSpace``) the trials are drawn from the space:

- grid: every combination of the listed values, in the order written;
- random: ``trials`` distinct draws, seeded: each listed dimension uniformly, a ``{low, high}`` rate
  log-uniformly (``exp(U(log low, log high))``, kept to 3 significant digits so labels stay readable);
- tpe: Optuna's TPE sampler, round by round (``evalgate.sweep.tpe``).

A constant schedule does not decay, so its final fraction is dropped (and the combination told once).
A trial's label names its rate and every searched dimension (``lr=0.0003 cosine lrf=0.1 r=4``): it is
the candidate's name, unique within the sweep.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from evalgate.sweep.config import (
    ConfigError,
    LoraSettings,
    RateRange,
    Scheduler,
    SchedulerSettings,
    SearchSpace,
    SweepConfig,
)

MAX_DRAWS_PER_TRIAL = 50
"""random: give up looking for a new distinct combination after this many draws per trial wanted."""


@dataclass(frozen=True)
class Trial:
    """One candidate's hyperparameters: peak rate, schedule and LoRA rank and alpha."""

    learning_rate: float
    scheduler: SchedulerSettings
    lora: LoraSettings
    label: str

    def config(self, sweep: SweepConfig) -> SweepConfig:
        """``sweep`` with this trial's schedule and LoRA settings (what its candidate trains with)."""
        return replace(sweep, scheduler=self.scheduler, lora=self.lora)

    def hyperparameters(self) -> dict[str, Any]:
        """Plain data, stored with the candidate."""
        return {
            "learning_rate": self.learning_rate,
            "scheduler": self.scheduler.kind,
            "warmup_steps": self.scheduler.warmup_steps,
            "warmup_ratio": self.scheduler.warmup_ratio,
            "final_fraction": self.scheduler.final_fraction,
            "lora_r": self.lora.r,
            "lora_alpha": self.lora.alpha,
        }


@dataclass(frozen=True)
class Point:
    """A combination of searched values; ``None`` keeps the sweep's own value."""

    learning_rate: float
    scheduler: Scheduler | None = None
    warmup_ratio: float | None = None
    final_fraction: float | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None


def make_trial(sweep: SweepConfig, point: Point) -> Trial:
    """The trial at ``point``: the sweep's settings with the searched ones replaced."""
    kind = point.scheduler or sweep.scheduler.kind
    final = sweep.scheduler.final_fraction if point.final_fraction is None else point.final_fraction
    warmup: dict[str, Any] = {}
    if point.warmup_ratio is not None:
        warmup = {"warmup_ratio": point.warmup_ratio, "warmup_steps": 0}
    scheduler = replace(
        sweep.scheduler, kind=kind, final_fraction=0.0 if kind == "constant" else final, **warmup
    )
    lora = sweep.lora
    if point.lora_r is not None:
        lora = replace(lora, r=point.lora_r)
    if point.lora_alpha is not None:
        lora = replace(lora, alpha=point.lora_alpha)
    return Trial(point.learning_rate, scheduler, lora, _label(point, scheduler))


def _label(point: Point, scheduler: SchedulerSettings) -> str:
    parts = [f"lr={point.learning_rate:g}"]
    if point.scheduler is not None:
        parts.append(scheduler.kind)
    if point.warmup_ratio is not None:
        parts.append(f"warmup={point.warmup_ratio:g}")
    if point.final_fraction is not None and scheduler.kind != "constant":
        parts.append(f"lrf={scheduler.final_fraction:g}")
    if point.lora_r is not None:
        parts.append(f"r={point.lora_r}")
    if point.lora_alpha is not None:
        parts.append(f"alpha={point.lora_alpha}")
    return " ".join(parts)


def sweep_trials(sweep: SweepConfig, rates: Sequence[float]) -> list[Trial]:
    """The trials of a grid or random search, or one per rate without ``search``; ``rates`` are the
    sweep's rates (or those the range test proposed). tpe trials come round by round instead."""
    search = sweep.search
    if search is None:
        return _distinct(sweep, (Point(rate) for rate in rates))
    if search.sampler == "grid":
        trials = _distinct(sweep, _grid(sweep, rates))
        if search.trials is not None and len(trials) > search.trials:
            raise ConfigError(
                f"search: the grid has {len(trials)} combinations, more than trials: {search.trials}"
            )
        return trials
    if search.sampler == "random":
        return _random(sweep, search, rates)
    raise ValueError("tpe trials are asked round by round: see evalgate.sweep.tpe")


def searched_rates(sweep: SweepConfig, rates: Sequence[float]) -> tuple[float, ...] | RateRange:
    """The rate dimension: the search's own, else ``rates`` (the sweep's, or those the range test
    proposed: with ``lr_find`` a random or tpe search draws from their whole range, log-uniformly)."""
    assert sweep.search is not None
    if sweep.search.learning_rate:
        return sweep.search.learning_rate
    if sweep.lr_find and sweep.search.sampler != "grid" and min(rates) < max(rates):
        return RateRange(low=min(rates), high=max(rates))
    return tuple(rates)


def _grid(sweep: SweepConfig, rates: Sequence[float]) -> Iterator[Point]:
    assert sweep.search is not None
    dimensions = listed_dimensions(sweep.search)
    learning_rates = searched_rates(sweep, rates)
    assert not isinstance(learning_rates, RateRange)
    for rate, *values in itertools.product(learning_rates, *(values for _, values in dimensions)):
        yield Point(rate, **{name: value for (name, _), value in zip(dimensions, values, strict=True)})


def listed_dimensions(search: SearchSpace) -> list[tuple[str, tuple[Any, ...]]]:
    """The searched dimensions other than the rate, as ``(Point field, values)``."""
    named = {
        "scheduler": search.scheduler,
        "warmup_ratio": search.warmup_ratio,
        "final_fraction": search.final_fraction,
        "lora_r": search.lora_r,
        "lora_alpha": search.lora_alpha,
    }
    return [(name, values) for name, values in named.items() if values]


def _random(sweep: SweepConfig, search: SearchSpace, rates: Sequence[float]) -> list[Trial]:
    assert search.trials is not None
    rng = random.Random(search.seed)
    learning_rates = searched_rates(sweep, rates)
    dimensions = listed_dimensions(search)
    trials: dict[str, Trial] = {}
    for _ in range(search.trials * MAX_DRAWS_PER_TRIAL):
        if len(trials) == search.trials:
            break
        rate = _draw_rate(rng, learning_rates)
        point = Point(rate, **{name: rng.choice(values) for name, values in dimensions})
        trial = make_trial(sweep, point)
        trials.setdefault(trial.label, trial)
    return list(trials.values())


def _draw_rate(rng: random.Random, rates: tuple[float, ...] | RateRange) -> float:
    if isinstance(rates, RateRange):
        value = math.exp(rng.uniform(math.log(rates.low), math.log(rates.high)))
        return float(f"{value:.3g}")
    return rng.choice(rates)


def _distinct(sweep: SweepConfig, points: Iterator[Point]) -> list[Trial]:
    """Trials in order, each label once (a constant schedule's final fractions fall together)."""
    trials: dict[str, Trial] = {}
    for point in points:
        trial = make_trial(sweep, point)
        trials.setdefault(trial.label, trial)
    return list(trials.values())
