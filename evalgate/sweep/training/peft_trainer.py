"""Train one LoRA candidate with transformers' Trainer and peft, answer tokens only.

Reads top to bottom: tokenise the rows (prompt masked out of the loss), build the Trainer with the
sweep's settings at one learning rate, train (resuming from the last checkpoint when there is one),
save a standard PEFT adapter folder and the curves. The caller owns the base model and the database.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from rich.progress import Progress
from torch.optim.lr_scheduler import LambdaLR
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback

from evalgate.core.disk_writes import reported_writes, write_folder
from evalgate.modeling.prompting import render_completion, render_prompt
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.diagnosis import DIVERGENCE_FACTOR, Diagnosis, diagnose
from evalgate.sweep.progress import ProgressCallback
from evalgate.sweep.schedule import schedule_factor

IGNORE_INDEX = -100
ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"


class TrainingInputError(ValueError):
    """The training rows or settings cannot be used with this model."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint was saved and the candidate can be resumed."""


@dataclass
class TrainingOutcome:
    """What one candidate's training produced."""

    adapter_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    tokens_per_second: float = 0.0
    stopped_early: bool = False
    diagnosis: str = "healthy"
    reason: str = ""
    halted: str = ""
    """Why successive halving stopped it ("" when it trained to the end or diverged)."""
    validation_loss: list[tuple[int, float]] = field(default_factory=list)
    """``(step, mean answer-token loss on held-out rows)``: halving's rungs and the end."""

    def curves(self) -> dict[str, Any]:
        """JSON-ready summary stored on the candidate row."""
        return {
            "steps": self.steps,
            "loss": [loss if math.isfinite(loss) else None for loss in self.losses],  # JSON has no NaN
            "learning_rate": self.learning_rates,
            "wall_seconds": round(self.wall_seconds, 2),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "stopped_early": self.stopped_early,
            "diagnosis_reason": self.reason,
            "halted": self.halted,
            "validation_loss": [
                [step, loss if math.isfinite(loss) else None] for step, loss in self.validation_loss
            ],
        }


def tokenize_rows(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[Mapping[str, Any]], max_length: int
) -> list[dict[str, list[int]]]:
    """Token ids and labels per row; labels are ``IGNORE_INDEX`` on the prompt (answer-only loss).

    Rows longer than ``max_length`` lose tokens from the start of the prompt; the answer is kept whole.
    """
    examples = []
    for row in rows:
        prompt_ids = tokenizer(render_prompt(tokenizer, row), add_special_tokens=False)["input_ids"]
        answer_text = render_completion(tokenizer, row, str(row["reference"]))
        answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
        if len(answer_ids) >= max_length:
            raise TrainingInputError(
                f"row {row.get('id')!r}: answer is {len(answer_ids)} tokens, max_seq_length is {max_length}"
            )
        prompt_ids = prompt_ids[-(max_length - len(answer_ids)) :]
        examples.append(
            {"input_ids": prompt_ids + answer_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids}
        )
    return examples


