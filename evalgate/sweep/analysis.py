"""A finished sweep's results, as tuners show them: a table, the best trial, and fitness per hyperparameter.

    files = write_analysis(rows, sweep_root(settings, sweep_id), searched_hyperparameters(config))

Three files land in the sweep's folder:

- ``results.csv``: one row per candidate: name, status, every hyperparameter, steps trained, final train
  loss (the last step's), final validation loss (the last one measured: at the end for a candidate that
  trained to the end, at its rung for one successive halving stopped) and why halving stopped it;
- ``best.yaml``: the best trial's hyperparameters as a sweep config fragment (``learning_rates``,
  ``scheduler``, ``lora``) to paste over a config's keys and train that trial alone;
- ``hyperparameters.png``: one panel per searched hyperparameter that took two values or more, its
  value against the fitness; none when the sweep has a single candidate.

Fitness is a loss, lower is better: the final validation loss when the candidates that trained to the end
had one measured (a sweep with ``halving``), else the final train loss. Every candidate sees the same
batches in the same order, so last-step train losses compare like with like. The best trial is the
trained (status ``trained``, diagnosis not ``diverged``) candidate of lowest fitness; stopped, diverged
and failed candidates never are.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from evalgate.sweep.config import SweepConfig

RESULTS_FILE = "results.csv"
BEST_FILE = "best.yaml"
FIGURE_FILE = "hyperparameters.png"
RESULT_COLUMNS = ("steps", "final_train_loss", "final_validation_loss", "halted")
"""The CSV columns after ``name``, ``status`` and the hyperparameters."""
SCHEDULER_KEYS = {
    "scheduler": "kind",
    "warmup_steps": "warmup_steps",
    "warmup_ratio": "warmup_ratio",
    "final_fraction": "final_fraction",
}
"""Hyperparameter -> key under the config's ``scheduler:``."""
LORA_KEYS = {"lora_r": "r", "lora_alpha": "alpha"}
"""Hyperparameter -> key under the config's ``lora:``."""
HYPERPARAMETER_ORDER = (
    "learning_rate",
    "scheduler",
    "warmup_steps",
    "warmup_ratio",
    "final_fraction",
    "lora_r",
    "lora_alpha",
)
"""The order ``Trial.hyperparameters`` writes them in: the database may not keep it (PostgreSQL's JSONB
sorts keys), so tables and columns put them back in it, any other key after them by name."""
SEARCH_DIMENSIONS = ("learning_rate", "scheduler", "warmup_ratio", "final_fraction", "lora_r", "lora_alpha")
"""The fields of ``SearchSpace`` that are dimensions, each named as the hyperparameter it varies."""
LOG_SCALE = frozenset({"learning_rate"})
"""Hyperparameters whose panel has a log x axis."""

Basis = Literal["validation", "train"]


class AnalysisInputError(ValueError):
    """A candidate row lacks a key or holds a value of the wrong kind; the message names the place."""


@dataclass(frozen=True)
class TrialResult:
    """One candidate's outcome, read from its row (``evalgate.sweep.records.candidate_rows``)."""

    name: str
    status: str
    diagnosis: str
    hyperparameters: Mapping[str, Any]
    steps: int
    train_loss: float | None
    """The last step's loss; None when it is not a finite number (or nothing was trained)."""
    validation_loss: float | None
    """The last validation loss measured; None when none was (or it is not finite)."""
    halted: str
    """Why successive halving stopped it; "" when it did not."""

    @property
    def trained(self) -> bool:
        """Trained to the end without diverging: the only kind that can be the best."""
        return self.status == "trained" and self.diagnosis != "diverged"

    def fitness(self, basis: Basis) -> float | None:
        """The loss it is judged by (lower is better): its final validation or train loss."""
        return self.validation_loss if basis == "validation" else self.train_loss


@dataclass(frozen=True)
class Best:
    """The best trial and how it was chosen."""

    result: TrialResult
    basis: Basis
    among: int
    """How many candidates competed (trained, with a fitness on the basis)."""

    @property
    def reason(self) -> str:
        """One line: which trial, by what, among how many."""
        fitness = self.result.fitness(self.basis)
        chosen = f"lowest final {self.basis} loss ({fitness:.4f}) among {self.among} trained candidates"
        if self.basis == "train":
            chosen += " (no validation loss was measured; diverged ones left out)"
        return f"best trial: {self.result.name}: {chosen}"


@dataclass(frozen=True)
class AnalysisFiles:
    """What ``write_analysis`` wrote: the table, and where there was a best trial or a figure, those."""

    results: Path
    best: Path | None
    figure: Path | None
    chosen: Best | None


