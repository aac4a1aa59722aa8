"""Learning-rate sweep: one LoRA candidate per trial on a dataset version's train split.

    evalgate sweep examples/sweep.yaml

A trial is a rate, or a point of the config's search space (``evalgate.sweep.trials``). The base model
is loaded once; each trial gets a fresh adapter with the same seeded initialisation and sees the same
batches in the same order, so candidates differ by their hyperparameters alone. By default all
trials train together over the one base model (``evalgate.sweep.training.fused``), with successive
halving when the config asks for it; models it does not support, and ``trainer: peft``, train one
trial after the other with peft and the transformers Trainer. Re-running the same config resumes:
finished candidates are skipped and unfinished ones continue from their last checkpoint. A diverging
candidate stops early and is kept (marked ``diverged``); one that successive halving stops is kept too
(``stopped``, not evaluated). When the fused trials run out of memory together, they train one at a
time; a single trial that runs out of memory is marked ``failed`` with the reason; either way the
sweep goes on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress
from transformers import PreTrainedModel

from evalgate.core.settings import Settings
from evalgate.core.timings import stage
from evalgate.data.store import DatasetStore, VersionInfo
from evalgate.modeling.bf16_products import FLOAT32, products_for
from evalgate.modeling.loading import load_model, model_fingerprint, pick_device, pick_dtype
from evalgate.sweep.analysis import AnalysisFiles, searched_hyperparameters, write_analysis
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.progress import training_progress
from evalgate.sweep.records import (
    DONE_STATUSES,
    candidate_rows,
    claim_candidate,
    claim_pending,
    finish_candidate,
    finish_sweep,
    open_sweep,
    relabel_within_sweep,
    sweep_root,
)
from evalgate.sweep.self_replay import with_self_replay
from evalgate.sweep.training.fused import (
    CHECKPOINT_FILE,
    FusedRun,
    fused_unsupported,
    train_fused,
    trial_folder,
)
from evalgate.sweep.training.peft_trainer import (
    ADAPTER_DIR,
    AnswerOnlyCollator,
    TrainingInputError,
    TrainingInterrupted,
    TrainingOutcome,
    attach_adapter,
    check_lora_rank,
    tokenize_rows,
    train_candidate,
)
from evalgate.sweep.trials import Trial, sweep_trials


@dataclass(frozen=True)
class SweepRun:
    """What every candidate of one sweep run shares."""

    store: DatasetStore
    sweep_id: int
    config: SweepConfig
    setup: TrainingSetup
    root: Path
    progress: Any
    should_stop: Callable[[], bool] | None = None


@dataclass(frozen=True)
class SweepResult:
    """A finished (or resumed-and-finished) sweep and its candidates, ordered by rate."""

    sweep_id: int
    dataset: str
    resumed: bool
    candidates: list[dict[str, Any]]
    analysis: AnalysisFiles | None = None
    """``results.csv``, ``best.yaml`` and ``hyperparameters.png`` in the sweep's folder."""


def train_rows(
    store: DatasetStore, version: VersionInfo, self_replay: Sequence[str] = ()
) -> list[Mapping[str, Any]]:
    """The version's train rows that have a reference answer (or are in a ``self_replay`` cohort,
    which the base model answers); refuse an empty train split."""
    splits = store.load(version.label)
    train = splits.get("train", [])
    rows = [row for row in train if row["reference"] or row["cohort"] in self_replay]
    if not rows:
        raise TrainingInputError(f"{version.label} has no train rows with a reference answer to train on")
    return rows


def check_ranks(model: PreTrainedModel, config: SweepConfig) -> None:
    """Refuse a LoRA rank (``lora.r``, or one of ``search.lora_r``) the targeted modules cannot take."""
    targets = config.lora.target_modules
    check_lora_rank(model, targets, config.lora.r, "lora.r")
    for rank in config.search.lora_r if config.search is not None else ():
        check_lora_rank(model, targets, rank, "search.lora_r")


def check_sequence_length(model: PreTrainedModel, max_seq_length: int) -> None:
    """Refuse a ``max_seq_length`` beyond the model's position embeddings."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and max_seq_length > limit:
        raise TrainingInputError(
            f"max_seq_length {max_seq_length} exceeds the model's limit of {limit} tokens"
        )


@dataclass(frozen=True)
class TrainingSetup:
    """A loaded base model ready for LoRA training, and the tokenised training rows."""

    base: PreTrainedModel
    tokenizer: Any
    examples: list[dict[str, list[int]]]
    device: str
    dtype: torch.dtype
    products: str = FLOAT32
    """Precision of the linear layers' products in fused training (``evalgate.modeling.bf16_products``)."""


def prepare_training(config: SweepConfig, home: Path, rows: Sequence[Mapping[str, Any]]) -> TrainingSetup:
    """Load the base model on the config's device and precision, check the length, tokenise ``rows``."""
    device = pick_device(config.device)
    dtype = pick_dtype(config.precision, device)
    with stage("sweep: model load"):
        base, tokenizer = load_model(config.base_model, home, dtype=dtype, device=device)
    tokenizer.padding_side = "right"
    check_sequence_length(base, config.max_seq_length)
    check_ranks(base, config)
    if config.self_replay:
        with stage("sweep: self-replay answers"):
            rows = with_self_replay(base, tokenizer, rows, config.self_replay)
    examples = tokenize_rows(tokenizer, rows, config.max_seq_length)
    return TrainingSetup(
        base, tokenizer, examples, device, dtype, products_for(config.precision, device, dtype)
    )