class AnswerOnlyCollator:
    """Right-pads a batch; padding is masked out of attention and loss."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(example["input_ids"]) for example in batch)
        input_ids, labels, attention = [], [], []
        for example in batch:
            pad = width - len(example["input_ids"])
            input_ids.append(example["input_ids"] + [self.pad_token_id] * pad)
            labels.append(example["labels"] + [IGNORE_INDEX] * pad)
            attention.append([1] * len(example["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(attention),
        }


class CurveCallback(TrainerCallback):
    """Stops a diverging run (non-finite loss, or loss > DIVERGENCE_FACTOR x its start) and Ctrl-C.

    On Ctrl-C, or when ``should_stop()`` turns true (a job cancelled or its worker shutting down),
    the current step finishes, a checkpoint is saved, and training stops.
    """

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self.should_stop = should_stop
        self.first_loss: float | None = None
        self.diverged = False
        self.reason = ""
        self.interrupted = False
        self.tokens = 0

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        if self.first_loss is None:  # a resumed run: the first loss is in the restored history
            self.first_loss = next((float(e["loss"]) for e in state.log_history if "loss" in e), loss)
        if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(self.first_loss, 1e-8):
            self.diverged = True
            self.reason = (
                f"stopped at step {state.global_step}: loss {loss:.3g} (started at {self.first_loss:.3g})"
            )
            control.should_training_stop = True

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not self.interrupted and self.should_stop is not None and self.should_stop():
            self.interrupted = True
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True


class CandidateTrainer(Trainer):
    """Trainer with the sweep's schedule (``evalgate.sweep.schedule``: the one the fused trainer uses,
    final fraction and step decay included), and token counting for tokens/s."""

    def __init__(self, *args: Any, sweep_config: SweepConfig, curve: CurveCallback, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sweep_config = sweep_config
        self.curve = curve

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        settings = self.sweep_config.scheduler
        target = optimizer if optimizer is not None else self.optimizer
        assert target is not None
        self.lr_scheduler = LambdaLR(target, lambda step: schedule_factor(settings, step, num_training_steps))
        return self.lr_scheduler

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        self.curve.tokens += int(inputs["attention_mask"].sum())
        return super().training_step(model, inputs, num_items_in_batch)


def lora_config(config: SweepConfig, num_layers: int | None = None) -> LoraConfig:
    """The sweep's LoRA settings as peft's own config object (``num_layers``: the model's depth,
    needed with ``lora.top_layers``)."""
    layers = None
    if config.lora.top_layers is not None:
        if num_layers is None or config.lora.top_layers > num_layers:
            raise TrainingInputError(
                f"lora.top_layers is {config.lora.top_layers} but the model has {num_layers} layers"
            )
        layers = list(range(num_layers - config.lora.top_layers, num_layers))
    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )


def attach_adapter(base: PreTrainedModel, config: SweepConfig) -> PeftModel:
    """Wrap ``base`` with a fresh LoRA adapter, initialised from the sweep's seed (same for every rate)."""
    check_target_modules(base, config.lora.target_modules)
    torch.manual_seed(config.seed)
    model = get_peft_model(base, lora_config(config, getattr(base.config, "num_hidden_layers", None)))
    assert isinstance(model, PeftModel)
    return model


