"""A sweep's results, as tuners show them: a table, the best trial, and fitness per hyperparameter.

    files = write_analysis(rows, sweep_root(settings, sweep_id), searched_hyperparameters(config),
                           config=config.to_dict())

Three files land in the sweep's folder, written when training ends and again, with the gate's columns
filled, when the sweep's candidates are decided (``evalgate.report.results``):

- ``results.csv``: one row per candidate: name, status, every hyperparameter, diagnosis, steps trained,
  final train loss (the last step's), final validation loss (the last one measured: at the end for a
  candidate that trained to the end, at its rung for one successive halving stopped), the step halving
  stopped it at and why; then, once gated, its target gain and out-of-domain delta (oriented: ``+`` is
  better; the policy's objective and first ood check) and its verdict (pass or block);
- ``best.yaml``: the best trial's full sweep config (the sweep's own, less ``search``, ``halving`` and
  ``lr_find``, with the trial's rate, schedule and LoRA rank and alpha): ``evalgate sweep best.yaml``
  trains that trial alone;
- ``hyperparameters.png``: one panel per searched hyperparameter that took two values or more, its
  value against the fitness; none when the sweep has a single candidate.

Before gating, the best trial is the one of lowest fitness, a loss: the final validation loss when the
candidates that trained to the end had one measured (a sweep with ``halving``), else the final train
loss. Every candidate sees the same batches in the same order, so last-step train losses compare like
with like. Only trained candidates (status ``trained``, diagnosis not ``diverged``) compete. Once gated,
the best trial is the candidate the gate recommends (``evalgate.gate.selection.recommend``), and there is
no ``best.yaml`` when it recommends none.
"""

from __future__ import annotations

import csv
import json
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
RESULT_COLUMNS = (
    "diagnosis",
    "steps",
    "final_train_loss",
    "final_validation_loss",
    "stopped_at_step",
    "halted",
    "target_gain",
    "ood_delta",
    "verdict",
)
"""The CSV columns after ``name``, ``status`` and the hyperparameters."""
NOT_RERUN = ("search", "halving", "lr_find")
"""Sweep config keys ``best.yaml`` leaves out: it trains one trial."""
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

Basis = Literal["validation", "train", "gate"]


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
class GateOutcome:
    """A candidate's gate result: its verdict and its oriented deltas (``+`` is better)."""

    verdict: str | None
    """pass, block, or None (not decided)."""
    target_gain: float | None
    """The policy's objective check: mean candidate - baseline score."""
    ood_delta: float | None
    """The policy's first out-of-domain check: mean candidate - baseline score."""


@dataclass(frozen=True)
class Gated:
    """The gate's results for a sweep: per candidate name, and the one it recommends."""

    outcomes: Mapping[str, GateOutcome]
    recommended: str | None
    objective: str | None
    """``evaluator/cohort`` of the target gain."""
    why: str = ""
    """Why the recommended candidate was chosen (one line)."""


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
        if self.basis == "gate":
            return f"best trial: {self.result.name}: recommended by the gate among {self.among} candidates"
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
    rows: Sequence[Mapping[str, Any]],
    folder: Path,
    searched: Sequence[str] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    gated: Gated | None = None,
) -> AnalysisFiles:
    """Write ``results.csv``, ``best.yaml`` (when there is a best trial) and ``hyperparameters.png``
    (when there are two candidates or more) into ``folder``. ``searched``: the hyperparameters the sweep
    searched (``searched_hyperparameters``); None: every one that takes two values or more. ``config``:
    the sweep's config as plain data (None: ``best.yaml`` holds only the trial's keys). ``gated``: the
    gate's results, which fill the gate's columns and choose the best trial."""
    results = [trial_result(row, f"candidate {i}") for i, row in enumerate(rows)]
    folder.mkdir(parents=True, exist_ok=True)
    chosen = recommended_trial(results, gated) if gated is not None else best_trial(results)
    best_path = folder / BEST_FILE
    if chosen:
        write_best(chosen, best_path, config, gated.why if gated else "")
    else:
        best_path.unlink(missing_ok=True)
    names = panel_names(results, searched)
    best_name = chosen.result.name if chosen else None
    figure = plot_fitness(results, names, folder / FIGURE_FILE, best_name) if len(results) > 1 else None
    outcomes = gated.outcomes if gated else {}
    table = write_results(results, folder / RESULTS_FILE, outcomes)
    return AnalysisFiles(table, best_path if chosen else None, figure, chosen)


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


