"""Fused multi-LoRA sweep training: every rate of a sweep trained together in one process.

One frozen base model, K adapters (``evalgate.sweep.training.fused_lora``), identical batches for every
rate. Per
optimizer step, for adapter ``k`` over the N answer tokens of the step's batches:

    loss_k = (1 / N) * sum_t CE(logits_k[t], label[t])     (prompt tokens are not counted)
    loss   = sum_k loss_k                                  (gradients of adapter k only see loss_k)

then each adapter's gradients are clipped to ``max_grad_norm`` on their own, and one AdamW with one
parameter group per adapter takes the step: each adapter is one trial (``evalgate.sweep.trials``) with
its own peak rate, schedule, warmup and final fraction (``evalgate.sweep.schedule``), rank and alpha.
The logits are computed only at answer positions: the prompt's would be thrown away by the loss.

Successive halving (``halving`` in the config): at rungs ``grace x factor^i`` steps, every active
adapter's mean answer-token loss on rows held out of the train split is measured (dropout off), and all
but the best ``max(1, active // factor)`` stop there. A stopped adapter leaves the stack: its weights
are saved as they were, its tensors and optimizer state are freed, and the others train on faster.
No tuner can do this: Ray's ASHA stops whole processes, here one process sheds adapters mid-run.

A diverging adapter (non-finite loss, or above ``DIVERGENCE_FACTOR`` times its first loss) is stopped
and saved as it was after that step; the others go on with a smaller batch. Checkpoints hold every
adapter, the optimizer and the curves (``fused-checkpoint.pt``, replaced atomically); a re-run with
the same trials resumes from it. Ctrl-C or ``should_stop()`` saves a checkpoint and raises
``TrainingInterrupted``.

``on_validation`` (optional) hears the validation losses of the active adapters every
``checkpoint_every`` steps before the last (with held-out rows; without halving they are measured for
it), called after that step's checkpoint is saved: a caller that is stopped from outside at that point
(Ray's ASHA, ``evalgate.sweep.ray_groups``) gets its adapters back with ``export_checkpoint``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch.optim.lr_scheduler import LambdaLR
from transformers import PreTrainedModel

from evalgate.core.disk_writes import write_file, write_folder
from evalgate.modeling.bf16_products import FLOAT32, bf16_products
from evalgate.modeling.shared_layers import decoder_layers
from evalgate.sweep.config import HalvingSettings, SweepConfig
from evalgate.sweep.diagnosis import DIVERGENCE_FACTOR, Diagnosis, diagnose
from evalgate.sweep.schedule import schedule_factor
from evalgate.sweep.training.fused_lora import FusedAdapters, export_adapter, fused_adapters
from evalgate.sweep.training.peft_trainer import (
    ADAPTER_DIR,
    IGNORE_INDEX,
    AnswerOnlyCollator,
    TrainingInterrupted,
    TrainingOutcome,
    ctrl_c_sets_flag,
)
from evalgate.sweep.trials import Trial

CHECKPOINT_FILE = "fused-checkpoint.pt"


def fused_unsupported(base: PreTrainedModel, config: SweepConfig, dtype: torch.dtype) -> str | None:
    """Why the fused trainer cannot train this sweep (the caller falls back to peft), or None."""
    if decoder_layers(base) is None:
        return f"{type(base).__name__} has no decoder layer list"
    if base.get_output_embeddings() is None:
        return f"{type(base).__name__} has no output embeddings"
    if getattr(base.config, "final_logit_softcapping", None):
        return "the model caps its logits"
    if dtype == torch.float16:
        return "fp16 needs loss scaling"
    return None


@dataclass
class AdapterCurve:
    """One trial's training history in the fused run."""

    label: str
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    first_loss: float | None = None
    stopped_at: int | None = None
    reason: str = ""
    halted: str = ""
    """Why successive halving stopped it ("" when it was not)."""
    validation: list[tuple[int, float]] = field(default_factory=list)
    """``(step, mean answer-token loss on the held-out rows)`` at each rung and at the end."""

    def halt(self, step: int, rung: int, why: str) -> None:
        self.stopped_at = step
        self.halted = f"stopped early at rung {rung} (step {step}): {why}"

    def record(self, step: int, loss: float, rate: float) -> bool:
        """Append one step; True when this step diverged (the adapter must stop)."""
        self.losses.append(loss)
        self.learning_rates.append(rate)
        if self.first_loss is None:
            self.first_loss = loss
        if math.isfinite(loss) and loss <= DIVERGENCE_FACTOR * max(self.first_loss, 1e-8):
            return False
        self.stopped_at = step
        self.reason = f"stopped at step {step}: loss {loss:.3g} (started at {self.first_loss:.3g})"
        return True


