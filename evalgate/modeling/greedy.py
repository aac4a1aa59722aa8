"""Greedy decoding with a KV cache that drops finished rows from the running batch.

``transformers``' ``generate`` keeps every row of a batch in the forward pass until the last row stops:
a finished row goes on being fed pad tokens. Answers in one batch have very uneven lengths (a short
fact, a refusal, a model that rambles to its budget), so most of those passes are wasted. This loop
removes a row as soon as it emits a stop token or reaches its own budget: its entries of the KV cache
(``DynamicCache.batch_select_indices``), its attention-mask row and its position go, and the next step
runs on the rows still going. A batch then costs about the sum of its answers' lengths rather than
its size times the longest. No library decoder drops rows mid-batch, hence this module.

Decoding is greedy: row i's next token is ``argmax_v logits_i[v]`` at its last position. Positions are
counted over each row's real tokens (``cumsum(attention_mask) - 1``), so a left-padded row sees the
positions it would see alone, as ``generate`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from evalgate.modeling.screened_head import screened_picker
from evalgate.modeling.shared_layers import prefix_cache_for

RowsKept = Callable[[list[int]], None]
"""Told the positions (in the running batch) of the rows kept after a step, before the next step."""

Prefill = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], Any]
"""The first forward pass, ``(model, input_ids, attention_mask, position_ids) -> output``: the output's
``logits`` (at least the last position) and ``cache`` cover every row of ``input_ids``."""


DecodingStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]
"""``(tokens [rows, 1], attention_mask, position_ids, cache) -> next token ids [rows]``; the cache grows
by one position in place."""


MIN_SHARED_PREFIX = 4
"""Fewer leading tokens shared by every row than this are not worth a pass of their own."""


def shared_prefix_columns(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Leading columns in which every row holds the same real token (a prompt prefix laid out before
    the padding, see ``evalgate.modeling.generation.generate_batch``), leaving at least the last column;
    0 when fewer than ``MIN_SHARED_PREFIX`` or a single row."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0) & attention_mask.bool().all(dim=0)
    count = min(int(same.long().cumprod(dim=0).sum()), input_ids.shape[1] - 1)
    return count if count >= MIN_SHARED_PREFIX else 0


def prefix_cache(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    prefix_rows: slice,
    length: int,
    rows: int,
) -> Any:
    """The KV cache of the first ``length`` columns of the rows ``prefix_rows`` (one per model copy, or
    one), run once and handed to ``rows`` rows per copy (``prefix_cache_for``)."""
    prefix = model(
        input_ids=input_ids[prefix_rows, :length],
        attention_mask=attention_mask[prefix_rows, :length],
        position_ids=position_ids[prefix_rows, :length],
        use_cache=True,
        logits_to_keep=1,
    )
    return prefix_cache_for(prefix.cache, rows)


def after_prefix(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    length: int,
    cache: Any,
) -> Any:
    """The prompt pass over the columns after the first ``length`` ones, which ``cache`` holds (none
    when ``length`` is 0), keeping the last position's logits and the cache."""
    return model(
        input_ids=input_ids[:, length:],
        attention_mask=attention_mask,
        position_ids=position_ids[:, length:],
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )


def plain_prefill(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
) -> Any:
    """The whole prompt batch through the model, keeping the last position's logits and the cache.
    A prefix that every row shares (``shared_prefix_columns``) runs once, on one row, and the rows go
    on from copies of its KV cache."""
    length = shared_prefix_columns(input_ids, attention_mask)
    rows = input_ids.shape[0]
    cache = (
        prefix_cache(model, input_ids, attention_mask, position_ids, slice(0, 1), length, rows)
        if length
        else None
    )
    return after_prefix(model, input_ids, attention_mask, position_ids, length, cache)


def greedy_decode(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    budgets: Sequence[int],
    stops: Sequence[int],
    on_rows_kept: RowsKept | None = None,
    prefill: Prefill = plain_prefill,
) -> list[list[int]]:
    """New token ids of each left-padded row: at most ``budgets[i]`` of them, ending at the first stop
    token (included) when one comes first. ``prefill`` runs the prompt pass (one that shares work
    between rows may stand in for ``plain_prefill``)."""
    stop_set = set(stops)
    new_tokens: list[list[int]] = [[] for _ in budgets]
    running = list(range(len(budgets)))
    mask = attention_mask
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    with torch.inference_mode():
        output = prefill(model, input_ids, mask, positions)
        cache, next_position = output.cache, positions[:, -1:] + 1
        tokens = output.logits[:, -1].argmax(dim=-1)
        step = decoding_step(model)
        while True:
            kept = _record(tokens.tolist(), running, new_tokens, budgets, stop_set)
            if not kept:
                return new_tokens
            if len(kept) < len(running):
                index = torch.tensor(kept, device=tokens.device)
                cache.batch_select_indices(index)
                tokens, mask, next_position = tokens[index], mask[index], next_position[index]
                running = [running[slot] for slot in kept]
                if on_rows_kept is not None:
                    on_rows_kept(kept)
            mask = torch.cat([mask, mask.new_ones((len(running), 1))], dim=1)
            tokens = step(tokens[:, None], mask, next_position, cache)
            next_position = next_position + 1


def decoding_step(model: Any) -> DecodingStep:
    """One step of greedy decoding. Through the decoder and a ``ScreenedArgmax`` of the output layer
    where that pays (``evalgate.modeling.screened_head``), else through the whole model's logits."""
    has_parts = hasattr(model, "get_decoder") and hasattr(model, "get_output_embeddings")
    pick = screened_picker(model.get_output_embeddings()) if has_parts else None
    if pick is None:
        return lambda tokens, mask, positions, cache: (
            model(input_ids=tokens, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
            .logits[:, -1]
            .argmax(dim=-1)
        )
    decoder = model.get_decoder()
    return lambda tokens, mask, positions, cache: pick(
        decoder(
            input_ids=tokens, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
        ).last_hidden_state[:, -1]
    )


def _record(
    tokens: list[int],
    running: list[int],
    new_tokens: list[list[int]],
    budgets: Sequence[int],
    stops: set[int],
) -> list[int]:
    """Append each running row's token; the slots of the rows that go on (no stop, budget left)."""
    kept = []
    for slot, (row, token) in enumerate(zip(running, tokens, strict=True)):
        new_tokens[row].append(token)
        if token not in stops and len(new_tokens[row]) < budgets[row]:
            kept.append(slot)
    return kept