def split_validation(
    examples: Sequence[dict[str, list[int]]], share: float, seed: int
) -> tuple[list[dict[str, list[int]]], list[dict[str, list[int]]]]:
    """``(train, held out)``: ``max(8, share x rows)`` rows drawn with ``seed``, never all of them."""
    count = min(max(8, round(share * len(examples))), len(examples) - 1)
    if count < 1:
        raise TrainingInputError(f"successive halving needs at least 2 train rows, got {len(examples)}")
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:count])
    train = [row for i, row in enumerate(examples) if i not in held]
    return train, [examples[i] for i in sorted(held)]


def sweep_rates(config: SweepConfig, setup: TrainingSetup) -> tuple[float, ...]:
    """The config's rates, or with ``lr_find`` the grid the range test proposes."""
    if not config.lr_find:
        return config.learning_rates
    from evalgate.sweep.lr_find import find_rates

    return find_rates(
        setup.base, setup.tokenizer, setup.examples, config, device=setup.device, dtype=setup.dtype
    ).proposed


def run_sweep(
    config: SweepConfig,
    settings: Settings,
    *,
    console: Console | None = None,
    show_progress: bool = True,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepResult:
    """Train every rate of ``config`` (skipping finished candidates) and record them in the database.

    ``progress`` replaces the console display (a job reads its tasks); ``should_stop`` is polled after
    every training step: when true, a checkpoint is saved and ``TrainingInterrupted`` is raised.
    """
    store = DatasetStore.from_settings(settings)
    version = store.get(config.dataset)
    tpe = config.search is not None and config.search.sampler == "tpe"
    if tpe:
        from evalgate.sweep.tpe import check_tpe  # builds on this module: imported where it is used

        check_tpe(config)
    setup = prepare_training(config, settings.home, train_rows(store, version, config.self_replay))
    rates = sweep_rates(config, setup)
    trials = [] if tpe else sweep_trials(config, rates)
    sweep_id, resumed = open_sweep(store.sessions, config, version)
    status = "failed"
    base = setup.base
    try:
        with progress or training_progress(console, enabled=show_progress) as shown:
            root = sweep_root(settings, sweep_id)
            run = SweepRun(store, sweep_id, config, setup, root, shown, should_stop)
            with stage("sweep: training"):
                base = _search_tpe(run, rates, base, resumed) if tpe else _train_trials(run, trials, base)
        relabel_within_sweep(store.sessions, sweep_id)
        status = "finished"
    except (KeyboardInterrupt, TrainingInterrupted):
        status = "interrupted"
        raise
    finally:
        finish_sweep(store.sessions, sweep_id, status)
    rows = candidate_rows(store.sessions, sweep_id)
    analysis = write_analysis(
        rows, sweep_root(settings, sweep_id), searched_hyperparameters(config), config=config.to_dict()
    )
    return SweepResult(sweep_id, version.label, resumed, rows, analysis)


def _search_tpe(
    run: SweepRun, rates: Sequence[float], base: PreTrainedModel, resumed: bool
) -> PreTrainedModel:
    """Optuna's TPE sampler, round by round (``evalgate.sweep.tpe``)."""
    from evalgate.sweep.tpe import tpe_rounds

    return tpe_rounds(run, rates, base, resumed=resumed)


def _train_trials(run: SweepRun, trials: Sequence[Trial], base: PreTrainedModel) -> PreTrainedModel:
    """Train the trials that are not done: all together with the fused trainer where it applies (and
    fits in memory), else one after the other with peft and the transformers Trainer."""
    unsupported = fused_unsupported(base, run.config, run.setup.dtype)
    if run.config.trainer == "fused" and unsupported:
        raise TrainingInputError(f"trainer: fused does not apply: {unsupported}")
    if run.config.trainer != "peft" and unsupported is None:
        try:
            return _train_fused(run, trials, base)
        except FusedOutOfMemory as error:
            run.progress.console.print(f"fused training ran out of memory ({error}); one trial at a time")
    if run.config.halving is not None:
        run.progress.console.print(
            "successive halving needs the fused trainer: every trial trains to the end"
        )
    for trial in trials:
        base = _train_trial(run, trial, base)
    return base


class FusedOutOfMemory(RuntimeError):
    """The K stacked adapters did not fit; ``pending``: their trials and candidate ids (still training)."""

    def __init__(self, message: str, pending: Mapping[Trial, int]) -> None:
        super().__init__(message)
        self.pending = dict(pending)


def _train_fused(run: SweepRun, trials: Sequence[Trial], base: PreTrainedModel) -> PreTrainedModel:
    """The trials not done, trained together (with rows held out when the config halves)."""
    examples, validation = run.setup.examples, list[dict[str, list[int]]]()
    if run.config.halving is not None:
        examples, validation = split_validation(
            examples, run.config.halving.validation_share, run.config.seed
        )
    return train_fused_trials(run, trials, base, (examples, validation), run.root / CHECKPOINT_FILE)


def train_fused_trials(
    run: SweepRun,
    trials: Sequence[Trial],
    base: PreTrainedModel,
    rows: tuple[list[dict[str, list[int]]], list[dict[str, list[int]]]],
    checkpoint: Path,
) -> PreTrainedModel:
    """Claim every trial not done and train them together in one fused run on ``rows`` (train, held
    out) with ``checkpoint``; record each outcome. Raises ``FusedOutOfMemory`` when they do not fit."""
    sessions = run.store.sessions
    pending = claim_pending(sessions, run.sweep_id, trials, run.config.base_model)
    if not pending:
        return base
    fused = FusedRun(
        config=run.config,
        trials=list(pending),
        examples=rows[0],
        validation=rows[1],
        collator=AnswerOnlyCollator(run.setup.tokenizer.pad_token_id or 0),
        device=run.setup.device,
        dtype=run.setup.dtype,
        products=run.setup.products,
        checkpoint=checkpoint,
        progress=run.progress,
        should_stop=run.should_stop,
    )
    try:
        base, outcomes = train_fused(base, fused, run.root)
    except TrainingInterrupted as interrupted:
        for candidate_id in pending.values():
            finish_candidate(sessions, candidate_id, status="pending", error=str(interrupted))
        raise
    except (torch.OutOfMemoryError, MemoryError, RuntimeError, OSError) as error:
        if is_out_of_memory(error):
            raise FusedOutOfMemory(str(error), pending) from error
        for trial, candidate_id in pending.items():
            fail_candidate(run, candidate_id, trial, error)
        raise
    for candidate_id, outcome in zip(pending.values(), outcomes, strict=True):
        record_outcome(sessions, candidate_id, outcome)
    checkpoint.unlink(missing_ok=True)
    return base


def record_outcome(sessions: Any, candidate_id: int, outcome: TrainingOutcome) -> None:
    """Store a trained, diverged or stopped (by halving) candidate: status, diagnosis, adapter,
    fingerprint, curves."""
    status = "stopped" if outcome.halted else "diverged" if outcome.diagnosis == "diverged" else "trained"
    finish_candidate(
        sessions,
        candidate_id,
        status=status,
        diagnosis=outcome.diagnosis,
        adapter_uri=str(outcome.adapter_dir),
        adapter_hash=model_fingerprint(str(outcome.adapter_dir)),
        training=outcome.curves(),
    )


def _train_trial(run: SweepRun, trial: Trial, base: PreTrainedModel) -> PreTrainedModel:
    """Train one candidate unless it is done; return the base model with the adapter removed again."""
    sessions = run.store.sessions
    candidate_id, previous = claim_candidate(sessions, run.sweep_id, trial, run.config.base_model)
    if previous in DONE_STATUSES:
        return base
    config = trial.config(run.config)
    model = attach_adapter(base, config)
    try:
        outcome = train_candidate(
            model,
            run.setup.tokenizer,
            run.setup.examples,
            config,
            trial.learning_rate,
            run.root / trial_folder(trial),
            device=run.setup.device,
            dtype=run.setup.dtype,
            progress=run.progress,
            should_stop=run.should_stop,
            label=trial.label,
        )
    except TrainingInterrupted as interrupted:
        finish_candidate(sessions, candidate_id, status="pending", error=str(interrupted))
        raise
    except (torch.OutOfMemoryError, MemoryError, RuntimeError, OSError) as error:
        if not is_out_of_memory(error):
            fail_candidate(run, candidate_id, trial, error)
            raise
        finish_candidate(sessions, candidate_id, status="failed", error=f"out of memory: {error}")
        return _detach(model, run.setup.device)
    record_outcome(sessions, candidate_id, outcome)
    return _detach(model, run.setup.device)


def fail_candidate(run: SweepRun, candidate_id: int, trial: Trial, error: BaseException) -> None:
    """Mark the candidate failed with the reason, and remove any adapter folder of its trial, so no
    folder is left that the database does not account for (a retry writes it again)."""
    shutil.rmtree(run.root / trial_folder(trial) / ADAPTER_DIR, ignore_errors=True)
    finish_candidate(
        run.store.sessions, candidate_id, status="failed", error=f"{type(error).__name__}: {error}"
    )


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA/MPS out-of-memory errors, and the CPU allocator's failure to allocate."""
    return isinstance(error, torch.OutOfMemoryError | MemoryError) or mentions_out_of_memory(str(error))


def mentions_out_of_memory(text: str) -> bool:
    """True when an error message reports an out-of-memory failure (GPU or CPU allocator)."""
    lowered = text.lower()
    return any(marker in lowered for marker in ("out of memory", "outofmemory", "can't allocate memory"))


def _detach(model: Any, device: str) -> PreTrainedModel:
    """Remove the LoRA layers, giving back the untouched base model; free cached GPU memory."""
    base: PreTrainedModel = model.unload()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return base
