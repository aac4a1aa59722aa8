"""Fused multi-LoRA training against K sequential plain peft + transformers Trainer runs.

    python bench/fused_training_speed.py --k 4 --steps 8
    python bench/fused_training_speed.py --k 8 --steps 30 --random-init --model-source DIR   # a GPU

Both train the same K rates (log-spaced from 1e-5 to 1e-3) for ``--steps`` steps of the main job's
batches (bundled suite, examples/sweep.yaml's LoRA and batch settings) over one base model loaded
once, in this process: first one Trainer run per rate (``trainer: peft``), then every rate at once
(``trainer: fused``). ``--k1`` adds the single-rate comparison. Prints wall time, optimizer steps per
second summed over the rates, and the ratios. Needs no database: runs with torch, transformers, peft.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, random_init_copy  # bench/ is on sys.path when run as a script

from evalgate.core.paths import BUNDLED_SUITE_DIR, MAIN_SWEEP_CONFIG
from evalgate.modeling.loading import (
    EMBEDDED_DEFAULT_MODEL,
    load_model,
    pick_device,
    pick_dtype,
    resolve_model,
)
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.training.fused import CHECKPOINT_FILE, FusedRun, train_fused
from evalgate.sweep.training.peft_trainer import (
    AnswerOnlyCollator,
    attach_adapter,
    tokenize_rows,
    train_candidate,
)
from evalgate.sweep.trials import sweep_trials


def train_rows() -> list[dict[str, object]]:
    """The bundled suite's train rows (target, replay and safety)."""
    rows = []
    for path in sorted(BUNDLED_SUITE_DIR.glob("*_train.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def sequential(
    base: Any, tokenizer: Any, examples: list[Any], config: SweepConfig, out: Path, **kw: Any
) -> float:
    """One Trainer run per rate over the one base model; wall seconds."""
    started = time.perf_counter()
    for rate in config.learning_rates:
        model = attach_adapter(base, config)
        train_candidate(model, tokenizer, examples, config, rate, out / f"peft-{rate:g}", **kw)
        base = model.unload()
    return time.perf_counter() - started


def fused(base: Any, tokenizer: Any, examples: list[Any], config: SweepConfig, out: Path, **kw: Any) -> float:
    """Every rate in one fused run; wall seconds."""
    run = FusedRun(
        config=config,
        trials=sweep_trials(config, config.learning_rates),
        examples=examples,
        collator=AnswerOnlyCollator(tokenizer.pad_token_id or 0),
        checkpoint=out / f"fused-{len(config.learning_rates)}" / CHECKPOINT_FILE,
        **kw,
    )
    started = time.perf_counter()
    train_fused(base, run, out / f"fused-{len(config.learning_rates)}")
    return time.perf_counter() - started


def compare(
    label: str,
    base: object,
    tokenizer: object,
    examples: list,
    config: SweepConfig,
    out: Path,
    device: str,
    dtype: object,
) -> None:
    k = len(config.learning_rates)
    kw = {"device": device, "dtype": dtype}
    folder = out / label  # fresh folders: neither path may resume an earlier comparison's checkpoint
    plain = sequential(base, tokenizer, examples, config, folder, **kw)
    together = fused(base, tokenizer, examples, config, folder, **kw)
    steps = k * config.max_steps
    print(
        f"{label}: peft sequential {plain:7.1f} s ({steps / plain:5.2f} steps/s)   "
        f"fused {together:7.1f} s ({steps / together:5.2f} steps/s)   fused is {plain / together:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=4, help="number of rates trained")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--k1", action="store_true", help="also compare a single rate")
    parser.add_argument("--top-layers", type=int, default=None, help="LoRA on the last N layers only")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--model-source", default=None)
    args = parser.parse_args()

    home = Path(os.environ.get("EVALGATE_HOME", "~/.evalgate")).expanduser()
    out = Path(tempfile.mkdtemp(prefix="evalgate-bench-"))
    config = SweepConfig.from_yaml(MAIN_SWEEP_CONFIG)
    ref = config.base_model
    if args.random_init:
        ref = random_init_copy(
            args.model_source or resolve_model(EMBEDDED_DEFAULT_MODEL, home), out / "random"
        )
    rates = tuple(float(rate) for rate in np.logspace(-5, -3, args.k))
    if args.top_layers:
        config = dataclasses.replace(
            config, lora=dataclasses.replace(config.lora, top_layers=args.top_layers)
        )
    config = dataclasses.replace(
        config, learning_rates=rates, max_steps=args.steps, checkpoint_every=10_000, precision=args.precision
    )
    device = pick_device(config.device)
    dtype = pick_dtype(config.precision, device)
    base, tokenizer = load_model(ref, home, dtype=dtype, device=device)
    tokenizer.padding_side = "right"
    examples = tokenize_rows(tokenizer, train_rows(), config.max_seq_length)
    print(f"machine: {machine()}; device {device}, dtype {dtype}")
    print(
        f"{ref}: LoRA r={config.lora.r} on {list(config.lora.target_modules)}, top_layers "
        f"{config.lora.top_layers}, {args.steps} steps x batch {config.batch_size}"
    )
    warm_up = dataclasses.replace(config, learning_rates=rates[:1], max_steps=2)
    fused(base, tokenizer, examples, warm_up, out / "warm-up", device=device, dtype=dtype)
    compare(f"K={args.k}", base, tokenizer, examples, config, out, device, dtype)
    if args.k1:
        single = dataclasses.replace(config, learning_rates=rates[-1:])
        compare("K=1", base, tokenizer, examples, single, out, device, dtype)


if __name__ == "__main__":
    main()