def recommended_trial(results: Sequence[TrialResult], gated: Gated) -> Best | None:
    """The candidate the gate recommends; None when it recommends none."""
    decided = sum(1 for r in results if gated.outcomes.get(r.name, GateOutcome(None, None, None)).verdict)
    chosen = next((r for r in results if r.name == gated.recommended), None)
    return Best(chosen, "gate", decided) if chosen else None


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


def best_config(config: Mapping[str, Any] | None, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep config that trains one trial: ``config`` (plain data) less ``NOT_RERUN``, named
    ``<name>-best``, with the trial's ``config_fragment`` over it (its ``scheduler`` and ``lora`` keys
    merged into the sweep's). Without ``config``: the fragment alone."""
    fragment = config_fragment(hyperparameters)
    if config is None:
        return fragment
    plain: dict[str, Any] = json.loads(json.dumps(dict(config)))  # tuples to lists, for YAML
    merged = {key: value for key, value in plain.items() if key not in NOT_RERUN}
    for key, value in fragment.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    merged["name"] = f"{plain.get('name', 'sweep')}-best"
    return merged


# ------------------------------------------------------------------------------------------- writing


def write_results(
    results: Sequence[TrialResult], path: Path, outcomes: Mapping[str, GateOutcome] | None = None
) -> Path:
    """``results.csv``: name, status, every hyperparameter (in first-seen order), then
    ``RESULT_COLUMNS`` (the gate's from ``outcomes``); a value not there is an empty cell."""
    names = hyperparameter_names(results)
    outcomes = outcomes or {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "status", *names, *RESULT_COLUMNS])
        for r in results:
            values = [r.hyperparameters.get(name) for name in names]
            gate = outcomes.get(r.name, GateOutcome(None, None, None))
            stopped_at = r.steps if r.status == "stopped" else None
            measured = [r.diagnosis or None, r.steps, r.train_loss, r.validation_loss, stopped_at, r.halted]
            judged = [gate.target_gain, gate.ood_delta, gate.verdict]
            cells = ("" if v is None else v for v in [*values, *measured, *judged])
            writer.writerow([r.name, r.status, *cells])
    return path


def write_best(best: Best, path: Path, config: Mapping[str, Any] | None = None, why: str = "") -> Path:
    """``best.yaml``: comments saying which trial and why, then the config that trains it alone
    (``best_config``)."""
    lines = [f"# {best.reason}"] + ([f"# {why}"] if why else [])
    if config is None:
        lines.append("# Paste these keys over a sweep config (without search: and halving:) to train it.")
    else:
        lines.append(f"# Train this trial alone: evalgate sweep {path.name}")
    body = yaml.safe_dump(
        best_config(config, best.result.hyperparameters), sort_keys=False, default_flow_style=None
    )
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
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


def plot_fitness(
    results: Sequence[TrialResult], names: Sequence[str], path: Path, best: str | None = None
) -> Path | None:
    """``hyperparameters.png``: per hyperparameter of ``names``, value (x) against fitness (y, lower is
    better): trained candidates filled, stopped ones hollow at their last measured loss, the best trial
    (``best``) red; diverged, failed and unmeasured ones left out (counted in the title). None when
    ``names`` is empty or no candidate has a fitness."""
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
    for axis, name in zip(axes.flat, names, strict=False):
        _panel(axis, name, shown, basis, best)
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
