"""Optuna's TPE sampler over a sweep's search space, round by round, its study in the project's database.

    search: {sampler: tpe, trials: 24, parallel: 4, learning_rate: {low: 1e-5, high: 1e-2}, lora_r: [4, 8]}

Each round asks the study for ``parallel`` trials (fewer when the ``trials`` budget runs out), turns each
into a ``Trial`` (``evalgate.sweep.trials.make_trial``), trains the new ones together in one fused run
(``evalgate.sweep.training.fused``, one checkpoint file per round) and tells the study, per trial:

    objective = the candidate's mean answer-token loss on the held-out rows after its last step  (minimise)

- trained to the end: COMPLETE with the objective;
- stopped by successive halving: its validation losses are reported, then PRUNED (Optuna keeps the last
  reported loss as its value);
- diverged, failed, or without a finite validation loss: FAIL.

The held-out rows are those successive halving would hold out (``split_validation`` with its
``validation_share``, 0.1 without ``halving``): the objective needs them either way. A ``{low, high}``
rate is suggested log-uniformly and kept to 3 significant digits (inside the range), a list of rates and
every other listed dimension categorically; an empty rate dimension takes the sweep's rates (with
``lr_find``: the range from the lowest to the highest rate it proposed). A suggestion whose label is
already a candidate's is not trained again: the study is told that candidate's outcome. The budget counts
the study's trials, such repeats included. The first 10 trials are Optuna's random start-up; later rounds
model the told ones, and ``constant_liar`` keeps the trials of one round apart.

The study, ``evalgate-sweep-<sweep id>``, lives in the project's database through Optuna's
``RDBStorage`` on the same URL (SQLite embedded, PostgreSQL in production): Optuna adds its own tables
beside evalgate's (``migrations/env.py`` leaves them out of Alembic's comparisons). Both keep their schema
revision in ``alembic_version``, where evalgate's migrations have theirs, so Optuna's check of its own
revision is skipped. Resuming trusts the candidate rows: a re-run first settles the trials the study
still has RUNNING (those whose candidates are done are told from their rows, the others are suggested
again, which gives back their stored parameters, and trained on from their round's checkpoint). The
sampler is seeded per round with ``seed + trials so far``, so a resumed search asks what an
uninterrupted one would have asked.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from transformers import PreTrainedModel

from evalgate.db.session import POSTGRES_CONNECT_TIMEOUT_SECONDS, SQLITE_BUSY_TIMEOUT_MS
from evalgate.sweep.config import ConfigError, HalvingSettings, RateRange, SweepConfig
from evalgate.sweep.records import candidate_rows, finish_candidate
from evalgate.sweep.run import FusedOutOfMemory, SweepRun, split_validation, train_fused_trials
from evalgate.sweep.training.fused import (
    CHECKPOINT_FILE,
    fused_unsupported,
    trial_folder,
)
from evalgate.sweep.training.peft_trainer import TrainingInputError
from evalgate.sweep.trials import Point, Trial, listed_dimensions, make_trial, searched_rates

if TYPE_CHECKING:
    import optuna

INSTALL_HINT = "pip install 'evalgate[search]' (or pip install 'optuna>=3.6,<5')"
STUDY_PREFIX = "evalgate-sweep-"
CANDIDATE_ATTRIBUTE = "candidate"
"""User attribute of each Optuna trial: the label of the candidate it stands for."""
SIGNIFICANT_DIGITS = 3
"""A ``{low, high}`` rate is kept to this many significant digits, so labels stay readable."""

Examples = list[dict[str, list[int]]]


class OptunaNotInstalledError(ConfigError):
    """``search.sampler: tpe`` was asked for but Optuna cannot be imported."""


@dataclass(frozen=True)
class HeldOut:
    """The rows each round trains on, and the rows its objective is measured on."""

    train: Examples
    validation: Examples


def require_optuna() -> None:
    """Raise ``OptunaNotInstalledError`` with the install command when Optuna cannot be imported (the
    functions below import it where they use it: it is an optional dependency)."""
    try:
        import optuna  # noqa: F401
    except ImportError as error:
        raise OptunaNotInstalledError(
            f"search.sampler: tpe needs Optuna, which is not installed: {INSTALL_HINT}"
        ) from error


def check_tpe(config: SweepConfig) -> None:
    """Refuse, before any model loads, a tpe sweep that cannot run: no Optuna, or ``trainer: peft``
    (the objective is the fused trainer's validation loss)."""
    require_optuna()
    if config.trainer == "peft":
        raise ConfigError(
            "trainer: the tpe sampler trains each round in the fused trainer (its objective is the "
            "validation loss that trainer measures); use trainer: auto or fused"
        )


def study_name(sweep_id: int) -> str:
    """The Optuna study of a sweep: ``evalgate-sweep-<id>``."""
    return f"{STUDY_PREFIX}{sweep_id}"


@contextlib.contextmanager
def study_storage(url: str) -> Iterator[optuna.storages.RDBStorage]:
    """Optuna's storage on the database at ``url``, its connections closed on exit.

    Its check of its own schema revision is skipped: Optuna reads it from ``alembic_version``, which in
    this database holds evalgate's revision (Optuna creates its tables itself when they are missing).
    """
    require_optuna()
    import optuna

    storage = optuna.storages.RDBStorage(
        url=url, engine_kwargs=_engine_options(url), skip_compatibility_check=True
    )
    try:
        yield storage
    finally:
        storage.remove_session()
        storage.engine.dispose()


def open_study(storage: optuna.storages.RDBStorage, sweep_id: int, *, fresh: bool) -> optuna.Study:
    """The sweep's study in ``storage`` (created when missing), minimising.

    ``fresh``: the sweep row was just created, so a study left under its name belongs to an earlier
    sweep row with the same id (a database emptied of sweeps) and is deleted first.
    """
    import optuna

    name = study_name(sweep_id)
    if fresh:
        with contextlib.suppress(KeyError):  # the usual case: there is no such study
            optuna.delete_study(study_name=name, storage=storage)
    return optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)