def total_steps(config: SweepConfig, rows: int) -> int:
    """Optimizer steps: ``max_steps``, else ``epochs`` passes of ``ceil(rows / batch)`` batches."""
    if config.max_steps:
        return config.max_steps
    batches = math.ceil(rows / config.batch_size)
    return max(1, math.ceil(batches * config.epochs / config.gradient_accumulation))


def batch_indices(rows: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Row indices batch by batch, forever: epoch ``e`` is a permutation seeded with ``seed + e``."""
    epoch = 0
    while True:
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for start in range(0, rows, batch_size):
            yield order[start : start + batch_size]
        epoch += 1


def answer_token_losses(model: PreTrainedModel, batch: dict[str, torch.Tensor], count: int) -> torch.Tensor:
    """Summed next-token cross-entropy over the answer tokens, per adapter: shape [count]."""
    hidden = model.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).last_hidden_state
    labels = batch["labels"][:, 1:]
    answer = labels != IGNORE_INDEX
    rows, width = labels.shape
    hidden = hidden[:, :-1].reshape(count, rows, width, hidden.shape[-1])[:, answer]  # [K, N, H]
    logits = model.get_output_embeddings()(hidden).float()  # [K, N, V]
    targets = labels[answer].repeat(count)
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="none")
    return losses.view(count, -1).sum(dim=1)


@dataclass
class FusedRun:
    """Everything the fused training loop needs, fixed for the run."""

    config: SweepConfig
    trials: list[Trial]
    examples: list[dict[str, list[int]]]
    collator: AnswerOnlyCollator
    device: str
    dtype: torch.dtype
    checkpoint: Path
    products: str = FLOAT32
    """``bfloat16``: an fp32 model's linear layers take their products in bf16 in the forward pass and
    for the gradients of their inputs (``evalgate.modeling.bf16_products``)."""
    validation: list[dict[str, list[int]]] = field(default_factory=list)
    """Held-out rows for successive halving's rungs (empty: no halving)."""
    progress: Progress | None = None
    should_stop: Callable[[], bool] | None = None
    on_validation: Callable[[int, dict[str, float]], None] | None = None
    """Called with the step and ``{label: validation loss}`` of the active adapters every
    ``checkpoint_every`` steps before the last, after the checkpoint is saved (needs ``validation``)."""

    @property
    def labels(self) -> list[str]:
        return [trial.label for trial in self.trials]


def rungs(halving: HalvingSettings, total: int) -> list[int]:
    """Steps at which halving measures and stops: ``grace x factor^i`` below ``total``."""
    steps, step = [], halving.grace_steps
    while step < total:
        steps.append(step)
        step *= halving.reduction_factor
    return steps


class _Loop:
    """The state of one fused training run: adapters, optimizer, schedules, curves, step."""

    def __init__(self, run: FusedRun, model: PreTrainedModel, adapters: FusedAdapters) -> None:
        self.run = run
        self.model = model
        self.adapters = adapters
        self.total = total_steps(run.config, len(run.examples))
        groups = [
            {"params": adapters.parameters_of(k), "lr": t.learning_rate} for k, t in enumerate(run.trials)
        ]
        self.optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        self.scheduler = LambdaLR(self.optimizer, [self._factor(trial) for trial in run.trials])
        self.curves = [AdapterCurve(trial.label) for trial in run.trials]
        self.stopped_state: dict[int, dict[str, torch.Tensor]] = {}
        halving = run.config.halving
        self.rungs = rungs(halving, self.total) if halving is not None and run.validation else []
        self.step = 0
        self.tokens = 0
        self.interrupted = False

    def _factor(self, trial: Trial) -> Callable[[int], float]:
        return lambda step: schedule_factor(trial.scheduler, step, self.total)

    @property
    def active(self) -> list[int]:
        return [k for k, curve in enumerate(self.curves) if curve.stopped_at is None]

    def save(self) -> None:
        state = {
            "config": self.run.config.to_dict(),
            "trials": self.run.labels,
            "step": self.step,
            "tokens": self.tokens,
            "adapters": {k: self.adapters.state_of(k) for k in self.active},
            "stopped_state": self.stopped_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "curves": [asdict(curve) for curve in self.curves],
        }
        write_file(self.run.checkpoint, "the training checkpoint", lambda path: torch.save(state, path))

    def restore(self) -> bool:
        """Load the checkpoint when it is for the same trials; False when there is none to use."""
        state = _load_checkpoint(self.run.checkpoint, self.run.config, self.run.labels)
        if state is None:
            return False
        for k, weights in state["adapters"].items():
            self.adapters.load_state(k, weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.curves = [AdapterCurve(**curve) for curve in state["curves"]]
        self.stopped_state = state["stopped_state"]
        for k in self.stopped_state:
            self._release(k)
        self.step, self.tokens = state["step"], state["tokens"]
        return True

    def train_step(self, batches: list[dict[str, torch.Tensor]]) -> dict[int, float] | None:
        """One optimizer step over ``batches`` (the gradient-accumulation group) for every active rate.
        Returns the validation losses of the active adapters when ``on_validation`` is due, else None."""
        active = self.active
        self.adapters.set_active(active)
        answer_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
        step_losses = torch.zeros(len(active))
        for batch in batches:
            batch = {name: tensor.to(self.run.device) for name, tensor in batch.items()}
            self.tokens += int(batch["attention_mask"].sum())
            with self._autocast():
                losses = answer_token_losses(self.model, batch, len(active)) / max(answer_tokens, 1)
            losses.sum().backward()
            step_losses += losses.detach().float().cpu()
        rates = self.scheduler.get_last_lr()
        for k in active:
            torch.nn.utils.clip_grad_norm_(self.adapters.parameters_of(k), self.run.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        for position, k in enumerate(active):
            if self.curves[k].record(self.step, float(step_losses[position]), float(rates[k])):
                self._stop(k)
        measured = self.halve(self.rungs.index(self.step)) if self.step in self.rungs else None
        if not self._reports_now():
            return None
        validated = self.validate() if measured is None else measured
        return {k: loss for k, loss in validated.items() if k in self.active}

    def _reports_now(self) -> bool:
        """``on_validation`` is due: a ``checkpoint_every`` step before the last, rows held out, and
        adapters still training."""
        return (
            self.run.on_validation is not None
            and bool(self.run.validation)
            and bool(self.active)
            and self.step < self.total
            and self.step % self.run.config.checkpoint_every == 0
        )

    def _stop(self, k: int) -> None:
        """Keep adapter ``k`` as it is now, and take it out of the stack."""
        self.stopped_state[k] = self.adapters.state_of(k)
        self._release(k)

    def _release(self, k: int) -> None:
        """Free adapter ``k``'s optimizer state and gradients (its saved state is in ``stopped_state``)."""
        for parameter in self.adapters.parameters_of(k):
            self.optimizer.state.pop(parameter, None)
            parameter.grad = None
            parameter.requires_grad_(False)

    def halve(self, rung: int) -> dict[int, float]:
        """Successive halving's rung ``rung``: the best ``max(1, active // factor)`` by validation loss
        train on, the others stop. Returns the losses measured (of every adapter active before)."""
        assert self.run.config.halving is not None
        losses = self.validate()
        ranked = sorted(losses, key=lambda k: losses[k])
        keep = max(1, len(ranked) // self.run.config.halving.reduction_factor)
        cutoff = losses[ranked[keep - 1]]
        for k in ranked[keep:]:
            why = (
                f"validation loss {losses[k]:.4f}, not among the best {keep} of {len(ranked)} "
                f"(the {keep}th best had {cutoff:.4f})"
            )
            self.curves[k].halt(self.step, rung, why)
            self._stop(k)
        return losses

    def validate(self) -> dict[int, float]:
        """Mean answer-token loss of every active adapter on the held-out rows (dropout off); recorded
        on each curve. A non-finite loss counts as infinite."""
        active = self.active
        self.adapters.set_active(active)
        size = self.run.config.batch_size
        sums, tokens = torch.zeros(len(active), dtype=torch.float64), 0
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(self.run.validation), size):
                batch = self.run.collator(self.run.validation[start : start + size])
                tokens += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
                batch = {name: tensor.to(self.run.device) for name, tensor in batch.items()}
                with self._autocast():
                    sums += answer_token_losses(self.model, batch, len(active)).double().cpu()
        self.model.train()
        losses = {}
        for position, k in enumerate(active):
            loss = float(sums[position]) / max(tokens, 1)
            losses[k] = loss if math.isfinite(loss) else math.inf
            self.curves[k].validation.append((self.step, loss))
        return losses

    def _autocast(self) -> Any:
        if self.run.dtype == torch.bfloat16 and self.run.device != "cpu":
            return torch.autocast(device_type=self.run.device.split(":")[0], dtype=torch.bfloat16)
        return bf16_products(self.model, self.run.products)

    def final_state(self, k: int) -> dict[str, torch.Tensor]:
        return self.stopped_state.get(k) or self.adapters.state_of(k)

    def finish(self) -> None:
        """A last validation measurement of the adapters that trained to the end (when rows are held out)."""
        measured = self.curves[self.active[0]].validation if self.active else []
        if self.run.validation and self.active and (not measured or measured[-1][0] != self.step):
            self.validate()


def _micro_batches(run: FusedRun, skip_steps: int) -> Iterator[list[dict[str, torch.Tensor]]]:
    """The batches of each optimizer step, after the ``skip_steps`` already taken (resume)."""
    indices = batch_indices(len(run.examples), run.config.batch_size, run.config.seed)
    accumulation = run.config.gradient_accumulation
    for _ in range(skip_steps * accumulation):
        next(indices)
    while True:
        yield [run.collator([run.examples[i] for i in next(indices)]) for _ in range(accumulation)]


class _Bars:
    """One progress task per rate: step, loss and tokens/s."""

    def __init__(self, progress: Progress | None, loop: _Loop) -> None:
        self.progress = progress
        self.loop = loop
        self.started = time.perf_counter()
        self.tasks = (
            [
                progress.add_task(label, total=loop.total, completed=loop.step, loss="-", tps="-")
                for label in loop.run.labels
            ]
            if progress is not None
            else []
        )

    def update(self) -> None:
        if self.progress is None:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        tokens_per_second = f"{self.loop.tokens / elapsed:.0f}"
        for task, curve in zip(self.tasks, self.loop.curves, strict=True):
            loss = f"{curve.losses[-1]:.3f}" if curve.losses else "-"
            self.progress.update(task, completed=len(curve.losses), loss=loss, tps=tokens_per_second)


def train_fused(
    base: PreTrainedModel, run: FusedRun, output_root: Path
) -> tuple[PreTrainedModel, list[TrainingOutcome]]:
    """Train one adapter per trial of ``run`` together; save each under ``output_root/<folder>/adapter``
    (``trial_folder``). Returns the bare base model (unchanged) and one outcome per trial, in order."""
    configs = [trial.config(run.config) for trial in run.trials]
    with fused_adapters(base, configs) as (model, adapters):
        loop = _Loop(run, model, adapters)
        loop.restore()
        bars = _Bars(run.progress, loop)
        started = time.perf_counter()
        with ctrl_c_sets_flag(loop):
            for batches in _micro_batches(run, loop.step):
                if loop.step >= loop.total or not loop.active:
                    break
                measured = loop.train_step(batches)
                bars.update()
                if run.should_stop is not None and run.should_stop():
                    loop.interrupted = True
                if loop.interrupted or loop.step % run.config.checkpoint_every == 0:
                    loop.save()  # before on_validation: a caller stopped there keeps this step's adapters
                if loop.interrupted:
                    raise TrainingInterrupted(f"interrupted at step {loop.step}; checkpoint saved")
                if measured is not None and run.on_validation is not None:
                    run.on_validation(loop.step, {run.labels[k]: loss for k, loss in measured.items()})
        loop.finish()
        wall = time.perf_counter() - started
        states = [loop.final_state(k) for k in range(len(run.trials))]
    return _export_all(base, run.config, run.trials, loop.curves, states, output_root, wall, loop.tokens)


def export_checkpoint(
    base: PreTrainedModel,
    config: SweepConfig,
    trials: Sequence[Trial],
    checkpoint: Path,
    output_root: Path,
    wall_seconds: float,
) -> tuple[PreTrainedModel, list[TrainingOutcome]]:
    """Export every trial's adapter as the fused ``checkpoint`` of these trials holds it, as
    ``train_fused`` would at its end: for a run stopped from outside after a checkpoint (Ray's ASHA).
    Adapters still training are written as they were at the checkpoint's step. Returns the bare base
    model and one outcome per trial; raises ``FileNotFoundError`` when no checkpoint of them is there."""
    labels = [trial.label for trial in trials]
    state = _load_checkpoint(checkpoint, config, labels)
    if state is None:
        raise FileNotFoundError(f"{checkpoint}: no fused checkpoint of the trials {labels}")
    curves = [AdapterCurve(**curve) for curve in state["curves"]]
    states = [state["stopped_state"].get(k) or state["adapters"][k] for k in range(len(trials))]
    return _export_all(base, config, trials, curves, states, output_root, wall_seconds, state["tokens"])


def _load_checkpoint(path: Path, config: SweepConfig, labels: list[str]) -> dict[str, Any] | None:
    """The fused checkpoint at ``path`` when it is for this config and these trials, else None."""
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError):
        return None
    if state.get("config") != config.to_dict() or state.get("trials") != labels:
        return None  # another sweep's or another config's checkpoint: start afresh
    return state


def _export_all(
    base: PreTrainedModel,
    config: SweepConfig,
    trials: Sequence[Trial],
    curves: list[AdapterCurve],
    states: list[dict[str, torch.Tensor]],
    output_root: Path,
    wall: float,
    tokens: float,
) -> tuple[PreTrainedModel, list[TrainingOutcome]]:
    """Write each trial's adapter (its curve and weights, in trial order) under
    ``output_root/<folder>/adapter``; ``wall`` and ``tokens``: the run's seconds and tokens."""
    outcomes = []
    for trial, curve, state in zip(trials, curves, states, strict=True):
        folder = output_root / trial_folder(trial) / ADAPTER_DIR
        base = _export(base, trial.config(config), state, folder, trial.label)
        outcomes.append(_outcome(curve, folder, wall, tokens))
    return base, outcomes


def trial_folder(trial: Trial) -> str:
    """A trial's folder under the sweep's: ``lr=0.0003 cosine r=4`` -> ``lr-0.0003_cosine_r-4``."""
    return trial.label.replace("=", "-").replace(" ", "_")


def _export(
    base: PreTrainedModel, config: SweepConfig, state: dict[str, torch.Tensor], folder: Path, label: str
) -> PreTrainedModel:
    """``export_adapter`` all or nothing (``evalgate.core.disk_writes``); returns the bare base model."""
    restored: list[PreTrainedModel] = []
    write_folder(
        folder,
        f"the adapter of {label}",
        lambda path: restored.append(export_adapter(base, config, state, Path(path))),
    )
    return restored[0]


def _outcome(curve: AdapterCurve, folder: Path, wall: float, tokens: float) -> TrainingOutcome:
    """``tokens``: tokens each adapter trained on (the batches are shared, so the same for all)."""
    diverged = curve.stopped_at is not None and not curve.halted
    verdict = Diagnosis("diverged", curve.reason) if diverged else diagnose(curve.losses)
    return TrainingOutcome(
        adapter_dir=folder,
        steps=len(curve.losses),
        losses=curve.losses,
        learning_rates=curve.learning_rates,
        wall_seconds=wall,
        tokens_per_second=tokens / wall if wall > 0 else 0.0,
        stopped_early=diverged,
        diagnosis=verdict.label,
        reason=verdict.reason,
        halted=curve.halted,
        validation_loss=curve.validation,
    )
