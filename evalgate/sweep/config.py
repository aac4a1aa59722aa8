"""Sweep configuration: YAML into a validated, frozen object.

    evalgate sweep examples/sweep.yaml

Every field has a default except the dataset; a minimal file is ``dataset: evalgate-suite``.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BeforeValidator,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from evalgate.core.config_files import (
    CONFIG_FILE,
    ConfigProblem,
    Integer,
    Name,
    Number,
    Precision,
    load_yaml,
    validated,
)
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL

Scheduler = Literal["constant", "linear", "cosine", "step"]
Trainer = Literal["auto", "fused", "peft"]
Device = Literal["auto", "cpu", "cuda", "mps"]
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


class ConfigError(ValueError):
    """A sweep configuration value is missing, unknown or out of range; the message names the key."""


def _number_from_text(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string: such a string is taken as the number it spells."""
    if not isinstance(value, str):
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None


Rate = Annotated[float, Field(gt=0), AllowInfNan(False), Strict(), BeforeValidator(_number_from_text)]
"""A learning rate: a finite number > 0 (``3e-4`` written without a dot included)."""


@dataclass(frozen=True, config=CONFIG_FILE)
class LoraSettings:
    """Handed through to ``peft.LoraConfig``."""

    r: Annotated[Integer, Field(ge=1)] = 8
    """Rank of each LoRA update."""
    alpha: Annotated[Integer, Field(gt=0)] = 16
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: Annotated[Number, Field(ge=0, lt=1)] = 0.0
    """Dropout on the LoRA input."""
    target_modules: Annotated[tuple[Name, ...], Field(min_length=1)] = ATTENTION_PROJECTIONS
    """Names of the linear modules that get adapters (must exist in the model)."""
    top_layers: Annotated[Integer, Field(ge=1)] | None = None
    """Adapt only the last N transformer layers (None: all). Backpropagation then stops below them,
    so a step costs far less on a CPU; the adapter can still reshape what the model outputs."""


@dataclass(frozen=True, config=CONFIG_FILE)
class SchedulerSettings:
    """Learning-rate schedule: warmup, then constant, linear or cosine decay to 0, or step decay."""

    kind: Scheduler = "constant"
    """constant, linear, cosine or step."""
    warmup_ratio: Annotated[Number, Field(ge=0, lt=1)] = 0.0
    """Share of the steps spent warming up linearly from 0 (ignored when warmup_steps > 0)."""
    warmup_steps: Annotated[Integer, Field(ge=0)] = 0
    """Warmup length in steps."""
    step_size: Annotated[Integer, Field(ge=1)] = 10
    """step: multiply the rate by ``gamma`` every ``step_size`` steps."""
    gamma: Annotated[Number, Field(gt=0, le=1)] = 0.5
    """step: decay factor."""
    final_fraction: Annotated[Number, Field(ge=0, lt=1)] = 0.0
    """Where the decay ends, as a share of the peak rate (``lrf``): linear and cosine decay reach
    ``rate x final_fraction`` at the end of the last step, step decay stops there. A constant schedule
    does not decay, so it takes none."""

    @model_validator(mode="after")
    def _decay_to_end_at(self) -> SchedulerSettings:
        if self.kind == "constant" and self.final_fraction > 0:
            raise ConfigProblem(
                "final_fraction", "a constant schedule does not decay; use linear, cosine or step"
            )
        return self


@dataclass(frozen=True, config=CONFIG_FILE)
class RateRange:
    """A log-uniform range of learning rates, for the random and tpe samplers."""

    low: Rate
    """Smallest rate."""
    high: Rate
    """Largest rate (> low)."""

    @model_validator(mode="after")
    def _ordered(self) -> RateRange:
        if self.high <= self.low:
            raise ConfigProblem("high", f"must be > low ({self.low:g}), got {self.high:g}")
        return self


def _rates_kind(value: Any) -> str:
    return "range" if isinstance(value, dict | RateRange) else "list"


RatesOrRange = Annotated[
    Annotated[tuple[Rate, ...], Tag("list")] | Annotated[RateRange, Tag("range")],
    Discriminator(_rates_kind),
]
"""A list of rates, or a ``{low, high}`` mapping: told apart by their shape, so an error names one."""

Sampler = Literal["grid", "random", "tpe"]


@dataclass(frozen=True, config=CONFIG_FILE)
class SearchSpace:
    """Hyperparameters to search besides the rate (``evalgate.sweep.trials``). A dimension left empty
    keeps the sweep's own value; every trial shares the base model, batch and sequence length, so they
    all train together in one fused run."""

    sampler: Sampler = "grid"
    """grid: every combination; random: ``trials`` draws (seeded); tpe: Optuna's TPE sampler, asking
    ``parallel`` trials at a time, its study kept in the project's database (a killed search resumes)."""
    trials: Annotated[Integer, Field(ge=1)] | None = None
    """Trial budget: required by random and tpe; grid refuses a space larger than it."""
    parallel: Annotated[Integer, Field(ge=1)] = 4
    """tpe: trials trained together per round (one fused run each round)."""
    seed: Integer = 0
    """Seeds the random and tpe samplers."""
    learning_rate: RatesOrRange = ()
    """A list of rates, or ``{low, high}`` (log-uniform; random and tpe only). Empty: the sweep's
    ``learning_rates``."""
    scheduler: tuple[Scheduler, ...] = ()
    """Schedule kinds."""
    warmup_ratio: tuple[Annotated[Number, Field(ge=0, lt=1)], ...] = ()
    """Warmup as a share of the steps."""
    final_fraction: tuple[Annotated[Number, Field(ge=0, lt=1)], ...] = ()
    """End of the decay as a share of the peak rate (ignored by a constant schedule)."""
    lora_r: tuple[Annotated[Integer, Field(ge=1)], ...] = ()
    """LoRA ranks."""
    lora_alpha: tuple[Annotated[Integer, Field(gt=0)], ...] = ()
    """LoRA scaling numerators."""

    @model_validator(mode="after")
    def _budget(self) -> SearchSpace:
        if self.sampler != "grid" and self.trials is None:
            raise ConfigProblem("trials", f"the {self.sampler} sampler needs a trial budget")
        if self.sampler == "grid" and isinstance(self.learning_rate, RateRange):
            raise ConfigProblem("learning_rate", "grid needs a list of rates, not a range")
        return self


