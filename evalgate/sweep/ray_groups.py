"""Ray Tune over fused groups: a searched sweep scaled out, one fused run of several trials per Ray trial.

    evalgate sweep examples/search.yaml --ray [--asha] [--groups N]

Used by ``run_sweep_ray`` when the config has ``search`` or ``halving``, or ``groups`` is given. The
unfinished trials (``sweep_trials``; the tpe sampler asks its trials round by round from results and
is refused here) are dealt round-robin, in trial order, into ``groups`` groups: trial ``i`` goes to
group ``i mod groups``. By default there is one group per trial slot the Ray cluster holds at once
(``resources_per_trial`` against the cluster's totals, at most ``max_concurrent``), at least 2 with
ASHA (it compares groups), never more than there are trials.

Each Ray trial (``train_group``) loads the model, trains its group with the fused trainer
(``evalgate.sweep.training.fused``) into the plain sweep's folders (``<sweep root>/<trial folder>``),
with its own checkpoint ``<sweep root>/group-<index>-fused-checkpoint.pt``, and reports one outcome
per trial as its last result; the driver writes the candidate rows as the plain sweep does
(trained, diverged, or stopped). Adapters train exactly as in one fused run of all the trials: each
sees only its own loss, and the batches come from the sweep's seed. Rows are held out of training as
the plain sweep holds them out for successive halving (``split_validation``, same share and seed)
when halving or ASHA needs them; with ASHA and no halving, ``DEFAULT_VALIDATION_SHARE`` of them.
Successive halving runs inside each group: a group of n trials keeps ``max(1, n // factor)`` at a rung,
so with several groups more trials survive than in one fused run (``groups=1`` halves as the plain
sweep does).

ASHA (``asha=True``) stops whole groups: every ``checkpoint_every`` steps a group saves its fused
checkpoint, then reports the lowest validation loss among its training adapters (``eval_loss``
against ``step``). Ray ends a stopped group's process at that report, so the driver exports that
group's adapters from the checkpoint afterwards (loading the base model once, on the CPU) and records
those still training as ``stopped``, "ASHA stopped its group at step N"; those halving or divergence
stopped before keep their own status. Exporting in the driver, not in the trial before each report,
keeps the reports cheap (no adapter export every ``checkpoint_every`` steps) and does not need the
fused layers taken out mid-run; the checkpoint is written at those steps anyway.

A finished or ASHA-stopped group's checkpoint is removed once its candidates are recorded; an
interrupted one resumes from it (the Ray experiment is restored when the same groups are unfinished).
A group that raises fails its candidates; one that runs out of memory fails them with that reason and
the sweep goes on (run with more groups).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import Settings, configure_environment
from evalgate.data.store import DatasetStore
from evalgate.modeling.loading import load_model, pick_dtype
from evalgate.sweep.config import HalvingSettings, SweepConfig
from evalgate.sweep.ray_tune import (
    FINISHED,
    RayOptions,
    TrialsFailedError,
    asha_scheduler,
    check_asha_fits,
    driver_rates,
    fit_experiment,
    local_ray,
    trial_error,
)
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
    prepare_training,
    record_outcome,
    split_validation,
    train_rows,
)
from evalgate.sweep.training.fused import (
    FusedRun,
    export_checkpoint,
    fused_unsupported,
    total_steps,
    train_fused,
)
from evalgate.sweep.training.peft_trainer import AnswerOnlyCollator, TrainingInputError, TrainingOutcome
from evalgate.sweep.trials import Trial, sweep_trials

GROUP = "group"
"""The Ray parameter: a group's index."""
OUTCOMES = "evalgate_outcomes"
"""Result key of a group's outcomes as JSON: ``{trial label: TrainingOutcome fields}``."""
DEFAULT_VALIDATION_SHARE = HalvingSettings().validation_share
"""Share of the train rows held out for ASHA when the config has no ``halving`` (its default)."""
RAY_RESOURCE_NAMES = {"cpu": "CPU", "gpu": "GPU"}
"""``resources_per_trial`` keys as ``ray.cluster_resources()`` names them (others are custom)."""


