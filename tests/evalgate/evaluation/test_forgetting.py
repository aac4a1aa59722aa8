"""ood_kl of stacked adapters that adapt only the top layers, whose lower layers run once."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalgate.evaluation.forgetting import ood_kl, ood_kl_all
from tests.support.adapters import ROWS, top_layer_adapters


def test_ood_kl_with_shared_lower_layers_matches_each_adapter_alone(tiny_lm_dir: Path) -> None:
    model, tokenizer = top_layer_adapters(tiny_lm_dir)
    answers = ["Paris.", "3 apples", "Hello!", "{}", "Yes"]

    together = ood_kl_all(model, tokenizer, ROWS, answers, ["noisy", "louder"], batch_size=3)

    for name in ("noisy", "louder"):
        assert together[name] == pytest.approx(ood_kl(model, tokenizer, ROWS, answers, name), abs=1e-5)
        assert all(value > 1e-4 for value in together[name])
