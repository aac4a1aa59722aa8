"""Answers of several LoRA adapters (and the base model) in one batched pass.

Each prompt batch is repeated once per model, adapter-major: rows ``k*B .. (k+1)*B - 1`` are model
``k``'s copy. peft's own LoRA is switched off (``disable_adapter``) and a forward hook on every LoRA
layer adds, for model ``k`` with input rows ``x_k``,

    delta_k = (x_k A_k^T) (s_k B_k)^T          s_k = lora_alpha_k / r_k,  no delta for the base

with two matmuls on the contiguous run of model ``k``'s rows (``RowRouting``). The prompt pass runs
the layers below the lowest adapted one once for all the copies (``shared_prefill``). The decoder
(``evalgate.modeling.greedy``) drops a row as soon as it finishes; the rows left stay adapter-major, so the
runs only shrink. peft's own ``adapter_names=`` batches select and scatter the rows of each adapter in
every layer at every step instead. Every copy is padded exactly as the batch alone, so each model sees
the same inputs as in ``generate_per_adapter``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from evalgate.modeling.bf16_products import bf16_products
from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.generation import (
    Answer,
    BatchDone,
    end_of_turn_ids,
    generate_batch,
    generate_per_adapter,
    prompt_batches,
)
from evalgate.modeling.greedy import Prefill, after_prefix, prefix_cache, shared_prefix_columns
from evalgate.modeling.shared_layers import shared_below, tile_shared_cache


class CannotStack(ValueError):
    """The adapters differ in rank or in the layers they adapt (or are not LoRA): use the loop."""


def _lora_layers(model: Any) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def adapted_modules(model: Any) -> list[nn.Module]:
    """The model's LoRA layers (empty for a model without adapters)."""
    return list(_lora_layers(model).values())


LoraWeights = tuple[torch.Tensor, torch.Tensor] | None
"""``(A, s * B)`` of one model in one layer; None for the base model (no delta)."""


def _model_weights(layer: Any, adapters: Sequence[str | None]) -> list[LoraWeights]:
    """Each model's ``(A [r, in], s * B [out, r])`` in ``layer`` (None for the base model)."""
    names = [adapter for adapter in adapters if adapter is not None]
    missing = [name for name in names if name not in layer.lora_A]
    if missing:
        raise CannotStack(f"adapters {missing} do not adapt every layer the others do")
    ranks = {layer.lora_A[name].weight.shape[0] for name in names}
    if len(ranks) != 1:
        raise CannotStack(f"adapters of different ranks {sorted(ranks)}")
    return [
        None
        if adapter is None
        else (
            layer.lora_A[adapter].weight.detach(),
            (layer.lora_B[adapter].weight * layer.scaling[adapter]).detach(),
        )
        for adapter in adapters
    ]


class RowRouting:
    """Which model each row of the running batch belongs to. Rows are adapter-major and a finished
    row leaves without reordering the others, so each model's rows stay one contiguous run."""

    def __init__(self, models: int):
        self.models = models
        self.row_models: list[int] | None = None

    def start(self, rows_per_model: int) -> None:
        """A new batch: ``rows_per_model`` rows of model 0, then as many of model 1, and so on."""
        self.row_models = [k for k in range(self.models) for _ in range(rows_per_model)]

    def keep(self, slots: list[int]) -> None:
        """Only the rows at ``slots`` (in order) go on."""
        assert self.row_models is not None, "keep() before start()"
        self.row_models = [self.row_models[slot] for slot in slots]

    def runs(self, rows: int) -> list[tuple[int, int, int]]:
        """``(model, first row, end row)`` of each model's run; equal runs when no batch was started."""
        if self.row_models is None:
            size = rows // self.models
            return [(k, k * size, (k + 1) * size) for k in range(self.models)]
        runs: list[tuple[int, int, int]] = []
        for row, model in enumerate(self.row_models):
            if runs and runs[-1][0] == model:
                runs[-1] = (model, runs[-1][1], row + 1)
            else:
                runs.append((model, row, row + 1))
        return runs


