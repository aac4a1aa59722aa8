"""Linear products in bf16 for an fp32 model: close to fp32 within bf16's rounding, only where asked,
only in the decoder's projections, undone after the block, and recorded in the decoding settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

import evalgate.modeling.bf16_products as bf16_module
from evalgate.modeling.bf16_products import BFLOAT16, FLOAT32, bf16_products, products_for
from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.generation import generate_answers
from tests.support.adapters import load_perturbed

UNIT_ROUNDOFF = 2.0**-8


def _patched(model: nn.Module) -> set[str]:
    return {name for name, module in model.named_modules() if "forward" in vars(module)}


def test_the_projections_multiply_in_bf16_and_everything_else_stays_as_it_was(tiny_lm_dir: Path) -> None:
    model, _ = load_perturbed(tiny_lm_dir)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    projection = model.get_submodule("base_model.model.model.layers.0.mlp.down_proj")
    hidden = torch.randn(8, projection.in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        exact = projection(hidden)
        with bf16_products(model):
            reduced = projection(hidden)
            patched = _patched(model)
        after = projection(hidden)

    linears = {name for name, module in model.named_modules() if type(module) is nn.Linear}
    assert patched and patched < linears
    assert not any(".lora_" in name or name.endswith("lm_head") for name in patched)
    assert any(name.endswith("q_proj.base_layer") for name in patched), "LoRA's base layer is a projection"
    # Each product rounds its two factors to bf16: |error| <= 2u * sum |x_i| |w_i| (plus fp32 sums).
    bound = 2.5 * UNIT_ROUNDOFF * (hidden.abs() @ projection.weight.abs().T)
    assert not torch.equal(reduced, exact) and bool(((reduced - exact).abs() <= bound).all())
    assert reduced.dtype == torch.float32 and torch.equal(after, exact) and not _patched(model)


def test_float32_products_and_nested_blocks_change_nothing_more(tiny_lm_dir: Path) -> None:
    model, _ = load_perturbed(tiny_lm_dir)
    with bf16_products(model, FLOAT32):
        assert not _patched(model)
    with bf16_products(model):
        outer = _patched(model)
        with bf16_products(model):
            assert _patched(model) == outer
        assert _patched(model) == outer, "the inner block must not undo the outer one"
    assert not _patched(model)


def test_a_layer_converts_its_weight_again_after_it_changed() -> None:
    layer = nn.Linear(16, 8)
    hidden = torch.randn(4, 16)
    with torch.no_grad(), bf16_products(layer):
        before = layer(hidden)
        layer.weight.neg_()
        layer.bias.neg_()
        after = layer(hidden)
    assert torch.allclose(after, -before, rtol=0, atol=1e-6)


def test_auto_on_a_cpu_takes_bf16_products_only_where_they_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bf16_module, "bf16_products_pay", lambda: True)
    assert products_for("auto", "cpu", torch.float32) == BFLOAT16
    assert products_for("fp32", "cpu", torch.float32) == FLOAT32
    assert products_for("auto", "cuda:0", torch.float32) == FLOAT32
    assert products_for("auto", "cpu", torch.bfloat16) == FLOAT32
    monkeypatch.setattr(bf16_module, "bf16_products_pay", lambda: False)
    assert products_for("auto", "cpu", torch.float32) == FLOAT32


def test_the_decoding_settings_name_bf16_products_and_keep_earlier_keys() -> None:
    plain = DecodingSettings(max_new_tokens=8)
    reduced = DecodingSettings(max_new_tokens=8, products=BFLOAT16)
    assert "products" not in plain.to_dict(), "runs and caches stored before keep matching"
    assert reduced.to_dict()["products"] == BFLOAT16
    assert reduced.canonical_json() != plain.canonical_json()


def test_generation_with_bf16_products_goes_through_them(
    tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    calls: list[int] = []
    forward = bf16_module._bf16_forward

    def counted(layer: nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
        calls.append(hidden.shape[0])
        return forward(layer, hidden)

    monkeypatch.setattr(bf16_module, "_bf16_forward", counted)
    rows = [{"id": str(i), "question": f"What is {i} plus {i}?"} for i in range(3)]

    plain = generate_answers(model, tokenizer, rows, DecodingSettings(max_new_tokens=6))
    assert not calls
    reduced = generate_answers(model, tokenizer, rows, DecodingSettings(max_new_tokens=6, products=BFLOAT16))

    assert calls and len(reduced) == len(plain) == 3 and not _patched(model)
    assert all(answer.new_tokens >= 1 for answer in reduced)
