"""Greedy generation throughput of the evaluation path, by batch size and precision.

    python bench/generation_speed.py --rows 32 --batch-sizes 8 16 32
    python bench/generation_speed.py --random-init --model-source DIR      # e.g. on a GPU machine

Answers the bundled suite's eval rows with ``evalgate.modeling.generation.generate_answers`` (the code the
evaluation runs use) and prints new tokens per second for each batch size and precision. With
``--random-init`` the weights are random, so answers run to ``--max-new-tokens``: a throughput
figure, not a quality one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import machine, random_init_copy  # bench/ is on sys.path when run as a script

from evalgate.core.paths import BUNDLED_SUITE_DIR
from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.generation import generate_answers
from evalgate.modeling.loading import load_model, pick_device, resolve_model
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL

PRECISIONS = {"bf16": torch.bfloat16, "fp32": torch.float32}


def suite_rows(count: int) -> list[dict[str, object]]:
    """The first ``count`` eval rows of the bundled suite, cohorts interleaved."""
    files = ("target_eval.jsonl", "ood_eval.jsonl", "ood_grounded_eval.jsonl", "safety_eval.jsonl")
    cohorts = [
        [json.loads(line) for line in (BUNDLED_SUITE_DIR / name).read_text().splitlines()] for name in files
    ]
    mixed = [row for group in zip(*cohorts, strict=False) for row in group]
    return mixed[:count]


def main() -> None:
    """Print one line per (precision, batch size)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=sorted(PRECISIONS))
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--model-source", default=None)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="evalgate-bench-"))
    model_ref = args.model_source or resolve_model(EMBEDDED_DEFAULT_MODEL, home)
    if args.random_init:
        model_ref = random_init_copy(model_ref, home / "random-init")
    device = pick_device("auto")
    rows = suite_rows(args.rows)
    print(
        f"machine: {machine()}; device {device}; {len(rows)} rows, at most {args.max_new_tokens} new tokens"
    )
    for precision in args.precisions:
        model, tokenizer = load_model(model_ref, home, dtype=PRECISIONS[precision], device=device)
        tokenizer.padding_side = "left"
        for batch_size in args.batch_sizes:
            decoding = DecodingSettings(
                max_new_tokens=args.max_new_tokens, batch_size=batch_size, device=device
            )
            generate_answers(model, tokenizer, rows[:batch_size], decoding)  # warm-up
            started = time.perf_counter()
            answers = generate_answers(model, tokenizer, rows, decoding)
            seconds = time.perf_counter() - started
            tokens = sum(answer.new_tokens for answer in answers)
            rate = tokens / seconds
            label = f"{precision:<5} batch {batch_size:>3}"
            print(f"{label}: {tokens:>6} new tokens in {seconds:6.1f} s = {rate:8.1f} tok/s")


if __name__ == "__main__":
    main()
