"""The sweep settings the tiny-model tests share: seconds per candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalgate.sweep.config import SweepConfig


def tiny_sweep_config(tiny_lm_dir: Path, **overrides: Any) -> SweepConfig:
    """Two rates, 6 steps of batch 4, LoRA r=4 on q/v, fp32 on CPU, on the ``tiny-suite`` dataset."""
    values: dict[str, Any] = {
        "dataset": "tiny-suite",
        "base_model": str(tiny_lm_dir),
        "learning_rates": (1e-3, 3e-2),
        "max_steps": 6,
        "batch_size": 4,
        "max_seq_length": 96,
        "checkpoint_every": 2,
        "precision": "fp32",
        "device": "cpu",
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    }
    values.update(overrides)
    return SweepConfig.from_dict(values)
