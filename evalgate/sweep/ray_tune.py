"""Ray Tune backend for the learning-rate sweep: one trial per rate, optional ASHA early stopping.

    evalgate sweep examples/sweep.yaml --ray [--asha]

A config with ``search`` or ``halving``, or a call with ``groups``, runs fused groups of trials as Ray
trials instead (``evalgate.sweep.ray_groups``); what follows is the one-rate-per-trial path.

Each trial runs the plain sweep's training path (``load_model``, ``attach_adapter``,
``tokenize_rows``, ``train_candidate``) into the same folder, ``<sweep root>/lr-<rate>``, so for one
config its candidates equal the sequential sweep's. Trials never touch the database: each reports its
outcome (curves, adapter folder, diagnosis) as its last result, and the driver writes the candidate
rows. Re-running the same config skips finished candidates; an interrupted Ray experiment over the
same unfinished rates is restored (errored trials included). Ray keeps its temp files and results
under ``<home>/ray``.

With ``asha=True`` the validation loss is computed every ``checkpoint_every`` steps and reported to an
``ASHAScheduler`` that stops the weakest trials. Validation rows come from the dataset version's
``validation`` split; without one, the last tenth of the train rows (at least one row, in stored order)
is held out of training, so those candidates no longer match the plain sweep's. A stopped trial keeps
the adapter saved at its last evaluation; its ``training`` JSON says ``"stopped_by": "asha"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from evalgate.core.settings import Settings, configure_environment
from evalgate.data.store import DatasetStore, VersionInfo
from evalgate.modeling.loading import model_fingerprint
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.diagnosis import diagnose
from evalgate.sweep.records import (
    candidate_rows,
    claim_pending,
    finish_candidate,
    finish_sweep,
    open_sweep,
    relabel_within_sweep,
    sweep_root,
)
from evalgate.sweep.run import (
    SweepResult,
    mentions_out_of_memory,
    prepare_training,
    sweep_rates,
    train_rows,
)
from evalgate.sweep.training.fused import total_steps
from evalgate.sweep.training.peft_trainer import (
    ADAPTER_DIR,
    TrainingInputError,
    TrainingOutcome,
    attach_adapter,
    tokenize_rows,
    train_candidate,
)
from evalgate.sweep.trials import Point, make_trial

INSTALL_HINT = "Ray Tune is not installed: pip install 'evalgate[ray]'"
VALIDATION_SPLIT = "validation"
HOLDOUT_FRACTION = 0.1
"""Share of the train rows held out for ASHA when the dataset has no validation split."""
MAX_TEMP_DIR_BYTES = 40
"""Longest Ray temp dir under ``home`` that keeps Ray's socket paths within the Unix limit."""
OUTCOME = "evalgate_outcome"
"""Result key of a trial's outcome as JSON: diagnosis, adapter folder and training curves."""
FINISHED = "evalgate_finished"
"""Result key set only by a trial's last report: training ran to its end."""


class RayNotInstalledError(ImportError):
    """The Ray backend was asked for but ``ray[tune]`` is not installed."""


class TrialsFailedError(RuntimeError):
    """Some trials raised errors other than running out of memory (their candidates are ``failed``)."""


@dataclass(frozen=True)
class TrialInputs:
    """What every trial of one Ray sweep gets (shipped to the workers through Ray's object store)."""

    config: SweepConfig
    home: Path
    root: Path
    rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]] | None


@dataclass(frozen=True)
class RayOptions:
    """How the trials are scheduled."""

    resources: dict[str, float]
    asha: bool
    max_concurrent: int | None


def require_ray() -> None:
    """Raise ``RayNotInstalledError`` with the install command when Ray Tune cannot be imported."""
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError as error:
        raise RayNotInstalledError(INSTALL_HINT) from error


