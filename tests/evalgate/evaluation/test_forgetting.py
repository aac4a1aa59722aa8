"""ood_kl: stacked adapters (whose lower layers run once when only the top ones adapt) against
each adapter alone, rows batched by length, and the KL formula on logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evalgate.evaluation.forgetting import _kl_from_first, ood_kl, ood_kl_all, teacher_forced_ids
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


def test_values_come_back_in_row_order_though_rows_run_in_order_of_length(tiny_lm_dir: Path) -> None:
    """Batches are formed by sequence length: reversing the rows reverses the values, nothing else."""
    model, tokenizer = top_layer_adapters(tiny_lm_dir)
    answers = ["Paris, the capital, on the Seine.", "3", "Hello there, how are you today?", "{}", "Yes"]

    forward = ood_kl_all(model, tokenizer, ROWS, answers, ["noisy", "louder"], batch_size=2)
    backward = ood_kl_all(model, tokenizer, ROWS[::-1], answers[::-1], ["noisy", "louder"], batch_size=2)

    for name in ("noisy", "louder"):
        assert len(set(forward[name])) == len(ROWS)
        assert backward[name][::-1] == pytest.approx(forward[name], abs=1e-6)
        alone = ood_kl(model, tokenizer, ROWS[::-1], answers[::-1], name, batch_size=2)
        assert alone[::-1] == pytest.approx(forward[name], abs=1e-5)


def test_kl_from_logits_matches_the_definition() -> None:
    """sum_v P log P - sum_v P z + logsumexp(z) is KL(P || softmax(z)) for each candidate."""
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(3 * 2, 4, 50, generator=generator) * 4
    per_model = _kl_from_first(logits, rows=2)
    base = torch.log_softmax(logits[:2], dim=-1)
    for k, per_token in enumerate(per_model, start=1):
        candidate = torch.log_softmax(logits[2 * k : 2 * k + 2], dim=-1)
        expected = (base.exp() * (base - candidate)).sum(dim=-1)
        assert per_token.shape == (2, 4)
        torch.testing.assert_close(per_token, expected, atol=1e-5, rtol=1e-5)
    assert len(per_model) == 2
