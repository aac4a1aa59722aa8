"""ood_kl of stacked adapters that adapt only the top layers, whose lower layers run once."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalgate.evaluation.forgetting import ood_kl, ood_kl_all, teacher_forced_ids
from evalgate.modeling.shared_layers import common_prefix_length
from tests.support.adapters import ROWS, top_layer_adapters


def test_ood_kl_with_shared_lower_layers_matches_each_adapter_alone(tiny_lm_dir: Path) -> None:
    model, tokenizer = top_layer_adapters(tiny_lm_dir)
    answers = ["Paris.", "3 apples", "Hello!", "{}", "Yes"]

    together = ood_kl_all(model, tokenizer, ROWS, answers, ["noisy", "louder"], batch_size=3)

    for name in ("noisy", "louder"):
        assert together[name] == pytest.approx(ood_kl(model, tokenizer, ROWS, answers, name), abs=1e-5)
        assert all(value > 1e-4 for value in together[name])


def test_the_shared_prompt_prefix_runs_once_and_gives_the_same_values(tiny_lm_dir: Path) -> None:
    """Rows whose prompts share a long prefix: ood_kl_all runs it once and continues from its cache;
    each value is the same as the adapter's own pass over the whole sequence."""
    model, tokenizer = top_layer_adapters(tiny_lm_dir)
    lead = "Answer briefly and plainly, in one short sentence, the following general question: "
    rows = [{**row, "question": lead + row["question"]} for row in ROWS]
    answers = ["Paris.", "3 apples", "Hello!", "{}", "Yes"]
    sequences = [
        teacher_forced_ids(tokenizer, row, answer)[0] for row, answer in zip(rows, answers, strict=True)
    ]
    assert common_prefix_length(sequences) > len(tokenizer(lead)["input_ids"])

    together = ood_kl_all(model, tokenizer, rows, answers, ["noisy", "louder"], batch_size=2)

    for name in ("noisy", "louder"):
        assert together[name] == pytest.approx(ood_kl(model, tokenizer, rows, answers, name), abs=1e-5)