def run_sweep_ray(
    config: SweepConfig,
    settings: Settings,
    *,
    resources_per_trial: dict[str, float] | None = None,
    asha: bool = False,
    max_concurrent: int | None = None,
    groups: int | None = None,
) -> SweepResult:
    """Train every unfinished rate of ``config`` as one Ray Tune trial each; record them in the database.

    With ``search`` or ``halving`` in the config, or ``groups`` given, the unfinished trials are split
    into fused groups instead, one Ray trial each (``evalgate.sweep.ray_groups.run_group_sweep``).
    """
    require_ray()
    options = RayOptions(dict(resources_per_trial or {"cpu": 1}), asha, max_concurrent)
    if groups is not None or config.search is not None or config.halving is not None:
        from evalgate.sweep.ray_groups import run_group_sweep  # builds on this module

        return run_group_sweep(config, settings, options, groups)
    configure_environment(settings)
    store = DatasetStore.from_settings(settings)
    version = store.get(config.dataset)
    rows, eval_rows = split_rows(store, version, asha, config.self_replay)
    if asha:
        check_asha_fits(config, len(rows))
    rates = driver_rates(config, settings, rows)
    sweep_id, resumed = open_sweep(store.sessions, config, version)
    pending = _claim_pending(store.sessions, sweep_id, rates, config)
    status = "failed"
    try:
        unfinished: list[float] = []
        if pending:
            inputs = TrialInputs(config, settings.home, sweep_root(settings, sweep_id), rows, eval_rows)
            with local_ray(settings.home, options.resources):
                trials = _fit(inputs, list(pending), settings.home / "ray", sweep_id, options)
            unfinished = _record_trials(store.sessions, pending, trials)
        relabel_within_sweep(store.sessions, sweep_id)
        status = "interrupted" if unfinished else "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        finish_sweep(store.sessions, sweep_id, status)
    return SweepResult(sweep_id, version.label, resumed, candidate_rows(store.sessions, sweep_id))


