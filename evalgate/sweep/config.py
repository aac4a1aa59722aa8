"""Sweep configuration: YAML into a validated, frozen object.

    evalgate sweep examples/sweep.yaml

Every field has a default except the dataset; a minimal file is ``dataset: evalgate-suite``.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evalgate.core.config_files import load_yaml
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL

SCHEDULERS = ("constant", "linear", "cosine", "step")
TRAINERS = ("auto", "fused", "peft")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A sweep configuration value is missing, unknown or out of range; the message names the key."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


@dataclass(frozen=True)
class LoraSettings:
    """Handed through to ``peft.LoraConfig``."""

    r: int = 8
    """Rank of each LoRA update."""
    alpha: int = 16
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = 0.0
    """Dropout on the LoRA input."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the linear modules that get adapters (must exist in the model)."""
    top_layers: int | None = None
    """Adapt only the last N transformer layers (None: all). Backpropagation then stops below them,
    so a step costs far less on a CPU; the adapter can still reshape what the model outputs."""

    def __post_init__(self) -> None:
        _require(self.r >= 1, "lora.r", f"must be >= 1, got {self.r}")
        _require(self.alpha > 0, "lora.alpha", f"must be > 0, got {self.alpha}")
        _require(0.0 <= self.dropout < 1.0, "lora.dropout", f"must be in [0, 1), got {self.dropout}")
        _require(len(self.target_modules) > 0, "lora.target_modules", "must name at least one module")
        _require(
            self.top_layers is None or (isinstance(self.top_layers, int) and self.top_layers >= 1),
            "lora.top_layers",
            f"must be a positive integer, got {self.top_layers}",
        )


@dataclass(frozen=True)
class SchedulerSettings:
    """Learning-rate schedule: warmup, then constant, linear or cosine decay to 0, or step decay."""

    kind: str = "constant"
    """constant, linear, cosine or step."""
    warmup_ratio: float = 0.0
    """Share of the steps spent warming up linearly from 0 (ignored when warmup_steps > 0)."""
    warmup_steps: int = 0
    """Warmup length in steps."""
    step_size: int = 10
    """step: multiply the rate by ``gamma`` every ``step_size`` steps."""
    gamma: float = 0.5
    """step: decay factor."""

    def __post_init__(self) -> None:
        _require(self.kind in SCHEDULERS, "scheduler.kind", f"{self.kind!r} is not one of {SCHEDULERS}")
        _require(0.0 <= self.warmup_ratio < 1.0, "scheduler.warmup_ratio", "must be in [0, 1)")
        _require(self.warmup_steps >= 0, "scheduler.warmup_steps", "must be >= 0")
        _require(self.step_size >= 1, "scheduler.step_size", "must be >= 1")
        _require(0.0 < self.gamma <= 1.0, "scheduler.gamma", "must be in (0, 1]")


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: a base model, a dataset version's train split, and the rates to try."""

    dataset: str
    """``NAME`` or ``NAME@vN``: the train split is used for training."""
    name: str = "sweep"
    """Label of the sweep (also its folder under the artifact root)."""
    base_model: str = EMBEDDED_DEFAULT_MODEL
    """The embedded default, a local folder, or a hub id."""
    learning_rates: tuple[float, ...] = (3e-5, 3e-4, 3e-3, 3e-2)
    """One candidate per rate."""
    lr_find: bool = False
    """Replace ``learning_rates`` by the grid the range test proposes."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    epochs: float = 1.0
    """Passes over the train split (ignored when max_steps > 0)."""
    max_steps: int = 0
    """Optimizer steps per candidate; 0 means use ``epochs``."""
    batch_size: int = 8
    """Rows per forward pass."""
    gradient_accumulation: int = 1
    """Forward passes per optimizer step."""
    max_seq_length: int = 256
    """Prompt + answer tokens; longer rows are cut from the left of the prompt."""
    seed: int = 0
    """Seeds the data order and LoRA initialisation: every rate sees identical batches."""
    precision: str = "auto"
    """auto (bf16 where supported), fp32, bf16 or fp16."""
    device: str = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    checkpoint_every: int = 10
    """Save a resumable checkpoint every N optimizer steps."""
    self_replay: tuple[str, ...] = ()
    """Cohorts of the train split answered by the base model itself before training (their own
    references are ignored): self-distilled replay, see ``evalgate.sweep.self_replay``."""
    trainer: str = "auto"
    """fused: every rate in one process over one base model (``evalgate.sweep.training.fused``); peft: one
    transformers Trainer run per rate; auto: fused where the model allows it, else peft."""

    def __post_init__(self) -> None:
        _require(bool(self.dataset), "dataset", "is required (NAME or NAME@vN)")
        _require(bool(self.name), "name", "must not be empty")
        if not self.lr_find:
            _require(
                len(self.learning_rates) > 0, "learning_rates", "give at least one rate, or lr_find: true"
            )
        for rate in self.learning_rates:
            _require(
                isinstance(rate, int | float) and math.isfinite(rate) and rate > 0,
                "learning_rates",
                f"every rate must be a finite number > 0, got {rate!r}",
            )
        _require(
            len(set(self.learning_rates)) == len(self.learning_rates), "learning_rates", "has duplicates"
        )
        _require(self.epochs > 0, "epochs", "must be > 0")
        _require(self.max_steps >= 0, "max_steps", "must be >= 0")
        for key in ("batch_size", "gradient_accumulation", "max_seq_length", "checkpoint_every"):
            _require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        _require(self.precision in PRECISIONS, "precision", f"{self.precision!r} is not one of {PRECISIONS}")
        _require(self.device in DEVICES, "device", f"{self.device!r} is not one of {DEVICES}")
        _require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        _require(self.trainer in TRAINERS, "trainer", f"{self.trainer!r} is not one of {TRAINERS}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepConfig:
        """Build from plain data (as parsed from YAML), rejecting unknown keys."""
        data = dict(data)
        _reject_unknown(data, cls, "")
        lora = data.pop("lora", None) or {}
        scheduler = data.pop("scheduler", None) or {}
        _reject_unknown(lora, LoraSettings, "lora.")
        _reject_unknown(scheduler, SchedulerSettings, "scheduler.")
        if "target_modules" in lora:
            lora["target_modules"] = tuple(lora["target_modules"])
        if "learning_rates" in data:
            data["learning_rates"] = tuple(_as_rate(rate) for rate in data["learning_rates"] or ())
        if "self_replay" in data:
            cohorts = data["self_replay"]
            _require(
                isinstance(cohorts, list | tuple) and all(isinstance(c, str) and c for c in cohorts),
                "self_replay",
                f"must be a list of cohort names, got {cohorts!r}",
            )
            data["self_replay"] = tuple(cohorts)
        try:
            return cls(**data, lora=LoraSettings(**lora), scheduler=SchedulerSettings(**scheduler))
        except TypeError as error:
            raise ConfigError(str(error)) from None

    @classmethod
    def from_yaml(cls, path: Path) -> SweepConfig:
        """Read and validate a YAML file."""
        return load_yaml(path, cls.from_dict, ConfigError)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored with the sweep)."""
        return asdict(self)


def _reject_unknown(data: dict[str, Any], kind: type, prefix: str) -> None:
    known = {item.name for item in fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + key for key in unknown)}; known: {sorted(known)}"
        )


def _as_rate(value: Any) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"learning_rates: {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"learning_rates: {value!r} is not a number")
    return float(value)
