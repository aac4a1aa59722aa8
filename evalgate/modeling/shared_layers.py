"""The layers below the lowest adapted one, computed once for every model of a stacked batch.

Stacked passes (the fused trainer, ``evalgate.modeling.stacked_generation``, ``ood_kl_all``) give each
of K models (the base model and the adapters) its own copy of a batch of B rows, adapter-major. Below
the lowest decoder layer that holds a LoRA update the K copies carry the same numbers, so a pass can
run those layers on the B rows once and repeat the hidden states K times on entering the lowest
adapted layer (``BatchExpander``). With LoRA on the top L of N layers a pass then computes

    (N - L) layers on B rows + L layers on K*B rows      instead of N layers on K*B rows,
    cost ratio = (N - L + K*L) / (K*N)                   (1/2 for N=30, L=10, K=4)

A KV cache filled by such a pass holds B rows in the shared layers; ``tile_shared_cache`` repeats them
K times, so that decoding (where the copies' tokens differ) runs every layer on K*B rows. Both
helpers are our own: neither transformers nor peft shares layers between adapters of one batch.

Rows also share tokens: every prompt rendered with the chat template starts with the same system
turn. ``common_prefix_length`` finds such a prefix, a pass runs it once per model, and
``prefix_cache_for`` hands its KV cache to every row of a batch, which then runs only its own tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache


class BatchExpander:
    """Forward pre-hooks that repeat the batch K times from the first hooked layer upwards.

    The first hooked layer repeats its hidden states; every hooked layer repeats the other per-row
    tensors it is given (attention mask, position ids and embeddings) whose first dimension is the
    original batch size. Tensors with a first dimension of 1 broadcast and are left alone.
    """

    def __init__(self, layers: Sequence[nn.Module], count: int) -> None:
        self.count = count
        self.batch = 0
        self.handles = [
            layer.register_forward_pre_hook(self._hook(index == 0), with_kwargs=True)
            for index, layer in enumerate(layers)
        ]

    def _hook(self, first: bool) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if first:
                hidden = args[0] if args else kwargs["hidden_states"]
                self.batch = hidden.shape[0]
                hidden = hidden.repeat(self.count, *([1] * (hidden.dim() - 1)))
                if args:
                    args = (hidden, *args[1:])
                else:
                    kwargs["hidden_states"] = hidden
            kwargs = {name: self._repeat(value) for name, value in kwargs.items()}
            return args, kwargs

        return hook

    def _repeat(self, value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(self._repeat(item) for item in value)
        if (
            isinstance(value, torch.Tensor)
            and value.dim() > 0
            and self.batch > 1
            and value.shape[0] == self.batch
        ):
            return value.repeat(self.count, *([1] * (value.dim() - 1)))
        return value

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def decoder_layers(model: Any) -> nn.ModuleList | None:
    """The model's transformer blocks (``model.get_decoder().layers``; through a PeftModel to the
    model it wraps), or None when it has none."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        layers = inner.get_decoder().layers
    except AttributeError:
        return None
    return layers if isinstance(layers, nn.ModuleList) else None


def lowest_layer_holding(layers: nn.ModuleList, modules: Sequence[nn.Module]) -> int | None:
    """Index of the lowest decoder layer that contains one of ``modules`` (None: none does)."""
    wanted = {id(module) for module in modules}
    for index, layer in enumerate(layers):
        if any(id(module) in wanted for module in layer.modules()):
            return index
    return None


@contextmanager
def shared_below(model: Any, adapted: Sequence[nn.Module], copies: int) -> Iterator[int]:
    """Within the block, a forward pass over B rows returns ``copies`` adapter-major copies of them,
    the layers below the lowest one holding an ``adapted`` module run once. Yields the number of
    shared layers; 0 (nothing installed: pass the K*B rows yourself) when the lowest adapted layer is
    the first one or the model has no decoder layer list."""
    layers = decoder_layers(model)
    first = None if layers is None else lowest_layer_holding(layers, adapted)
    if layers is None or not first:
        yield 0
        return
    expander = BatchExpander(list(layers)[first:], copies)
    try:
        yield first
    finally:
        expander.remove()


def tile_shared_cache(cache: Any, shared_layers: int, copies: int) -> None:
    """Repeat the B rows of the first ``shared_layers`` layers of a KV cache ``copies`` times,
    adapter-major, so that every layer holds the K*B rows of the layers above."""
    rows = None
    for layer in cache.layers[:shared_layers]:
        rows = layer.keys.shape[0] if rows is None else rows
        layer.batch_select_indices(torch.arange(rows, device=layer.keys.device).repeat(copies))


def common_prefix_length(sequences: Sequence[Sequence[int]], keep: int = 1) -> int:
    """Number of leading token ids every sequence shares, leaving at least ``keep`` ids of the
    shortest sequence after it (0 for fewer than two sequences: nothing to share)."""
    if len(sequences) < 2:
        return 0
    first, limit = sequences[0], min(len(ids) for ids in sequences) - keep
    length = 0
    while length < limit and all(ids[length] == first[length] for ids in sequences):
        length += 1
    return length


def prefix_cache_for(prefix: Any, rows: int) -> DynamicCache:
    """A fresh KV cache for ``rows`` rows per model, from the cache of a prompt prefix that every row
    shares. A layer of ``prefix`` holding one row (a shared layer, computed once) gives that row to
    each of the ``rows`` rows; a layer holding K rows (one per model copy) gives copy k's row to the
    k-th run of ``rows`` rows (adapter-major)."""
    cache = DynamicCache()
    for index, layer in enumerate(prefix.layers):
        copies = layer.keys.shape[0]
        select = torch.arange(copies, device=layer.keys.device).repeat_interleave(rows)
        cache.update(layer.keys[select], layer.values[select], index)
    return cache