def split_rows(
    store: DatasetStore, version: VersionInfo, asha: bool, self_replay: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Train rows and, with ASHA, validation rows (the validation split, else a held-out tail)."""
    rows = [dict(row) for row in train_rows(store, version, self_replay)]
    if not asha:
        return rows, None
    splits = store.load(version.label)
    if VALIDATION_SPLIT in splits:
        validation = [dict(row) for row in splits[VALIDATION_SPLIT] if row["reference"]]
        if validation:
            return rows, validation
    held = max(1, int(len(rows) * HOLDOUT_FRACTION))
    if held >= len(rows):
        return rows, rows[-1:]  # a single train row: evaluate on it rather than train on nothing
    return rows[:-held], rows[-held:]


def driver_rates(config: SweepConfig, settings: Settings, rows: list[dict[str, Any]]) -> tuple[float, ...]:
    """The config's rates, or the range test's proposal with ``lr_find`` (run here, in the driver)."""
    if not config.lr_find:
        return config.learning_rates
    return sweep_rates(config, prepare_training(config, settings.home, rows))


def _claim_pending(
    sessions: sessionmaker[Session], sweep_id: int, rates: tuple[float, ...], config: SweepConfig
) -> dict[float, int]:
    """Candidate ids of the rates still to train, in config order (finished candidates are left alone).

    Trials start in this order, which decides what ASHA compares a trial with when it reaches a rung.
    """
    trials = [make_trial(config, Point(rate)) for rate in rates]
    pending = claim_pending(sessions, sweep_id, trials, config.base_model)
    return {trial.learning_rate: candidate_id for trial, candidate_id in pending.items()}


@contextmanager
def local_ray(home: Path, resources: Mapping[str, float]) -> Iterator[None]:
    """Start a local Ray (temp files under ``<home>/ray``) unless one is running; stop what we started."""
    import ray

    if ray.is_initialized():
        yield
        return
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp_dir = ray_temp_dir(home)
    temp_dir.mkdir(parents=True, exist_ok=True)
    cpus = max(os.cpu_count() or 1, int(resources.get("cpu", 1)))
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        _temp_dir=str(temp_dir),
        configure_logging=False,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def ray_temp_dir(home: Path) -> Path:
    """``<home>/ray/tmp``, or a short folder in the system temp dir when that path is too long.

    Ray puts Unix sockets about 65 characters deep in its temp dir, and a socket path may not exceed
    107 bytes.
    """
    preferred = home / "ray" / "tmp"
    if len(str(preferred).encode()) <= MAX_TEMP_DIR_BYTES:
        return preferred
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"evalgate-ray-{digest}"


def experiment_name(sweep_id: int, rates: list[float], asha: bool) -> str:
    """One Ray experiment per sweep and set of unfinished rates, so a restore resumes exactly those."""
    digest = hashlib.sha256(json.dumps([rates, asha]).encode()).hexdigest()[:10]
    return f"sweep-{sweep_id}-{digest}"


def _fit(
    inputs: TrialInputs, rates: list[float], ray_home: Path, sweep_id: int, options: RayOptions
) -> list[tuple[float, str, dict[str, Any]]]:
    """Run (or restore and finish) the experiment; ``(rate, trial status, last result)`` per trial."""
    from ray import tune

    path = ray_home / "experiments" / experiment_name(sweep_id, rates, options.asha)
    max_t = _max_steps(inputs.config, len(inputs.rows)) + 1  # +1: the last evaluation is no cut-off
    scheduler = asha_scheduler(max_t, inputs.config.checkpoint_every) if options.asha else None
    trainable = tune.with_parameters(train_trial, inputs=inputs)
    found = fit_experiment(trainable, options, ("learning_rate", rates), path, scheduler)
    return [(float(rate), status, result) for rate, status, result in found]


def fit_experiment(
    trainable: Any, options: RayOptions, space: tuple[str, list[Any]], path: Path, scheduler: Any
) -> list[tuple[Any, str, dict[str, Any]]]:
    """Run (or restore and finish) the experiment at ``path``: one trial per value of the parameter
    ``space = (name, values)``. Returns ``(value, trial status, last result)`` per trial."""
    from ray import tune

    name, values = space
    trainable = tune.with_resources(trainable, options.resources)
    if path.is_dir() and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={name: tune.grid_search(values)},
            tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=options.max_concurrent),
            run_config=tune.RunConfig(name=path.name, storage_path=str(path.parent), verbose=0),
        )
    tuner.fit()
    analysis = tune.ExperimentAnalysis(str(path))
    return [
        (trial.config[name], trial.status, {**(trial.last_result or {}), **_error_of(trial)})
        for trial in analysis.trials
    ]


def _error_of(trial: Any) -> dict[str, str]:
    """``{"error": text}`` from an errored trial's error file (Ray keeps it out of the last result)."""
    path = trial.error_file if trial.status == "ERROR" else None
    if not path or not Path(path).is_file():
        return {}
    return {"error": Path(path).read_text(encoding="utf-8", errors="replace")}


def check_asha_fits(config: SweepConfig, rows: int) -> None:
    """Refuse ``--asha`` when its first rung (``checkpoint_every`` steps, where the first validation loss
    is reported) does not come before a candidate's last step: ASHA could never compare trials."""
    steps = total_steps(config, rows)
    if config.checkpoint_every >= steps:
        raise TrainingInputError(
            f"checkpoint_every is {config.checkpoint_every} but each candidate trains {steps} steps: with "
            f"--asha the validation loss is reported every checkpoint_every steps, so set checkpoint_every "
            f"below {steps} (or train longer with max_steps or epochs)"
        )


def asha_scheduler(max_t: int, grace_period: int) -> Any:
    """ASHA on the reported ``eval_loss`` (lower is better) over ``step``: rungs at ``grace_period x
    2^i`` steps below ``max_t``; at each, a trial worse than the better half reported there stops."""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="step",
        metric="eval_loss",
        mode="min",
        max_t=max_t,
        grace_period=grace_period,
        reduction_factor=2,
    )