def write_analysis(
    rows: Sequence[Mapping[str, Any]], folder: Path, searched: Sequence[str] | None = None
) -> AnalysisFiles:
    """Write ``results.csv``, ``best.yaml`` (when a candidate trained) and ``hyperparameters.png`` (when
    there are two candidates or more) into ``folder``. ``searched``: the hyperparameters the sweep
    searched (``searched_hyperparameters``); None: every one that takes two values or more."""
    results = [trial_result(row, f"candidate {i}") for i, row in enumerate(rows)]
    folder.mkdir(parents=True, exist_ok=True)
    chosen = best_trial(results)
    best_path = write_best(chosen, folder / BEST_FILE) if chosen else None
    names = panel_names(results, searched)
    figure = plot_fitness(results, names, folder / FIGURE_FILE) if len(results) > 1 else None
    return AnalysisFiles(write_results(results, folder / RESULTS_FILE), best_path, figure, chosen)


# ------------------------------------------------------------------------------------- reading rows


def trial_result(row: Mapping[str, Any], where: str) -> TrialResult:
    """The outcome in one candidate row; ``AnalysisInputError`` naming ``where`` and the key when the
    row lacks ``name`` or ``status`` or holds a ``training`` or ``hyperparameters`` that is no mapping."""
    name, status = _text(row, "name", where), _text(row, "status", where)
    where = f"{where} ({name})"
    training = _mapping(row, "training", where)
    losses = training.get("loss") or []
    validation = training.get("validation_loss") or []
    return TrialResult(
        name=name,
        status=status,
        diagnosis=str(row.get("diagnosis") or ""),
        hyperparameters=hyperparameters_of(row, where),
        steps=int(training.get("steps", len(losses))),
        train_loss=_finite(losses[-1]) if losses else None,
        validation_loss=_finite(validation[-1][1]) if validation else None,
        halted=str(training.get("halted") or ""),
    )


def hyperparameters_of(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The row's hyperparameters in ``HYPERPARAMETER_ORDER``, with its ``rate`` as ``learning_rate`` when
    they lack one."""
    stored = _mapping(row, "hyperparameters", where)
    rate = row.get("rate")
    return in_order({"learning_rate": rate, **stored} if rate is not None else stored)


def in_order(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """``hyperparameters`` with the keys of ``HYPERPARAMETER_ORDER`` first, in it, then the others by name."""
    rank = {name: i for i, name in enumerate(HYPERPARAMETER_ORDER)}
    names = sorted(hyperparameters, key=lambda name: (rank.get(name, len(rank)), name))
    return {name: hyperparameters[name] for name in names}


def _text(row: Mapping[str, Any], key: str, where: str) -> str:
    if not isinstance(row.get(key), str):
        raise AnalysisInputError(f"{where}: '{key}' must be text, got {row.get(key)!r}")
    return str(row[key])


def _mapping(row: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = row.get(key) or {}
    if not isinstance(value, Mapping):
        raise AnalysisInputError(f"{where}: '{key}' must be a mapping, got {type(value).__name__}")
    return value


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (JSON stores NaN as null)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# ------------------------------------------------------------------------------------------ choosing


def fitness_basis(results: Sequence[TrialResult]) -> Basis:
    """validation when a trained candidate has a validation loss, else train."""
    measured = any(r.trained and r.validation_loss is not None for r in results)
    return "validation" if measured else "train"


def best_trial(results: Sequence[TrialResult]) -> Best | None:
    """The trained candidate of lowest fitness (the first one on a tie); None when none trained."""
    basis = fitness_basis(results)
    competing = [
        (fitness, i, r)
        for i, r in enumerate(results)
        if r.trained and (fitness := r.fitness(basis)) is not None
    ]
    if not competing:
        return None
    _, _, winner = min(competing, key=lambda entry: entry[:2])
    return Best(winner, basis, len(competing))


def config_fragment(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep config keys that train one trial: ``learning_rates: [rate]``, ``scheduler: {...}``
    and ``lora: {r, alpha}``, each only with the hyperparameters stored."""
    fragment: dict[str, Any] = {}
    if hyperparameters.get("learning_rate") is not None:
        fragment["learning_rates"] = [hyperparameters["learning_rate"]]
    for section, keys in (("scheduler", SCHEDULER_KEYS), ("lora", LORA_KEYS)):
        values = {key: hyperparameters[name] for name, key in keys.items() if name in hyperparameters}
        if values:
            fragment[section] = values
    return fragment


# ------------------------------------------------------------------------------------------- writing


def write_results(results: Sequence[TrialResult], path: Path) -> Path:
    """``results.csv``: name, status, every hyperparameter (in first-seen order), then
    ``RESULT_COLUMNS``; a value not there is an empty cell."""
    names = hyperparameter_names(results)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "status", *names, *RESULT_COLUMNS])
        for r in results:
            values = [r.hyperparameters.get(name) for name in names]
            measured = [r.steps, r.train_loss, r.validation_loss, r.halted]
            writer.writerow([r.name, r.status, *("" if v is None else v for v in [*values, *measured])])
    return path


