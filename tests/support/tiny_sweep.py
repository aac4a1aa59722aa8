"""The sweep settings and training rows the tiny-model sweep tests share: seconds per candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalgate.sweep.config import SweepConfig

ANSWERS = ['{"name": "Ann", "quantity": 3}', '{"name": "Bo", "quantity": 1}', "Paris.", "Blue."]
"""The references of the training rows, in turn."""


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


def train_rows(count: int = 24) -> list[dict[str, Any]]:
    """``count`` train rows ``t{i}`` with reference ``ANSWERS[i % 4]``, then one eval row ``e0``."""
    return [
        {
            "id": f"t{i}",
            "question": f"Extract the order number {i}.",
            "context": f"Order {i} for Ann.",
            "reference": ANSWERS[i % len(ANSWERS)],
            "split": "train",
        }
        for i in range(count)
    ] + [{"id": "e0", "question": "held out", "reference": "x", "split": "eval"}]
