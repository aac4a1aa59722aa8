"""The whole sweep + evaluation of K rates: evalgate's path against the naive one, side by side.

    python bench/sweep_and_evaluate.py --steps 8 --rows 64               # K = the main job's 4 rates
    python bench/sweep_and_evaluate.py --random-init --model-source DIR  # e.g. on a GPU machine

Both run the main job's sweep config (``examples/sweep.yaml``) and evaluators (``examples/ci.yaml``)
on the bundled suite, in this process, one after the other:

- **naive**: K separate runs. Each is a fresh home and database, so each loads the base model again,
  trains one plain peft + transformers Trainer candidate, loads the base model again to evaluate,
  and generates the base model's answers again (one ``set_adapter`` pass per model).
- **evalgate**: one run. The fused trainer trains all K rates together over one base model; the
  evaluation loads it once, generates base and candidate answers in mixed-adapter batches, and the
  base answers are generated once.

``--rows`` keeps the first N eval rows of each cohort in proportion (the suite's 350 otherwise).
Prints the wall time of each phase, the machine and the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from common import machine, random_init_copy  # bench/ is on sys.path when run as a script

from evalgate.ci.config import CiConfig
from evalgate.core.paths import BUNDLED_SUITE_DIR, BUNDLED_SUITE_NAME, MAIN_JOB_CONFIG
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.evaluation.options import EvaluationOptions
from evalgate.evaluation.run import EvaluationHooks, evaluate_sweep
from evalgate.modeling.generation import generate_per_adapter
from evalgate.modeling.loading import EMBEDDED_DEFAULT_MODEL, resolve_model
from evalgate.modeling.stacked_generation import generate_mixed_adapters
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.run import run_sweep


def suite_files(folder: Path, eval_rows: int | None) -> list[str]:
    """The bundled suite's files; with ``eval_rows``, eval files cut to that many rows in all."""
    files = sorted(BUNDLED_SUITE_DIR.glob("*.jsonl"))
    if eval_rows is None:
        return [str(path) for path in files]
    evals = [path for path in files if path.name.endswith("_eval.jsonl")]
    counts = {path: len(path.read_text().splitlines()) for path in evals}
    total = sum(counts.values())
    kept = []
    for path in files:
        if path in counts:
            share = max(1, round(eval_rows * counts[path] / total))
            lines = path.read_text().splitlines()[:share]
            path = folder / path.name
            path.write_text("\n".join(lines) + "\n")
        kept.append(str(path))
    return kept


def fresh_home(root: Path, name: str, files: list[str]) -> tuple[Settings, str]:
    """A new home with a migrated database and the suite imported; returns settings and the label.

    Every home links to one cache of the embedded model's files, so that cache is built once (what
    a second run on the same machine would find): loading the model is timed, building it is not.
    """
    settings = Settings(home=root / name)
    settings.home.mkdir(parents=True)
    (root / "models").mkdir(exist_ok=True)
    (settings.home / "models").symlink_to(root / "models")
    upgrade(settings.resolved_database_url)
    return settings, DatasetStore.from_settings(settings).add(BUNDLED_SUITE_NAME, files).version.label


def naive(root: Path, files: list[str], sweep: SweepConfig, options: EvaluationOptions) -> dict[str, float]:
    """K independent runs, one rate each, sharing nothing."""
    phases = {"train": 0.0, "evaluate": 0.0}
    looped = EvaluationHooks(generator=generate_per_adapter)
    for rate in sweep.learning_rates:
        settings, label = fresh_home(root, f"naive-{rate:g}", files)
        config = dataclasses.replace(sweep, dataset=label, learning_rates=(rate,), trainer="peft")
        started = time.perf_counter()
        result = run_sweep(config, settings, show_progress=False)
        trained = time.perf_counter()
        if result.candidates[0]["status"] == "trained":
            evaluate_sweep(result.sweep_id, settings, options, hooks=looped)
        phases["train"] += trained - started
        phases["evaluate"] += time.perf_counter() - trained
    return phases


def evalgate_path(
    root: Path, files: list[str], sweep: SweepConfig, options: EvaluationOptions
) -> dict[str, float]:
    """One run: fused training of every rate, one evaluation with mixed-adapter batches."""
    settings, label = fresh_home(root, "evalgate", files)
    config = dataclasses.replace(sweep, dataset=label, trainer="fused")
    mixed = EvaluationHooks(generator=generate_mixed_adapters)
    started = time.perf_counter()
    result = run_sweep(config, settings, show_progress=False)
    trained = time.perf_counter()
    evaluate_sweep(result.sweep_id, settings, options, hooks=mixed)
    train, evaluate = trained - started, time.perf_counter() - trained
    return {"train": train, "evaluate": evaluate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=MAIN_JOB_CONFIG)
    parser.add_argument("--steps", type=int, default=None, help="override max_steps")
    parser.add_argument("--rows", type=int, default=None, help="eval rows in all (default: every row)")
    parser.add_argument("--rates", type=float, nargs="*", default=None)
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--model-source", default=None)
    args = parser.parse_args()

    job = CiConfig.from_yaml(args.config)
    assert job.sweep is not None
    sweep = job.sweep
    root = Path(tempfile.mkdtemp(prefix="evalgate-bench-"))
    if args.random_init:
        source = args.model_source or resolve_model(EMBEDDED_DEFAULT_MODEL, root)
        sweep = dataclasses.replace(sweep, base_model=random_init_copy(source, root / "random-init"))
    if args.steps:
        sweep = dataclasses.replace(sweep, max_steps=args.steps)
    if args.rates:
        sweep = dataclasses.replace(sweep, learning_rates=tuple(args.rates))
    resolve_model(sweep.base_model, root)  # build the embedded model's cache before timing anything
    options = job.evaluation
    files = suite_files(root, args.rows)
    print(f"machine: {machine()}")
    print(
        f"K={len(sweep.learning_rates)} rates {sweep.learning_rates}, {sweep.max_steps} steps x batch "
        f"{sweep.batch_size}; evaluators {options.evaluators}, eval rows {args.rows or 'all'}"
    )
    results = {
        "naive": naive(root, files, sweep, options),
        "evalgate": evalgate_path(root, files, sweep, options),
    }
    for name, phases in results.items():
        parts = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in phases.items())
        print(f"{name:<9} total {sum(phases.values()):7.1f} s ({parts})")
    naive_total, ours_total = (sum(phases.values()) for phases in results.values())
    print(f"evalgate is {naive_total / ours_total:.2f}x faster end to end than the naive path")


if __name__ == "__main__":
    main()
