"""A 16-configuration search trained in one fused run, with and without successive halving.

    python bench/search_halving.py                 # the main job's model and batches, 32 steps
    python bench/search_halving.py --steps 16

The space: rates {1e-4, 3e-4, 1e-3, 3e-3} x schedule {constant, cosine} x LoRA rank {4, 8} = 16 trials,
everything else as in examples/sweep.yaml (SmolLM2-135M-Instruct, LoRA on the top 15 layers, batch 8).
10% of the train rows are held out. First every trial trains to the end and its validation loss is
measured there; then the same trials train with successive halving (grace 4 steps, factor 2: rungs
at 4, 8 and 16 steps keep 8, 4 and 2). Prints the wall time of both, the ratio, and each run's
recommendation: the trial with the lowest final validation loss among those that trained to the end
(the tuner's "best trial"; the gate's own recommendation needs an evaluation of each survivor, which
this bench does not run), and where the halved run's pick ranks in the full run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from common import machine  # bench/ is on sys.path when run as a script
from fused_training_speed import train_rows

from evalgate.core.paths import MAIN_SWEEP_CONFIG
from evalgate.modeling.loading import load_model, pick_device, pick_dtype
from evalgate.sweep.config import HalvingSettings, SearchSpace, SweepConfig
from evalgate.sweep.run import split_validation
from evalgate.sweep.training.fused import CHECKPOINT_FILE, FusedRun, rungs, train_fused
from evalgate.sweep.training.peft_trainer import AnswerOnlyCollator, TrainingOutcome, tokenize_rows
from evalgate.sweep.trials import sweep_trials

SPACE = SearchSpace(
    sampler="grid", learning_rate=(1e-4, 3e-4, 1e-3, 3e-3), scheduler=("constant", "cosine"), lora_r=(4, 8)
)


def best(outcomes: list[TrainingOutcome], labels: list[str]) -> list[tuple[float, str]]:
    """``(final validation loss, label)`` of the trials that trained to the end, best first."""
    finished = [
        (outcome.validation_loss[-1][1], label)
        for outcome, label in zip(outcomes, labels, strict=True)
        if not outcome.halted and not outcome.stopped_early and outcome.validation_loss
    ]
    return sorted(finished)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--grace", type=int, default=4)
    parser.add_argument("--factor", type=int, default=2)
    args = parser.parse_args()

    home = Path(os.environ.get("EVALGATE_HOME", "~/.evalgate")).expanduser()
    out = Path(tempfile.mkdtemp(prefix="evalgate-bench-"))
    config = dataclasses.replace(
        SweepConfig.from_yaml(MAIN_SWEEP_CONFIG), search=SPACE, max_steps=args.steps, checkpoint_every=10_000
    )
    halving = HalvingSettings(grace_steps=args.grace, reduction_factor=args.factor)
    trials = sweep_trials(config, config.learning_rates)
    device = pick_device(config.device)
    dtype = pick_dtype(config.precision, device)
    base, tokenizer = load_model(config.base_model, home, dtype=dtype, device=device)
    tokenizer.padding_side = "right"
    examples = tokenize_rows(tokenizer, train_rows(), config.max_seq_length)
    train, held_out = split_validation(examples, halving.validation_share, config.seed)
    print(f"machine: {machine()}; device {device}, dtype {dtype}")
    print(
        f"{len(trials)} trials, {args.steps} steps x batch {config.batch_size}, {len(train)} train rows, "
        f"{len(held_out)} held out; halving rungs {rungs(halving, args.steps)}, factor {args.factor}"
    )

    results = {}
    for name, run_config in (("full", config), ("halved", dataclasses.replace(config, halving=halving))):
        run = FusedRun(
            config=run_config,
            trials=trials,
            examples=train,
            validation=held_out,
            collator=AnswerOnlyCollator(tokenizer.pad_token_id or 0),
            device=device,
            dtype=dtype,
            checkpoint=out / name / CHECKPOINT_FILE,
        )
        started = time.perf_counter()
        base, outcomes = train_fused(base, run, out / name)
        wall = time.perf_counter() - started
        adapter_steps = sum(outcome.steps for outcome in outcomes)
        ranking = best(outcomes, [trial.label for trial in trials])
        results[name] = (wall, ranking)
        print(
            f"{name:6}: {wall:7.1f} s, {adapter_steps} adapter-steps, {len(ranking)} trained to the end; "
            f"best {ranking[0][1]} (validation loss {ranking[0][0]:.4f})"
        )
    (full_wall, full_rank), (halved_wall, halved_rank) = results["full"], results["halved"]
    pick = halved_rank[0][1]
    position = [label for _, label in full_rank].index(pick) + 1
    print(
        f"halving is {full_wall / halved_wall:.2f}x faster; its pick {pick} ranks {position} of "
        f"{len(full_rank)} in the full run (full run's best: {full_rank[0][1]})"
    )


if __name__ == "__main__":
    main()