def _engine_options(url: str) -> dict[str, Any]:
    """What ``evalgate.db.session.make_engine`` gives its own engines: wait on a locked SQLite file,
    give up soon on a PostgreSQL server that does not answer, replace dead pooled connections."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS}
    return options


def suggest_point(
    trial: optuna.Trial, rates: tuple[float, ...] | RateRange, listed: Sequence[tuple[str, tuple[Any, ...]]]
) -> Point:
    """The point ``trial`` suggests: the rate log-uniformly in a range (3 significant digits, clamped to
    the range) or one of a list, every listed dimension one of its values. A trial that has suggested
    before gives back its stored values."""
    if isinstance(rates, RateRange):
        drawn = trial.suggest_float("learning_rate", rates.low, rates.high, log=True)
        rate = min(max(float(f"{drawn:.{SIGNIFICANT_DIGITS}g}"), rates.low), rates.high)
    else:
        rate = trial.suggest_categorical("learning_rate", list(rates))
    values: dict[str, Any] = {
        name: trial.suggest_categorical(name, list(choices)) for name, choices in listed
    }
    return Point(rate, **values)


def tpe_rounds(
    run: SweepRun, rates: Sequence[float], base: PreTrainedModel, *, resumed: bool
) -> PreTrainedModel:
    """Ask, train and tell round by round until the study holds ``search.trials`` finished trials;
    returns the bare base model."""
    unsupported = fused_unsupported(base, run.config, run.setup.dtype)
    if unsupported:
        raise TrainingInputError(
            f"search.sampler: tpe needs the fused trainer, which does not apply: {unsupported}"
        )
    with study_storage(run.store.settings.resolved_database_url) as storage:
        study = open_study(storage, run.sweep_id, fresh=not resumed)
        return _search(run, study, rates, base)


def _search(
    run: SweepRun, study: optuna.Study, rates: Sequence[float], base: PreTrainedModel
) -> PreTrainedModel:
    """The rounds of ``tpe_rounds`` on the sweep's open study."""
    search = run.config.search
    assert search is not None and search.trials is not None
    space = searched_rates(run.config, rates), listed_dimensions(search)
    held = held_out(run)
    while asked := _next_round(study, run.config):
        trials = {number: make_trial(run.config, suggest_point(trial, *space)) for number, trial in asked}
        for number, trial in asked:
            trial.set_user_attr(CANDIDATE_ATTRIBUTE, trials[number].label)
        distinct = list({trial.label: trial for trial in trials.values()}.values())
        checkpoint = run.root / f"tpe-round-{asked[0][0]}-{CHECKPOINT_FILE}"
        base = _train_together(run, distinct, base, held, checkpoint)
        _tell_round(study, trials, candidates_by_label(run))
        run.progress.console.print(_round_summary(study, search.trials))
    return base


def held_out(run: SweepRun) -> HeldOut:
    """``split_validation`` of the sweep's rows with halving's ``validation_share`` (its default
    without halving) and the sweep's seed."""
    share = (run.config.halving or HalvingSettings()).validation_share
    train, validation = split_validation(run.setup.examples, share, run.config.seed)
    return HeldOut(train, validation)