@dataclass(frozen=True, config=CONFIG_FILE)
class HalvingSettings:
    """Successive halving inside the fused run: at each rung the adapters' validation loss on rows held
    out of the train split is measured and all but the best ``1 / reduction_factor`` stop."""

    grace_steps: Annotated[Integer, Field(ge=1)] = 8
    """First rung: optimizer steps before any adapter may be stopped."""
    reduction_factor: Annotated[Integer, Field(ge=2)] = 2
    """Rungs at grace x factor^i steps; each keeps the best 1 / factor (at least one)."""
    validation_share: Annotated[Number, Field(gt=0, lt=1)] = 0.1
    """Share of the train rows held out to measure validation loss (at least 8 rows)."""


@dataclass(frozen=True, config=CONFIG_FILE)
class SweepConfig:
    """One sweep: a base model, a dataset version's train split, and the rates to try."""

    dataset: Name
    """``NAME`` or ``NAME@vN``: the train split is used for training."""
    name: Name = "sweep"
    """Label of the sweep (also its folder under the artifact root)."""
    base_model: Name = EMBEDDED_DEFAULT_MODEL
    """The embedded default, a local folder, or a hub id."""
    learning_rates: tuple[Rate, ...] = (3e-5, 3e-4, 3e-3, 3e-2)
    """One candidate per rate."""
    lr_find: StrictBool = False
    """Replace ``learning_rates`` by the grid the range test proposes (with a ``search`` of random or
    tpe: the range from its lowest to its highest rate)."""
    search: SearchSpace | None = None
    """Search more than the rate: schedule, warmup, final fraction, LoRA rank and alpha."""
    halving: HalvingSettings | None = None
    """Stop the worst adapters early inside the fused run (successive halving)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """The LoRA adapters every rate trains (``search`` may vary r and alpha)."""
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    """The learning-rate schedule of every rate (``search`` may vary it)."""
    epochs: Annotated[Number, Field(gt=0)] = 1.0
    """Passes over the train split (ignored when max_steps > 0)."""
    max_steps: Annotated[Integer, Field(ge=0)] = 0
    """Optimizer steps per candidate; 0 means use ``epochs``."""
    batch_size: Annotated[Integer, Field(ge=1)] = 8
    """Rows per forward pass."""
    gradient_accumulation: Annotated[Integer, Field(ge=1)] = 1
    """Forward passes per optimizer step."""
    max_seq_length: Annotated[Integer, Field(ge=1)] = 256
    """Prompt + answer tokens; longer rows are cut from the left of the prompt."""
    seed: Integer = 0
    """Seeds the data order and LoRA initialisation: every rate sees identical batches."""
    precision: Precision = "auto"
    """auto (bf16 on a GPU that has it and on a CPU with AMX, else fp32), fp32, bf16, fp16."""
    device: Device = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    max_grad_norm: Annotated[Number, Field(gt=0)] = 1.0
    """Gradient clipping norm."""
    checkpoint_every: Annotated[Integer, Field(ge=1)] = 10
    """Save a resumable checkpoint every N optimizer steps."""
    self_replay: tuple[Name, ...] = ()
    """Cohorts of the train split answered by the base model itself before training (their own
    references are ignored): self-distilled replay, see ``evalgate.sweep.self_replay``."""
    trainer: Trainer = "auto"
    """fused: every rate in one process over one base model (``evalgate.sweep.training.fused``); peft: one
    transformers Trainer run per rate; auto: fused where the model allows it, else peft."""

    @field_validator("learning_rates")
    @classmethod
    def _distinct(cls, rates: tuple[float, ...]) -> tuple[float, ...]:
        repeated = sorted({rate for rate in rates if rates.count(rate) > 1})
        if repeated:
            raise ValueError(f"has duplicates: {', '.join(f'{rate:g}' for rate in repeated)}")
        return rates

    @model_validator(mode="after")
    def _rates_or_lr_find(self) -> SweepConfig:
        searched = self.search is not None and self.search.learning_rate
        if not self.learning_rates and not self.lr_find and not searched:
            raise ConfigProblem("learning_rates", "give at least one rate, or lr_find: true")
        if self.halving is not None and self.trainer == "peft":
            raise ConfigProblem(
                "halving", "successive halving runs inside the fused trainer, not trainer: peft"
            )
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepConfig:
        """Build from plain data (as parsed from YAML), rejecting unknown keys."""
        return validated(cls, data, ConfigError)

    @classmethod
    def from_yaml(cls, path: Path) -> SweepConfig:
        """Read and validate a YAML file."""
        return load_yaml(path, cls.from_dict, ConfigError)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored with the sweep)."""
        return asdict(self)
