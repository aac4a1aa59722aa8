"""Greedy decoding of an fp32 model with its linear layers' products taken in bf16.

On a CPU with bf16 dot-product instructions (``avx512_bf16``, AMX) a bf16 matrix product runs about
twice as fast as an fp32 one at the shapes of decoding: on a 2-core AMD EPYC, 64 rows through a
576 -> 1536 projection of SmolLM2-135M took 1.16 ms in fp32 and 0.44 ms in bf16 with both conversions.
A whole bf16 model is no faster there, because CPU attention, norms and element-wise steps are slower
in bf16 (attention 3.2 ms a layer against 1.1 ms at a 64-row decoding step), and ``torch.autocast``
on a CPU runs attention in bf16 too and leaves the KV cache in bf16. So within ``bf16_products(model)``
only the products change: every plain ``nn.Linear`` of the model computes

    y = linear(bf16(x), bf16(W), bf16(b)) -> fp32

(the inputs and weights rounded to bf16, relative error at most 2^-9 each; oneDNN accumulates the
products in fp32), and everything else stays fp32: attention, norms, activations, the KV cache, LoRA's
own low-rank factors (small products, where the conversions cost more than they save) and the output
layer (whose arg-max ``evalgate.modeling.screened_head`` already takes exactly). The bf16 copy of a
weight is made once and kept until the weight changes in place.

The fused trainer (``evalgate.sweep.training.fused``) takes its forward passes the same way for
``precision: auto`` where the products pay: the frozen projections multiply in bf16, and autograd
takes the gradients of their inputs through the same bf16 products (rounded to bf16, as mixed-precision
training on a GPU does); the LoRA factors, their gradients and the optimizer stay fp32.

Answers can differ from pure fp32 decoding where two tokens are nearly tied, as they can between batch
sizes; ``DecodingSettings.products`` records the choice, so answers decoded one way are never taken
from the cache for the other. ``products_for`` picks bf16 products for ``precision: auto`` on a CPU
where they measured faster (``bf16_products_pay``); explicit ``fp32`` keeps fp32 products.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from evalgate.modeling.screened_head import best_time

FLOAT32 = "float32"
BFLOAT16 = "bfloat16"
PRODUCTS_SPEEDUP_NEEDED = 1.3
"""bf16 products are used only when they measured at least this much faster than fp32 ones."""

_COPIES: weakref.WeakKeyDictionary[nn.Linear, tuple[int, torch.Tensor, torch.Tensor | None]] = (
    weakref.WeakKeyDictionary()
)
"""Each layer's weight version with its bf16 weight and bias."""


def products_for(precision: str, device: str, dtype: torch.dtype) -> str:
    """``bfloat16`` for an fp32 model on a CPU under ``precision: auto`` where bf16 products pay, else
    ``float32``."""
    if precision.lower() != "auto" or device.split(":", 1)[0] != "cpu" or dtype != torch.float32:
        return FLOAT32
    return BFLOAT16 if bf16_products_pay() else FLOAT32


@functools.cache
def bf16_products_pay(rows: int = 64, width: int = 576, inner: int = 1536) -> bool:
    """Whether a decoding-sized product (``rows x width`` by ``width x inner``, both conversions
    included) measured at least ``PRODUCTS_SPEEDUP_NEEDED`` times faster in bf16, once a process."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(rows, width, generator=generator)
    weight = torch.randn(inner, width, generator=generator)
    copy = weight.to(torch.bfloat16)
    with torch.inference_mode():
        plain = best_time(lambda: nn.functional.linear(hidden, weight))
        reduced = best_time(lambda: nn.functional.linear(hidden.to(torch.bfloat16), copy).float())
    return plain >= PRODUCTS_SPEEDUP_NEEDED * reduced


@contextlib.contextmanager
def bf16_products(model: Any, products: str = BFLOAT16) -> Iterator[None]:
    """Within the block, ``model``'s linear layers take their products in bf16 (module docstring);
    with ``products`` ``float32`` (or a model that is not fp32 on a CPU) nothing changes. Nested
    blocks patch each layer once."""
    layers = _patchable(model) if products == BFLOAT16 else []
    for layer in layers:
        layer.forward = functools.partial(_bf16_forward, layer)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _patchable(model: Any) -> list[nn.Linear]:
    """The fp32 CPU ``nn.Linear`` layers of ``model`` not yet patched, without the output layer and
    LoRA's factors."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [
        module
        for name, module in model.named_modules()
        if type(module) is nn.Linear
        and module is not head
        and ".lora_" not in name
        and "forward" not in vars(module)
        and module.weight.dtype == torch.float32
        and module.weight.device.type == "cpu"
    ]


def _bf16_forward(layer: nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    weight, bias = _bf16_copy(layer)
    return nn.functional.linear(hidden.to(torch.bfloat16), weight, bias).to(hidden.dtype)


def _bf16_copy(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layer's weight and bias in bf16, converted again after the weight changed in place (or
    for training, when generation made them: an inference tensor cannot be saved for backward)."""
    version, weight, bias = _COPIES.get(layer, (-1, None, None))
    made_for_inference = weight is not None and weight.is_inference() and torch.is_grad_enabled()
    if weight is None or version != layer.weight._version or made_for_inference:
        with torch.no_grad():
            weight = layer.weight.detach().to(torch.bfloat16)
            bias = None if layer.bias is None else layer.bias.detach().to(torch.bfloat16)
        _COPIES[layer] = (layer.weight._version, weight, bias)
    return weight, bias