def _next_round(study: optuna.Study, config: SweepConfig) -> list[tuple[int, optuna.Trial]]:
    """``(number, trial)`` of the next round: the trials still RUNNING (an earlier run was stopped before
    telling them), else up to ``parallel`` new ones within the budget; empty when the search is done."""
    import optuna

    search = config.search
    assert search is not None and search.trials is not None
    existing = study.get_trials(deepcopy=False)
    running = sorted(
        (frozen for frozen in existing if frozen.state == optuna.trial.TrialState.RUNNING),
        key=lambda frozen: frozen.number,
    )
    if running:  # a Trial on a stored one (Optuna keeps its storage id only on the FrozenTrial)
        return [(frozen.number, optuna.trial.Trial(study, frozen._trial_id)) for frozen in running]
    count = min(search.parallel, search.trials - len(existing))
    study.sampler = _sampler(search.seed + len(existing))
    asked = [study.ask() for _ in range(max(count, 0))]
    return [(trial.number, trial) for trial in asked]


def _sampler(seed: int) -> optuna.samplers.TPESampler:
    """TPE seeded with ``seed``; ``constant_liar``: the round's trials still running count as bad
    results, so one round's suggestions spread out (Optuna marks the option experimental)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def candidates_by_label(run: SweepRun) -> dict[str, dict[str, Any]]:
    """The sweep's candidate rows by label."""
    return {row["name"]: row for row in candidate_rows(run.store.sessions, run.sweep_id)}


def _tell_round(
    study: optuna.Study,
    trials: Mapping[int, Trial],
    candidates: Mapping[str, Mapping[str, Any]],
) -> None:
    """Tell each trial of the round its candidate's outcome (``tell_outcome``)."""
    frozen_by_number = {frozen.number: frozen for frozen in study.get_trials(deepcopy=False)}
    for number, trial in trials.items():
        tell_outcome(study, frozen_by_number[number], candidates.get(trial.label))


def tell_outcome(
    study: optuna.Study, frozen: optuna.trial.FrozenTrial, candidate: Mapping[str, Any] | None
) -> None:
    """Report the candidate's finite validation losses at their steps (those not reported yet), then
    tell: trained with a finite last loss -> COMPLETE with that loss; stopped by halving -> PRUNED (its
    value: the last loss reported); anything else -> FAIL."""
    import optuna

    state = optuna.trial.TrialState
    status = candidate["status"] if candidate is not None else "missing"
    recorded = validation_losses(candidate)
    reporter = optuna.trial.Trial(study, frozen._trial_id)
    for step, loss in recorded:
        if loss is not None and step not in frozen.intermediate_values:
            reporter.report(loss, step)
    last = recorded[-1][1] if recorded else None
    if status == "trained" and last is not None:
        study.tell(frozen.number, last)
    elif status == "stopped":
        study.tell(frozen.number, state=state.PRUNED)
    else:
        study.tell(frozen.number, state=state.FAIL)


def validation_losses(candidate: Mapping[str, Any] | None) -> list[tuple[int, float | None]]:
    """``(step, loss)`` the candidate recorded on the held-out rows; a non-finite loss is None."""
    recorded = ((candidate or {}).get("training") or {}).get("validation_loss") or []
    return [
        (int(step), float(loss) if loss is not None and math.isfinite(loss) else None)
        for step, loss in recorded
    ]


def _round_summary(study: optuna.Study, budget: int) -> str:
    """``tpe: 6 of 12 trials; best lr=0.0003 r=4 (validation loss 2.3100)``."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    complete = [
        (t.value, t.number, t.user_attrs.get(CANDIDATE_ATTRIBUTE, f"trial {t.number}"))
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
    ]
    if not complete:
        return f"tpe: {len(trials)} of {budget} trials; none complete yet"
    loss, _, label = min(complete)
    return f"tpe: {len(trials)} of {budget} trials; best {label} (validation loss {loss:.4f})"


def _train_together(
    run: SweepRun, trials: Sequence[Trial], base: PreTrainedModel, held: HeldOut, checkpoint: Path
) -> PreTrainedModel:
    """Claim every trial not done and train them together in one fused run with ``checkpoint``; record
    each outcome. Out of memory together: one at a time; alone: the candidate is marked failed."""
    try:
        return train_fused_trials(run, trials, base, (held.train, held.validation), checkpoint)
    except FusedOutOfMemory as error:
        return _after_out_of_memory(run, error.pending, base, held, error)


def _after_out_of_memory(
    run: SweepRun, pending: Mapping[Trial, int], base: PreTrainedModel, held: HeldOut, error: BaseException
) -> PreTrainedModel:
    """A single trial that ran out of memory is failed; several train one at a time."""
    if len(pending) == 1:
        (candidate_id,) = pending.values()
        finish_candidate(run.store.sessions, candidate_id, status="failed", error=f"out of memory: {error}")
        return base
    run.progress.console.print(f"the round's trials ran out of memory together ({error}); one at a time")
    for trial in pending:
        base = _train_together(run, [trial], base, held, run.root / trial_folder(trial) / CHECKPOINT_FILE)
    return base