def _add_routed_delta(weights: list[LoraWeights], routing: RowRouting) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        """Adds each adapter's delta to its rows of the base layer's fresh output, in place."""
        x = args[0]
        for model, first, end in routing.runs(x.shape[0]):
            pair = weights[model]
            if pair is not None:
                lora_a, lora_b = pair
                delta = (x[first:end].to(lora_a.dtype) @ lora_a.T) @ lora_b.T
                output[first:end] += delta.to(output.dtype)
        return output

    return hook


@contextmanager
def stacked_adapters(model: Any, adapters: Sequence[str | None]) -> Iterator[RowRouting]:
    """Within the block, a forward pass over ``len(adapters)`` adapter-major copies of a batch applies
    each adapter (None: none) to its copy; the routing yielded follows rows that leave the batch.
    Raises ``CannotStack`` before changing anything."""
    layers = _lora_layers(model)
    if not layers:
        raise CannotStack("the model has no LoRA layers")
    weights = {name: _model_weights(layer, adapters) for name, layer in layers.items()}
    routing = RowRouting(len(adapters))
    handles = [
        layers[name].register_forward_hook(_add_routed_delta(pair, routing)) for name, pair in weights.items()
    ]
    try:
        with model.disable_adapter():
            yield routing
    finally:
        for handle in handles:
            handle.remove()


def shared_prefill(adapted: Sequence[nn.Module], copies: int, routing: RowRouting) -> Prefill:
    """A prompt pass over ``copies`` adapter-major copies of a batch that runs the layers below the
    lowest ``adapted`` one on a single copy (``evalgate.modeling.shared_layers``), then repeats their
    cache rows for decoding. A prefix that every row shares (``shared_prefix_columns``) runs first
    as one row per model (``routing`` told so), and the batch goes on from copies of its cache."""

    def prefill(model: Any, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> Any:
        rows = input_ids.shape[0] // copies
        length = shared_prefix_columns(input_ids, mask)
        with shared_below(model, adapted, copies) as shared:
            given = slice(0, rows) if shared else slice(None)
            ids, given_mask, given_positions = input_ids[given], mask[given], positions[given]
            cache = None
            if length:
                routing.start(1)  # the prefix runs as row 0 of each copy given
                cache = prefix_cache(
                    model, ids, given_mask, given_positions, slice(0, None, rows), length, rows
                )
                routing.start(rows)
            output = after_prefix(model, ids, given_mask, given_positions, length, cache)
        if shared:
            tile_shared_cache(output.cache, shared, copies)
        return output

    return prefill


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
        with stacked_adapters(model, adapters) as routing:  # raises CannotStack before any change
            return _generate_stacked(model, tokenizer, rows, adapters, decoding, routing, on_batch)
    except CannotStack:
        return generate_per_adapter(model, tokenizer, rows, adapters, decoding, on_batch)


def _generate_stacked(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    adapters: Sequence[str | None],
    decoding: DecodingSettings,
    routing: RowRouting,
    on_batch: BatchDone | None,
) -> dict[str | None, list[Answer]]:
    encoded, budgets, batches = prompt_batches(tokenizer, rows, decoding)
    stops = end_of_turn_ids(tokenizer)
    prefill = shared_prefill(adapted_modules(model), len(adapters), routing)
    answers: dict[str | None, dict[int, Answer]] = {adapter: {} for adapter in adapters}
    with bf16_products(model, decoding.products):
        for batch in batches:
            prompts = [encoded[i] for _ in adapters for i in batch]
            routing.start(len(batch))
            texts = generate_batch(
                model,
                tokenizer,
                prompts,
                [budgets[i] for _ in adapters for i in batch],
                stops,
                routing.keep,
                prefill,
            )
            for position, adapter in enumerate(adapters):
                chunk = texts[position * len(batch) : (position + 1) * len(batch)]
                answers[adapter].update(zip(batch, chunk, strict=True))
            if on_batch is not None:
                on_batch(len(batch) * len(adapters))
    return {adapter: [found[i] for i in range(len(rows))] for adapter, found in answers.items()}