def check_lora_rank(model: torch.nn.Module, targets: Sequence[str], rank: int, key: str) -> None:
    """Raise ``TrainingInputError`` naming ``key`` when ``rank`` exceeds the smallest side of a targeted
    linear module: its update ``B A`` ([out, r] x [r, in]) can have no rank above ``min(in, out)``."""
    sides = [
        min(module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets
    ]
    if sides and rank > min(sides):
        raise TrainingInputError(
            f"{key}: rank {rank} exceeds {min(sides)}, the smallest side of the targeted modules "
            f"{sorted(targets)}: a LoRA update of theirs can have no higher rank"
        )


def check_target_modules(model: torch.nn.Module, targets: Sequence[str]) -> None:
    """Raise ``TrainingInputError`` naming the LoRA targets the model does not have."""
    linear_names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    missing = sorted(set(targets) - linear_names)
    if missing:
        raise TrainingInputError(
            f"lora.target_modules {missing} not found in the model; "
            f"its linear modules are {sorted(linear_names)}"
        )


def training_arguments(
    config: SweepConfig,
    rate: float,
    output_dir: Path,
    device: str,
    dtype: torch.dtype,
    evaluate: bool = False,
) -> TrainingArguments:
    """Trainer settings for one rate; everything but the rate is shared by the sweep."""
    return TrainingArguments(
        output_dir=str(output_dir / CHECKPOINT_DIR),
        learning_rate=rate,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        lr_scheduler_type="constant",  # replaced by CandidateTrainer.create_scheduler
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        bf16=dtype == torch.bfloat16 and device != "cpu",
        fp16=dtype == torch.float16,
        use_cpu=device == "cpu",
        logging_steps=1,
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=config.checkpoint_every,
        save_total_limit=1,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=config.checkpoint_every if evaluate else None,
    )


@contextmanager
def ctrl_c_sets_flag(holder: Any) -> Iterator[None]:
    """First Ctrl-C sets ``holder.interrupted`` (the loop finishes its step, saves and stops);
    a second one interrupts at once."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        holder.interrupted = True
        signal.signal(signal.SIGINT, previous)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def train_candidate(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict[str, list[int]]],
    config: SweepConfig,
    rate: float,
    output_dir: Path,
    *,
    device: str,
    dtype: torch.dtype,
    progress: Progress | None = None,
    eval_examples: list[dict[str, list[int]]] | None = None,
    extra_callbacks: Sequence[TrainerCallback] = (),
    should_stop: Callable[[], bool] | None = None,
    label: str = "",
) -> TrainingOutcome:
    """Train ``model``'s adapter at ``rate`` on ``examples``; save it under ``output_dir/adapter``.
    ``label`` names it in progress and errors (default ``lr=<rate>``).

    With ``eval_examples`` the validation loss is computed every ``config.checkpoint_every`` steps
    (logged as ``eval_loss``, which ``extra_callbacks`` such as a Ray Tune reporter can read).
    ``should_stop`` is polled after every step; when true, training stops as on Ctrl-C.
    """
    label = label or f"lr={rate:g}"
    curve = CurveCallback(should_stop)
    callbacks: list[TrainerCallback] = [curve, *extra_callbacks]
    if progress is not None:
        callbacks.append(ProgressCallback(progress, label, curve))
    trainer = CandidateTrainer(
        model=model,
        args=training_arguments(config, rate, output_dir, device, dtype, evaluate=bool(eval_examples)),
        train_dataset=examples,
        eval_dataset=eval_examples or None,
        data_collator=AnswerOnlyCollator(tokenizer.pad_token_id or 0),
        callbacks=callbacks,
        sweep_config=config,
        curve=curve,
    )
    trainer.remove_callback(PrinterCallback)  # progress and curves are ours: no raw log dicts on stdout
    checkpoint = last_complete_checkpoint(output_dir / CHECKPOINT_DIR)
    started = time.perf_counter()
    with ctrl_c_sets_flag(curve), reported_writes(output_dir / CHECKPOINT_DIR, "training checkpoints"):
        trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.perf_counter() - started
    if curve.interrupted:
        raise TrainingInterrupted(f"interrupted at step {trainer.state.global_step}; checkpoint saved")
    adapter_dir = output_dir / ADAPTER_DIR
    write_folder(adapter_dir, f"the adapter of {label}", model.save_pretrained)
    return _outcome(trainer, curve, adapter_dir, wall)


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` under ``folder`` whose ``trainer_state.json`` parses, else None.

    The Trainer writes that file after the weights, optimizer and RNG state, so a process killed while
    saving leaves a newer folder without it (or with it cut short); such folders are removed here.
    """
    if not folder.is_dir():
        return None
    steps = sorted(
        (int(path.name.split("-")[1]), path)
        for path in folder.glob("checkpoint-*")
        if path.is_dir() and path.name.split("-")[1].isdigit()
    )
    for _, path in reversed(steps):
        try:
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    return None


def _outcome(trainer: Trainer, curve: CurveCallback, adapter_dir: Path, wall: float) -> TrainingOutcome:
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    losses = [float(entry["loss"]) for entry in logs]
    verdict = diagnose(losses)
    if curve.diverged:
        verdict = Diagnosis("diverged", curve.reason)
    return TrainingOutcome(
        adapter_dir=adapter_dir,
        steps=trainer.state.global_step,
        losses=losses,
        learning_rates=[float(entry.get("learning_rate", 0.0)) for entry in logs],
        wall_seconds=wall,
        tokens_per_second=curve.tokens / wall if wall > 0 else 0.0,
        stopped_early=curve.diverged,
        diagnosis=verdict.label,
        reason=verdict.reason,
    )