@dataclass(frozen=True)
class GroupInputs:
    """What every group of one Ray sweep gets (shipped to the workers through Ray's object store)."""

    config: SweepConfig
    home: Path
    root: Path
    rows: list[dict[str, Any]]
    groups: list[list[Trial]]
    asha: bool


@dataclass(frozen=True)
class GroupStop:
    """A group ASHA stopped: its index, the step of its last report, and its wall seconds."""

    index: int
    step: int
    wall_seconds: float


def run_group_sweep(
    config: SweepConfig, settings: Settings, options: RayOptions, groups: int | None
) -> SweepResult:
    """Train the unfinished trials of ``config`` in fused groups, one Ray trial each; record them."""
    check_groups_apply(config, groups)
    configure_environment(settings)
    store = DatasetStore.from_settings(settings)
    version = store.get(config.dataset)
    rows = [dict(row) for row in train_rows(store, version, config.self_replay)]
    if options.asha:
        check_asha_fits(config, len(rows))
    trials = sweep_trials(config, driver_rates(config, settings, rows))
    sweep_id, resumed = open_sweep(store.sessions, config, version)
    pending = claim_pending(store.sessions, sweep_id, trials, config.base_model)
    status = "failed"
    try:
        unfinished: list[str] = []
        if pending:
            with local_ray(settings.home, options.resources):
                count = groups or default_groups(options, len(pending), _cluster_resources())
                split = group_trials(list(pending), count)
                inputs = GroupInputs(
                    config, settings.home, sweep_root(settings, sweep_id), rows, split, options.asha
                )
                results = _fit_groups(inputs, settings.home / "ray", sweep_id, options)
            unfinished = _record_groups(store.sessions, inputs, pending, results)
        relabel_within_sweep(store.sessions, sweep_id)
        status = "interrupted" if unfinished else "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        finish_sweep(store.sessions, sweep_id, status)
    return SweepResult(sweep_id, version.label, resumed, candidate_rows(store.sessions, sweep_id))


def check_groups_apply(config: SweepConfig, groups: int | None) -> None:
    """Refuse what fused groups under Ray cannot run, naming the setting."""
    if groups is not None and groups < 1:
        raise TrainingInputError(f"groups must be at least 1, got {groups}")
    if config.search is not None and config.search.sampler == "tpe":
        raise TrainingInputError(
            "search.sampler: tpe asks for trials round by round from the results, which --ray does not "
            "feed back; use grid or random with --ray, or run tpe without --ray"
        )
    if config.trainer == "peft":
        raise TrainingInputError(
            "trainer: peft: --ray trains searched or halved sweeps (and --groups) in fused groups; use "
            "trainer: auto or fused, or a plain rate sweep without groups for one rate per Ray trial"
        )


def group_trials(trials: Sequence[Trial], count: int) -> list[list[Trial]]:
    """``count`` groups dealt round-robin in trial order (trial ``i`` in group ``i mod count``); empty
    groups (more groups than trials) are left out."""
    dealt = [list(trials[index::count]) for index in range(count)]
    return [group for group in dealt if group]


def default_groups(options: RayOptions, trials: int, cluster: Mapping[str, float]) -> int:
    """One group per trial slot the Ray ``cluster`` totals hold at once (``fitting_slots``, at most
    ``max_concurrent``); at least 2 with ASHA, which compares groups; at most one per trial."""
    slots = fitting_slots(options.resources, cluster)
    if options.max_concurrent is not None:
        slots = min(slots, options.max_concurrent)
    if options.asha:
        slots = max(slots, 2)
    return max(1, min(slots, trials))


def _cluster_resources() -> dict[str, float]:
    """The running Ray cluster's total resources (``CPU``, ``GPU``, custom names)."""
    import ray

    return dict(ray.cluster_resources())


def fitting_slots(resources: Mapping[str, float], cluster: Mapping[str, float]) -> int:
    """How many trials asking ``resources`` fit in the ``cluster`` totals at once:
    ``min over kinds of floor(total / per trial)``, at least 1."""
    slots = [
        math.floor(cluster.get(RAY_RESOURCE_NAMES.get(kind, kind), 0.0) / amount + 1e-9)
        for kind, amount in resources.items()
        if amount > 0
    ]
    return max(1, min(slots, default=1))