def write_best(best: Best, path: Path) -> Path:
    """``best.yaml``: a comment saying which trial and why, then its config fragment."""
    header = (
        f"# {best.reason}\n"
        "# Paste these keys over a sweep config (without search: and halving:) to train this trial alone.\n"
    )
    body = yaml.safe_dump(
        config_fragment(best.result.hyperparameters), sort_keys=False, default_flow_style=None
    )
    path.write_text(header + body, encoding="utf-8")
    return path


def hyperparameter_names(results: Sequence[TrialResult]) -> list[str]:
    """Every hyperparameter any candidate has, in first-seen order."""
    return list(dict.fromkeys(name for r in results for name in r.hyperparameters))


def searched_hyperparameters(config: SweepConfig) -> list[str]:
    """The hyperparameters ``config`` searches: the rate, and each dimension its ``search`` lists (a
    search space's dimensions are named as the stored hyperparameters)."""
    if config.search is None:
        return ["learning_rate"]
    listed = [name for name in SEARCH_DIMENSIONS if getattr(config.search, name)]
    return ["learning_rate", *(name for name in listed if name != "learning_rate")]


def panel_names(results: Sequence[TrialResult], searched: Sequence[str] | None = None) -> list[str]:
    """The hyperparameters of ``searched`` (default: every one stored) that take two values or more
    across the candidates: one panel each."""
    names = hyperparameter_names(results) if searched is None else list(searched)
    return [name for name in names if len({repr(r.hyperparameters.get(name)) for r in results}) > 1]


# ------------------------------------------------------------------------------------------ the figure


def plot_fitness(results: Sequence[TrialResult], names: Sequence[str], path: Path) -> Path | None:
    """``hyperparameters.png``: per hyperparameter of ``names``, value (x) against fitness (y, lower is
    better): trained candidates filled, stopped ones hollow at their last measured loss, the best one
    red; diverged, failed and unmeasured ones left out (counted in the title). None when ``names`` is
    empty or no candidate has a fitness."""
    basis = fitness_basis(results)
    shown = [r for r in results if r.status in ("trained", "stopped") and r.fitness(basis) is not None]
    if not names or not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.9 * rows), dpi=110, squeeze=False)
    best = best_trial(results)
    for axis, name in zip(axes.flat, names, strict=False):
        _panel(axis, name, shown, basis, best.result.name if best else None)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    left_out = len(results) - len(shown)
    figure.suptitle(_title(basis, left_out), fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _title(basis: Basis, left_out: int) -> str:
    title = f"final {basis} loss per hyperparameter (hollow: stopped early; red: best)"
    return title + (f"; not shown: {left_out} diverged, failed or unmeasured" if left_out else "")


def _panel(axis: Any, name: str, shown: Sequence[TrialResult], basis: Basis, best: str | None) -> None:
    """One hyperparameter's scatter; a categorical value gets one x position per value, in first-seen
    order."""
    values = [r.hyperparameters.get(name) for r in shown]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    categories = list(dict.fromkeys(str(v) for v in values))
    xs = [float(v) if numeric and v is not None else categories.index(str(v)) for v in values]
    for x, r in zip(xs, shown, strict=True):
        colour = "#d62728" if r.name == best else "#1f77b4"
        face = "none" if r.status == "stopped" else colour
        axis.scatter([x], [r.fitness(basis)], s=28, facecolors=face, edgecolors=colour, linewidths=1.2)
    if numeric and name in LOG_SCALE:
        axis.set_xscale("log")
    elif numeric and all(isinstance(v, int) for v in values):
        axis.set_xticks(sorted({int(x) for x in xs}))
    if not numeric:
        axis.set_xticks(range(len(categories)), categories)
    axis.margins(x=0.2, y=0.15)
    axis.set_xlabel(name, fontsize=8)
    axis.set_ylabel(f"{basis} loss", fontsize=8)
    axis.tick_params(labelsize=7)