def _max_steps(config: SweepConfig, rows: int) -> int:
    """An upper bound on a candidate's optimizer steps."""
    if config.max_steps:
        return config.max_steps
    batches = -(-rows // config.batch_size)
    return int(-(-config.epochs * batches // config.gradient_accumulation)) + 1


def _record_trials(
    sessions: sessionmaker[Session],
    pending: dict[float, int],
    trials: list[tuple[float, str, dict[str, Any]]],
) -> list[float]:
    """Write each trial's outcome on its candidate; return the rates whose trials did not end."""
    unfinished, errors = [], []
    for rate, status, result in trials:
        candidate_id = pending.get(rate)
        if candidate_id is None:
            continue
        if status == "ERROR":
            error = trial_error(result)
            errors.append(f"lr={rate:g}: {error}")
            finish_candidate(sessions, candidate_id, status="failed", error=error)
        elif status == "TERMINATED" and OUTCOME in result:
            finish_candidate(sessions, candidate_id, **candidate_values(result))
        else:
            unfinished.append(rate)
            finish_candidate(sessions, candidate_id, status="pending", error=f"trial {status.lower()}")
    serious = [error for error in errors if "out of memory" not in error]
    if serious:
        raise TrialsFailedError("; ".join(serious))
    return unfinished


def trial_error(result: dict[str, Any]) -> str:
    """A one-line reason for an errored trial (out-of-memory errors say so, as in the plain sweep)."""
    text = str(result.get("error", "")) or "trial raised an error (see the Ray trial log)"
    if mentions_out_of_memory(text):
        return f"out of memory: {text.strip().splitlines()[-1]}"
    return text.strip().splitlines()[-1]


def candidate_values(result: Mapping[str, Any]) -> dict[str, Any]:
    """Candidate columns from a trial's last result."""
    outcome = json.loads(result[OUTCOME])
    return {
        "status": "diverged" if outcome["diagnosis"] == "diverged" else "trained",
        "diagnosis": outcome["diagnosis"],
        "adapter_uri": outcome["adapter_uri"],
        "adapter_hash": model_fingerprint(outcome["adapter_uri"]),
        "training": outcome["training"],
        "error": None,
    }


def train_trial(trial_config: dict[str, Any], inputs: TrialInputs) -> None:
    """One Ray Tune trial: the plain sweep's training of one rate, reported back as the last result."""
    from ray import tune

    rate = float(trial_config["learning_rate"])
    config = inputs.config
    setup = prepare_training(config, inputs.home, inputs.rows)
    tokenizer = setup.tokenizer
    eval_examples = (
        tokenize_rows(tokenizer, inputs.eval_rows, config.max_seq_length) if inputs.eval_rows else None
    )
    output_dir = inputs.root / f"lr-{rate:g}"
    reporter = TuneReporter(output_dir / ADAPTER_DIR)
    outcome = train_candidate(
        attach_adapter(setup.base, config),
        tokenizer,
        setup.examples,
        config,
        rate,
        output_dir,
        device=setup.device,
        dtype=setup.dtype,
        eval_examples=eval_examples,
        extra_callbacks=[reporter] if eval_examples else (),
    )
    training = {**outcome.curves(), **reporter.eval_curve()}
    last_eval = reporter.eval_losses[-1] if reporter.eval_losses else float("nan")
    metrics = {"step": outcome.steps, "eval_loss": last_eval, FINISHED: True}
    tune.report({**metrics, OUTCOME: _outcome_json(outcome.diagnosis, outcome.adapter_dir, training)})


def _outcome_json(diagnosis: str, adapter_dir: Path, training: dict[str, Any]) -> str:
    return json.dumps({"diagnosis": diagnosis, "adapter_uri": str(adapter_dir), "training": training})


class TuneReporter(TrainerCallback):
    """Reports each validation loss to Ray Tune, after saving the adapter as it is at that step.

    Each report carries the outcome so far, marked ``"stopped_by": "asha"``: if the scheduler stops the
    trial there, that report is its last, and the saved adapter matches it.
    """

    def __init__(self, adapter_dir: Path) -> None:
        self.adapter_dir = adapter_dir
        self.eval_steps: list[int] = []
        self.eval_losses: list[float] = []
        self.started = time.perf_counter()

    def eval_curve(self) -> dict[str, Any]:
        """The validation curve for the candidate's ``training`` JSON (empty without evaluation)."""
        return {"eval_step": self.eval_steps, "eval_loss": self.eval_losses} if self.eval_steps else {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.started = time.perf_counter()

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        from ray import tune

        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        self.eval_steps.append(state.global_step)
        self.eval_losses.append(float(loss))
        kwargs["model"].save_pretrained(str(self.adapter_dir))
        outcome = self._outcome_so_far(state)
        training = {**outcome.curves(), **self.eval_curve(), "stopped_by": "asha"}
        metrics = {"step": state.global_step, "eval_loss": float(loss)}
        tune.report({**metrics, OUTCOME: _outcome_json(outcome.diagnosis, self.adapter_dir, training)})

    def _outcome_so_far(self, state: TrainerState) -> TrainingOutcome:
        logs = [entry for entry in state.log_history if "loss" in entry]
        losses = [float(entry["loss"]) for entry in logs]
        verdict = diagnose(losses)
        return TrainingOutcome(
            adapter_dir=self.adapter_dir,
            steps=state.global_step,
            losses=losses,
            learning_rates=[float(entry.get("learning_rate", 0.0)) for entry in logs],
            wall_seconds=time.perf_counter() - self.started,
            stopped_early=True,
            diagnosis=verdict.label,
            reason=verdict.reason,
        )
