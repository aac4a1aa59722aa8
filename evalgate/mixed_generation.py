"""Answers of several LoRA adapters (and the base model) in one batched pass.

Each prompt batch is repeated once per model, adapter-major: rows ``k*B .. (k+1)*B - 1`` are model
``k``'s copy. peft's own LoRA is switched off (``disable_adapter``) and a forward hook on every LoRA
layer adds, for model ``k`` with input rows ``x_k``,

    delta_k = (x_k A_k^T) (s_k B_k)^T          s_k = lora_alpha_k / r_k,  A_k, B_k of zeros for the base

with two batched matmuls over the stacked ``[K, r, in]`` and ``[K, out, r]`` weights, so the cost of
routing does not grow with the number of models (peft's ``adapter_names=`` batches select and scatter
the rows of each adapter in every layer at every step, which dominates on a GPU). Every copy is padded
exactly as the batch alone, so each model sees the same inputs as in ``generate_per_adapter``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from evalgate.decoding import DecodingSettings
from evalgate.generate import (
    Answer,
    BatchDone,
    end_of_turn_ids,
    generate_batch,
    generate_per_adapter,
    prompt_batches,
)


class CannotStack(ValueError):
    """The adapters differ in rank or in the layers they adapt (or are not LoRA): use the loop."""


def _lora_layers(model: Any) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def _stacked_weights(layer: Any, adapters: Sequence[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[K, r, in]`` and ``[K, out, r]`` (scaling folded in) for ``adapters`` in ``layer``; zeros
    stand for the base model (None)."""
    names = [adapter for adapter in adapters if adapter is not None]
    missing = [name for name in names if name not in layer.lora_A]
    if missing:
        raise CannotStack(f"adapters {missing} do not adapt every layer the others do")
    ranks = {layer.lora_A[name].weight.shape[0] for name in names}
    if len(ranks) != 1:
        raise CannotStack(f"adapters of different ranks {sorted(ranks)}")
    example_a, example_b = layer.lora_A[names[0]].weight, layer.lora_B[names[0]].weight
    lora_a, lora_b = [], []
    for adapter in adapters:
        if adapter is None:
            lora_a.append(torch.zeros_like(example_a))
            lora_b.append(torch.zeros_like(example_b))
        else:
            lora_a.append(layer.lora_A[adapter].weight)
            lora_b.append(layer.lora_B[adapter].weight * layer.scaling[adapter])
    return torch.stack(lora_a).detach(), torch.stack(lora_b).detach()


def _add_stacked_delta(lora_a: torch.Tensor, lora_b: torch.Tensor) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        rows = x.reshape(lora_a.shape[0], -1, x.shape[-1]).to(lora_a.dtype)
        delta = torch.bmm(torch.bmm(rows, lora_a.transpose(1, 2)), lora_b.transpose(1, 2))
        return output + delta.reshape(output.shape).to(output.dtype)

    return hook


@contextmanager
def stacked_adapters(model: Any, adapters: Sequence[str | None]) -> Iterator[None]:
    """Within the block, a forward pass over ``len(adapters)`` adapter-major copies of a batch applies
    each adapter (None: none) to its copy. Raises ``CannotStack`` before changing anything."""
    layers = _lora_layers(model)
    if not layers:
        raise CannotStack("the model has no LoRA layers")
    weights = {name: _stacked_weights(layer, adapters) for name, layer in layers.items()}
    handles = [
        layers[name].register_forward_hook(_add_stacked_delta(lora_a, lora_b))
        for name, (lora_a, lora_b) in weights.items()
    ]
    try:
        with model.disable_adapter():
            yield
    finally:
        for handle in handles:
            handle.remove()


def generate_mixed_adapters(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    adapters: Sequence[str | None],
    decoding: DecodingSettings,
    on_batch: BatchDone | None = None,
) -> dict[str | None, list[Answer]]:
    """Like ``generate_per_adapter``, with each prompt batch answered by every model in one
    ``generate`` call; falls back to the loop for a single model or adapters that cannot be stacked."""
    if len(adapters) < 2 or not hasattr(model, "disable_adapter"):
        return generate_per_adapter(model, tokenizer, rows, adapters, decoding, on_batch)
    try:
        with stacked_adapters(model, adapters):  # raises CannotStack on entering, before any change
            return _generate_stacked(model, tokenizer, rows, adapters, decoding, on_batch)
    except CannotStack:
        return generate_per_adapter(model, tokenizer, rows, adapters, decoding, on_batch)


def _generate_stacked(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    adapters: Sequence[str | None],
    decoding: DecodingSettings,
    on_batch: BatchDone | None,
) -> dict[str | None, list[Answer]]:
    encoded, budgets, batches = prompt_batches(tokenizer, rows, decoding)
    stops = end_of_turn_ids(tokenizer)
    answers: dict[str | None, dict[int, Answer]] = {adapter: {} for adapter in adapters}
    for batch in batches:
        prompts = [encoded[i] for _ in adapters for i in batch]
        texts = generate_batch(
            model, tokenizer, prompts, [budgets[i] for _ in adapters for i in batch], stops
        )
        for position, adapter in enumerate(adapters):
            chunk = texts[position * len(batch) : (position + 1) * len(batch)]
            answers[adapter].update(zip(batch, chunk, strict=True))
        if on_batch is not None:
            on_batch(len(batch) * len(adapters))
    return {adapter: [found[i] for i in range(len(rows))] for adapter, found in answers.items()}
