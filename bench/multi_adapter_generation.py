"""Answers of the base model and K candidates to P prompts: mixed-adapter batches against the loop.

    python bench/multi_adapter_generation.py --adapters 4 --rows 64
    python bench/multi_adapter_generation.py --adapters 8 --rows 256 --random-init --model-source DIR

Side by side in one process, on the same model and prompts: ``generate_per_adapter`` (one pass per
model, ``set_adapter`` in between: the obvious way) and ``generate_mixed_adapters`` (each prompt batch
answered by every model in one pass), the latter twice: with evalgate's decoder, which drops a row
from the running batch when it finishes (``evalgate.modeling.greedy``), and with transformers' ``generate``,
which keeps every row until the batch's last one stops. Prints rows/s, new tokens/s, the ratios, and
how many answers agree with the loop's. Rows get the main job's per-cohort answer budgets
(``examples/ci.yaml``; ``--no-cohort-budgets``: ``--max-new-tokens`` for all). The adapters are
LoRA r=16 on q/k/v/o with seeded random weights (so every model answers differently), or the
folders given with ``--adapter-dirs``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from common import machine, random_init_copy
from generation_speed import suite_rows  # bench/ is on sys.path when run as a script
from peft import LoraConfig, PeftModel, get_peft_model

import evalgate.modeling.generation
from evalgate.ci.config import CiConfig
from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.generation import AdapterGenerate, generate_per_adapter
from evalgate.modeling.loading import load_model, pick_device, pick_dtype, resolve_model
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL
from evalgate.modeling.stacked_generation import generate_mixed_adapters


def with_adapters(model: Any, count: int, folders: list[Path]) -> tuple[Any, list[str | None]]:
    """``model`` with ``count`` seeded random adapters, or the adapters in ``folders``; their names
    after None (the base model)."""
    names = [f"candidate_{i}" for i in range(len(folders) or count)]
    if folders:
        peft_model = PeftModel.from_pretrained(model, str(folders[0]), adapter_name=names[0])
        for name, folder in zip(names[1:], folders[1:], strict=True):
            peft_model.load_adapter(str(folder), adapter_name=name)
    else:
        torch.manual_seed(0)
        config = LoraConfig(
            r=16,
            lora_alpha=32,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False,
        )
        peft_model = get_peft_model(model, config, adapter_name=names[0])
        for name in names[1:]:
            peft_model.add_adapter(name, config)
        with torch.no_grad():  # peft's random init is large; scale it to a fine-tune-sized update
            for parameter_name, parameter in peft_model.named_parameters():
                if "lora_B" in parameter_name:
                    parameter.mul_(0.05)
    peft_model.eval()
    return peft_model, [None, *names]


def transformers_decode(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    budgets: Sequence[int],
    stops: Sequence[int],
    on_rows_kept: Any = None,
    prefill: Any = None,
) -> list[list[int]]:
    """``evalgate.modeling.greedy.greedy_decode``'s contract through ``model.generate``: every row stays in
    the batch until the last one stops (a finished row is fed pad tokens), and ``generate`` runs its own
    prompt pass over every row (``prefill``, evalgate's shared-prefix pass, is not used)."""
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max(budgets),
            do_sample=False,
            eos_token_id=list(stops),
            pad_token_id=stops[0],
        )
    new = output[:, input_ids.shape[1] :].tolist()
    return [row[:budget] for row, budget in zip(new, budgets, strict=True)]


@contextlib.contextmanager
def decoder(decode: Any) -> Iterator[None]:
    """Within the block, evaluation generation decodes with ``decode``."""
    previous = evalgate.modeling.generation.greedy_decode
    evalgate.modeling.generation.greedy_decode = decode
    try:
        yield
    finally:
        evalgate.modeling.generation.greedy_decode = previous


def timed(
    generator: AdapterGenerate,
    model: Any,
    tokenizer: Any,
    rows: list[Any],
    adapters: list[str | None],
    decoding: DecodingSettings,
) -> tuple[float, dict[str | None, Any]]:
    started = time.perf_counter()
    answers = generator(model, tokenizer, rows, adapters, decoding)
    return time.perf_counter() - started, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=4, help="K candidates (the base model is added)")
    parser.add_argument("--adapter-dirs", type=Path, nargs="*", default=[])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--no-cohort-budgets", action="store_true")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--model-source", default=None)
    args = parser.parse_args()

    home = Path(os.environ.get("EVALGATE_HOME", "~/.evalgate")).expanduser()  # no settings: runs without a DB
    ref = EMBEDDED_DEFAULT_MODEL
    if args.random_init:
        source = args.model_source or resolve_model(EMBEDDED_DEFAULT_MODEL, home)
        ref = random_init_copy(source, Path(home) / "bench-random-init")
    device = pick_device("auto")
    dtype = pick_dtype(args.precision, device)
    model, tokenizer = load_model(ref, home, dtype=dtype, device=device)
    tokenizer.padding_side = "left"
    model, adapters = with_adapters(model, args.adapters, args.adapter_dirs)
    rows = suite_rows(args.rows)
    budgets = {} if args.no_cohort_budgets else main_job_cohort_budgets()
    decoding = DecodingSettings(
        max_new_tokens=args.max_new_tokens, cohort_max_new_tokens=budgets, batch_size=args.batch_size
    )
    print(f"machine: {machine()}; device {device}, dtype {dtype}")
    print(
        f"{len(adapters)} models (base + {len(adapters) - 1} adapters) x {len(rows)} prompts, "
        f"batch {args.batch_size}, at most {args.max_new_tokens} new tokens, per cohort {budgets}"
    )

    timed(generate_per_adapter, model, tokenizer, rows[: args.batch_size], adapters[:2], decoding)  # warm-up
    results = {}
    for label, generator, decode in (
        ("loop (set_adapter)", generate_per_adapter, evalgate.modeling.generation.greedy_decode),
        ("mixed batches", generate_mixed_adapters, evalgate.modeling.generation.greedy_decode),
        ("mixed, generate()", generate_mixed_adapters, transformers_decode),
    ):
        with decoder(decode):
            wall, answers = timed(generator, model, tokenizer, rows, adapters, decoding)
        tokens = sum(answer.new_tokens for per_model in answers.values() for answer in per_model)
        results[label] = (wall, answers)
        print(
            f"{label:<20} {wall:8.1f} s  {len(rows) * len(adapters) / wall:7.1f} rows/s  "
            f"{tokens / wall:8.1f} new tok/s"
        )
    loop_wall, loop_answers = results["loop (set_adapter)"]
    for label in ("mixed batches", "mixed, generate()"):
        wall, answers = results[label]
        pairs = [
            (a, b) for model in loop_answers for a, b in zip(loop_answers[model], answers[model], strict=True)
        ]
        same = sum(a.text == b.text for a, b in pairs)
        print(
            f"{label} / loop speed-up: {loop_wall / wall:.2f}x; answers as the loop's: {same} of {len(pairs)}"
        )
    print(f"dropping finished rows: {results['mixed, generate()'][0] / results['mixed batches'][0]:.2f}x")


def main_job_cohort_budgets() -> dict[str, int]:
    """The per-cohort answer budgets of the main job (examples/ci.yaml)."""
    config = CiConfig.from_yaml(Path(__file__).resolve().parents[1] / "examples" / "ci.yaml")
    return dict(config.evaluation.cohort_max_new_tokens)


if __name__ == "__main__":
    main()