def group_checkpoint(root: Path, index: int) -> Path:
    """The fused checkpoint of group ``index``: ``<sweep root>/group-<index>-fused-checkpoint.pt``."""
    return root / f"group-{index}-fused-checkpoint.pt"


def group_experiment_name(sweep_id: int, groups: list[list[Trial]], asha: bool) -> str:
    """One Ray experiment per sweep and grouping of its unfinished trials (a restore resumes exactly
    those groups)."""
    labels = [[trial.label for trial in group] for group in groups]
    digest = hashlib.sha256(json.dumps([labels, asha]).encode()).hexdigest()[:10]
    return f"sweep-{sweep_id}-groups-{digest}"


def _fit_groups(
    inputs: GroupInputs, ray_home: Path, sweep_id: int, options: RayOptions
) -> list[tuple[int, str, dict[str, Any]]]:
    """Run (or restore and finish) one Ray trial per group; ``(index, trial status, last result)``."""
    from ray import tune

    path = ray_home / "experiments" / group_experiment_name(sweep_id, inputs.groups, options.asha)
    max_t = total_steps(inputs.config, len(inputs.rows)) + 1  # +1: a group's last report is no cut-off
    scheduler = asha_scheduler(max_t, inputs.config.checkpoint_every) if options.asha else None
    trainable = tune.with_parameters(train_group, inputs=inputs)
    indices = list(range(len(inputs.groups)))
    found = fit_experiment(trainable, options, (GROUP, indices), path, scheduler)
    return [(int(index), status, result) for index, status, result in found]


def held_out(
    examples: list[dict[str, list[int]]], config: SweepConfig, asha: bool
) -> tuple[list[dict[str, list[int]]], list[dict[str, list[int]]]]:
    """``(train, validation)`` rows: held out as the plain sweep holds them out for halving (its share),
    for ASHA without halving ``DEFAULT_VALIDATION_SHARE``; nothing held out without either."""
    if config.halving is not None:
        return split_validation(examples, config.halving.validation_share, config.seed)
    if asha:
        return split_validation(examples, DEFAULT_VALIDATION_SHARE, config.seed)
    return examples, []


def train_group(trial_config: dict[str, Any], inputs: GroupInputs) -> None:
    """One Ray trial: train group ``trial_config["group"]`` fused; report its outcomes as the last result
    (with ASHA, the best validation loss every ``checkpoint_every`` steps before that)."""
    from ray import tune

    index = int(trial_config[GROUP])
    config = inputs.config
    setup = prepare_training(config, inputs.home, inputs.rows)
    unsupported = fused_unsupported(setup.base, config, setup.dtype)
    if unsupported:
        raise TrainingInputError(
            f"--ray trains groups with the fused trainer, which does not apply: {unsupported}"
        )
    examples, validation = held_out(setup.examples, config, inputs.asha)
    run = FusedRun(
        config=config,
        trials=inputs.groups[index],
        examples=examples,
        validation=validation,
        collator=AnswerOnlyCollator(setup.tokenizer.pad_token_id or 0),
        device=setup.device,
        dtype=setup.dtype,
        checkpoint=group_checkpoint(inputs.root, index),
        on_validation=report_best_validation if inputs.asha else None,
    )
    _, outcomes = train_fused(setup.base, run, inputs.root)
    steps = total_steps(config, len(examples))
    last = {"step": steps, "eval_loss": final_validation_loss(outcomes, steps), FINISHED: True}
    tune.report({**last, OUTCOMES: outcomes_json(run.trials, outcomes)})


def report_best_validation(step: int, losses: dict[str, float]) -> None:
    """ASHA's input: the lowest validation loss among the group's training adapters at ``step``."""
    from ray import tune

    tune.report({"step": step, "eval_loss": min(losses.values(), default=math.nan)})


def final_validation_loss(outcomes: Sequence[TrainingOutcome], steps: int) -> float:
    """The lowest validation loss measured at the last step (NaN when none was)."""
    final = [loss for outcome in outcomes for step, loss in outcome.validation_loss if step == steps]
    return min(final, default=math.nan)


