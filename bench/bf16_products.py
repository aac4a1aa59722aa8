"""Stacked generation of an fp32 model with fp32 products against bf16 products, side by side.

    python bench/bf16_products.py --adapters 3 --rows 64 --repeats 2

The base model and K seeded random adapters (``multi_adapter_generation.with_adapters``) answer the
bundled suite's rows with the main job's per-cohort budgets through ``generate_mixed_adapters``, once
with ``DecodingSettings(products="float32")`` and once with ``"bfloat16"``
(``evalgate.modeling.bf16_products``), alternating ``--repeats`` times in one process. Prints each
wall time, the ratio of the medians, how many answers are the same both ways, and whether
``bf16_products_pay`` (what ``precision: auto`` goes by) holds on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from common import machine  # bench/ is on sys.path when run as a script
from generation_speed import suite_rows
from multi_adapter_generation import main_job_cohort_budgets, with_adapters

from evalgate.modeling.bf16_products import BFLOAT16, FLOAT32, bf16_products_pay
from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.loading import load_model
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL
from evalgate.modeling.stacked_generation import generate_mixed_adapters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=3, help="K candidates (the base model is added)")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    home = Path(os.environ.get("EVALGATE_HOME", "~/.evalgate")).expanduser()
    model, tokenizer = load_model(EMBEDDED_DEFAULT_MODEL, home, dtype=torch.float32, device="cpu")
    tokenizer.padding_side = "left"
    model, adapters = with_adapters(model, args.adapters, [])
    rows = suite_rows(args.rows)
    budgets = main_job_cohort_budgets()
    print(f"machine: {machine()}; bf16_products_pay: {bf16_products_pay()}")
    print(f"{len(adapters)} models x {len(rows)} prompts, batch {args.batch_size}, per cohort {budgets}")

    def settings(products: str) -> DecodingSettings:
        return DecodingSettings(cohort_max_new_tokens=budgets, batch_size=args.batch_size, products=products)

    generate_mixed_adapters(model, tokenizer, rows[: args.batch_size], adapters[:2], settings(BFLOAT16))
    walls: dict[str, list[float]] = {FLOAT32: [], BFLOAT16: []}
    answers = {}
    for _ in range(args.repeats):
        for products in (FLOAT32, BFLOAT16):
            started = time.perf_counter()
            answers[products] = generate_mixed_adapters(model, tokenizer, rows, adapters, settings(products))
            walls[products].append(time.perf_counter() - started)
            print(f"{products:<9} products {walls[products][-1]:7.1f} s", flush=True)
    pairs = [
        (a.text, b.text)
        for model_name in adapters
        for a, b in zip(answers[FLOAT32][model_name], answers[BFLOAT16][model_name], strict=True)
    ]
    ratio = statistics.median(walls[FLOAT32]) / statistics.median(walls[BFLOAT16])
    same = sum(a == b for a, b in pairs)
    print(f"bf16 products / fp32 products speed-up: {ratio:.2f}x; answers the same: {same} of {len(pairs)}")


if __name__ == "__main__":
    main()