def outcomes_json(trials: Sequence[Trial], outcomes: Sequence[TrainingOutcome]) -> str:
    """``{trial label: outcome fields}`` as JSON (non-finite losses as NaN, which ``json`` reads back)."""
    return json.dumps(
        {
            trial.label: {**asdict(outcome), "adapter_dir": str(outcome.adapter_dir)}
            for trial, outcome in zip(trials, outcomes, strict=True)
        }
    )


def outcomes_from_json(text: str) -> dict[str, TrainingOutcome]:
    """The outcomes ``outcomes_json`` wrote, by trial label."""
    outcomes = {}
    for label, fields in json.loads(text).items():
        validation = [(int(step), float(loss)) for step, loss in fields["validation_loss"]]
        outcomes[label] = TrainingOutcome(
            **{**fields, "adapter_dir": Path(fields["adapter_dir"]), "validation_loss": validation}
        )
    return outcomes


def _record_groups(
    sessions: sessionmaker[Session],
    inputs: GroupInputs,
    pending: Mapping[Trial, int],
    results: list[tuple[int, str, dict[str, Any]]],
) -> list[str]:
    """Write each group's outcomes on its candidates; return the labels of the trials whose groups did
    not end. Raise ``TrialsFailedError`` when groups failed for reasons other than memory."""
    ids = {trial.label: candidate_id for trial, candidate_id in pending.items()}
    unfinished: list[str] = []
    errors: list[str] = []
    stops: list[GroupStop] = []
    for index, status, result in results:
        labels = [trial.label for trial in inputs.groups[index]]
        if status == "ERROR":
            error = trial_error(result)
            errors.append(f"group {index} ({', '.join(labels)}): {error}")
            for label in labels:
                finish_candidate(sessions, ids[label], status="failed", error=error)
        elif status == "TERMINATED" and FINISHED in result:
            for label, outcome in outcomes_from_json(result[OUTCOMES]).items():
                record_outcome(sessions, ids[label], outcome)
            group_checkpoint(inputs.root, index).unlink(missing_ok=True)
        elif status == "TERMINATED" and inputs.asha and "step" in result:
            stops.append(GroupStop(index, int(result["step"]), float(result.get("time_total_s", 0.0))))
        else:
            unfinished.extend(labels)
            for label in labels:
                finish_candidate(sessions, ids[label], status="pending", error=f"trial {status.lower()}")
    if stops:
        errors.extend(_record_stopped_groups(sessions, inputs, ids, stops))
    serious = [error for error in errors if "out of memory" not in error]
    if serious:
        raise TrialsFailedError("; ".join(serious))
    return unfinished


def _record_stopped_groups(
    sessions: sessionmaker[Session], inputs: GroupInputs, ids: Mapping[str, int], stops: list[GroupStop]
) -> list[str]:
    """Export the adapters of the groups ASHA stopped from their checkpoints (the base model loaded once,
    on the CPU) and record them; adapters still training then are ``stopped`` by ASHA. Returns an error
    per group whose checkpoint is missing (its candidates are marked failed)."""
    config = inputs.config
    base, _ = load_model(
        config.base_model, inputs.home, dtype=pick_dtype(config.precision, "cpu"), device="cpu"
    )
    errors = []
    for stop in stops:
        trials = inputs.groups[stop.index]
        checkpoint = group_checkpoint(inputs.root, stop.index)
        try:
            base, outcomes = export_checkpoint(
                base, config, trials, checkpoint, inputs.root, stop.wall_seconds
            )
        except FileNotFoundError as missing:
            errors.append(f"group {stop.index}: ASHA stopped it, but {missing}")
            for trial in trials:
                finish_candidate(sessions, ids[trial.label], status="failed", error=str(missing))
            continue
        for trial, outcome in zip(trials, outcomes, strict=True):
            if not outcome.halted and not outcome.stopped_early:
                outcome.halted = f"ASHA stopped its group at step {stop.step}"
            record_outcome(sessions, ids[trial.label], outcome)
        checkpoint.unlink(missing_ok=True)
    return errors
