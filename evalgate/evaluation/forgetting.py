"""Teacher-forced signals from a loaded model: reference log-probabilities and the ood KL divergence.

Both run one forward pass over ``prompt + answer`` token ids, rendered exactly as training renders a
row (``render_prompt`` then ``render_completion``, see
``evalgate.sweep.training.peft_trainer.tokenize_rows``).

**ood_kl** (the forgetting signal, a pseudo-evaluator; lower is better, 0 means unchanged). For an
out-of-domain row let ``x_1..x_n`` be its prompt tokens followed by the base model's own answer (and the
end-of-turn mark). At every position ``t < n`` both models give a next-token distribution over the
vocabulary, ``P_t`` (base, adapters disabled) and ``Q_t`` (candidate, adapter active), and

    ood_kl = (1 / (n - 1)) * sum_{t=1}^{n-1} KL(P_t || Q_t),
    KL(P || Q) = sum_v P(v) * (log P(v) - log Q(v))        [nats per token, >= 0]

Positions are paired by token (same input ids through both models), so the signal measures how far the
candidate's predictions moved on general text, with no sampling noise. The base model scores exactly 0.
``ood_kl_all`` gives every candidate's values from one forward pass per batch over the base model and
all the adapters stacked (``evalgate.modeling.stacked_generation.stacked_adapters``): the base
distributions are computed once rather than once per candidate, and the layers below the lowest
adapted one run once for all the models (``evalgate.modeling.shared_layers``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from evalgate.modeling.generation import active_adapter
from evalgate.modeling.prompting import render_completion, render_prompt
from evalgate.modeling.shared_layers import common_prefix_length, prefix_cache_for, shared_below
from evalgate.modeling.stacked_generation import CannotStack, RowRouting, adapted_modules, stacked_adapters
from evaluators.base import ScoredRow
from evaluators.perplexity import LogProbs

DEFAULT_BATCH_SIZE = 4


def teacher_forced_ids(
    tokenizer: PreTrainedTokenizerBase, row: Mapping[str, Any], answer: str
) -> tuple[list[int], int]:
    """Token ids of prompt + answer (training's rendering) and the index where the answer starts."""
    prompt_ids = tokenizer(render_prompt(tokenizer, row), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(render_completion(tokenizer, row, answer), add_special_tokens=False)["input_ids"]
    return list(prompt_ids) + list(answer_ids), len(prompt_ids)


def _batches(sequences: list[list[int]], size: int) -> Iterator[tuple[int, list[list[int]]]]:
    for start in range(0, len(sequences), size):
        yield start, sequences[start : start + size]


def _by_length(sequences: Sequence[list[int]], size: int) -> Iterator[list[int]]:
    """Batches of indices into ``sequences`` in order of length, so that a batch pads little (on the
    main job's closed-book rows, 0.3% padded positions in batches of 4 against 11.5% in row order)."""
    order = sorted(range(len(sequences)), key=lambda index: (len(sequences[index]), index))
    for start in range(0, len(order), size):
        yield order[start : start + size]


def _log_softmax(
    model: Any, batch: list[list[int]], pad_id: int, prefix: Prefix | None = None
) -> torch.Tensor:
    """Log next-token distributions ``[batch, length, vocab]`` in float32 (see ``_logits``)."""
    return torch.log_softmax(_logits(model, batch, pad_id, prefix), dim=-1)


def _logits(model: Any, batch: list[list[int]], pad_id: int, prefix: Prefix | None = None) -> torch.Tensor:
    """Right-padded forward pass; next-token logits ``[batch, length, vocab]`` in float32.
    With ``prefix``, each row of ``batch`` continues the prefix's tokens (taken from its KV cache)."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in batch])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
    device = next(model.parameters()).device
    extra: dict[str, Any] = {}
    if prefix is not None:
        rows = len(batch) // prefix.rows_per_copy
        attention = torch.cat(
            [torch.ones((len(batch), prefix.length), dtype=attention.dtype), attention], dim=1
        )
        positions = torch.arange(prefix.length, prefix.length + width).expand(len(batch), width)
        extra = {
            "cache": prefix_cache_for(prefix.cache, rows),
            "position_ids": positions.to(device),
        }
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), **extra).logits
    return logits.float()


def reference_logprobs(model: Any, tokenizer: PreTrainedTokenizerBase, batch_size: int = 8) -> LogProbs:
    """The callable the perplexity evaluator needs, bound to ``model`` in whatever state it is called.

    ``logprobs(rows)[i][k]`` is ``log p(a_k | prompt, a_<k)`` for the k-th token of row i's rendered
    reference answer (end-of-turn included, as in training's loss).
    """
    pad_id = int(tokenizer.pad_token_id or 0)

    def logprobs(rows: Sequence[ScoredRow]) -> list[list[float]]:
        pairs = [
            teacher_forced_ids(tokenizer, {"question": r.question, "context": r.context}, r.reference or "")
            for r in rows
        ]
        results: list[list[float]] = []
        for start, batch in _batches([ids for ids, _ in pairs], batch_size):
            log_probs = _log_softmax(model, batch, pad_id)
            for offset, ids in enumerate(batch):
                answer_start = pairs[start + offset][1]
                targets = torch.tensor(ids[answer_start:], device=log_probs.device)
                picked = log_probs[offset, answer_start - 1 : len(ids) - 1].gather(1, targets[:, None])
                results.append(picked.squeeze(1).tolist())
        return results

    return logprobs


def ood_kl(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    base_answers: Sequence[str],
    adapter: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[float]:
    """Per row, the mean per-token KL(base || candidate) on prompt + base answer (see module docstring).

    ``model`` is a PeftModel holding ``adapter``; the base distributions come from the same model with
    its adapters disabled. ``base_answers[i]`` is the base model's answer to ``rows[i]``.
    """
    pad_id = int(tokenizer.pad_token_id or 0)
    sequences = _kl_sequences(tokenizer, rows, base_answers)
    results = [0.0] * len(sequences)
    for indices in _by_length(sequences, batch_size):
        batch = [sequences[i] for i in indices]
        with active_adapter(model, None):
            base = _log_softmax(model, batch, pad_id)
        with active_adapter(model, adapter):
            candidate = _log_softmax(model, batch, pad_id)
        for index, value in zip(indices, _mean_kl(_kl_per_position(base, candidate), batch), strict=True):
            results[index] = value
    return results


def ood_kl_all(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    base_answers: Sequence[str],
    adapters: Sequence[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, list[float]]:
    """``ood_kl`` of every adapter in ``adapters``: one forward pass per batch over the base model's
    copy and each adapter's (stacked); the loop of ``ood_kl`` when the adapters cannot be stacked.

    The prompt prefix every row shares (the chat template's system turn: 25 of the 37 prompt tokens of
    a closed-book question) runs once per model (``_prefix_pass``); each batch continues from its KV
    cache, and the prefix positions' KL, the same for every row, is added to each row's sum."""
    pad_id = int(tokenizer.pad_token_id or 0)
    sequences = _kl_sequences(tokenizer, rows, base_answers)
    models: list[str | None] = [None, *adapters]
    try:
        with (
            stacked_adapters(model, models) as routing,
            shared_below(model, adapted_modules(model), len(models)) as shared,
        ):
            copies = 1 if shared else len(models)
            length = common_prefix_length(sequences)
            prefix = _prefix_pass(model, sequences[0][:length], copies, routing) if length else None
            results = {adapter: [0.0] * len(sequences) for adapter in adapters}
            for indices in _by_length(sequences, batch_size):
                routing.start(len(indices))
                suffixes = [sequences[i][length:] for i in indices]
                stacked = _logits(model, suffixes * copies, pad_id, prefix)
                per_model = _kl_from_first(stacked, len(indices))
                for k, (adapter, per_token) in enumerate(zip(adapters, per_model, strict=True)):
                    before = 0.0 if prefix is None else prefix.kl_sums[k]
                    values = _mean_kl(per_token, suffixes, length, before)
                    for index, value in zip(indices, values, strict=True):
                        results[adapter][index] = value
            return results
    except CannotStack:
        return {
            adapter: ood_kl(model, tokenizer, rows, base_answers, adapter, batch_size) for adapter in adapters
        }


@dataclass(frozen=True)
class Prefix:
    """A prompt prefix run once per model: its length, its KV cache (one row per model copy, or one
    row in the layers shared by every copy) and, per candidate, the sum over its positions of
    KL(base || candidate)."""

    length: int
    cache: Any
    rows_per_copy: int
    kl_sums: list[float]


def _prefix_pass(model: Any, prefix: list[int], copies: int, routing: RowRouting) -> Prefix:
    """Run ``prefix`` as a batch of one row per model (``copies`` rows given to the model: 1 when the
    layers below the adapters are shared and expand it, else one per model)."""
    routing.start(1)
    device = next(model.parameters()).device
    input_ids = torch.tensor([prefix] * copies, device=device)
    with torch.inference_mode():
        output = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=True)
    log_probs = torch.log_softmax(output.logits.float(), dim=-1)
    base = log_probs[0]
    kl_sums = [
        float(_kl_per_position(base, log_probs[k]).clamp_min(0).sum()) for k in range(1, log_probs.shape[0])
    ]
    return Prefix(len(prefix), output.cache, copies, kl_sums)


def _kl_sequences(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[Mapping[str, Any]], base_answers: Sequence[str]
) -> list[list[int]]:
    """Token ids of each row's prompt + the base model's answer, the text both models are compared on."""
    return [
        teacher_forced_ids(tokenizer, row, answer)[0] for row, answer in zip(rows, base_answers, strict=True)
    ]


def _kl_per_position(base: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)) at every position, from log-probabilities
    ``[..., vocab]`` of the base model (P) and of a candidate (Q). Exactly 0 where Q is P (the base
    scored against itself, which the loop path must give); ``_kl_from_first`` gives up that exactness,
    about 1e-7 per position, to build no log-softmax for the candidates."""
    return (base.exp() * (base - candidate)).sum(dim=-1)


def _kl_from_first(logits: torch.Tensor, rows: int) -> list[torch.Tensor]:
    """KL(P || Q_k) at every position ``[rows, length]`` for each model k after the first, from stacked
    logits ``[(1 + K) * rows, length, vocab]`` whose first ``rows`` rows are the base model's (P).

    Only the base's log-softmax is materialised: with z the candidate's logits,
    log Q(v) = z_v - logsumexp(z), and since sum_v P(v) = 1,
        KL(P || Q) = sum_v P(v) log P(v) - sum_v P(v) z_v + logsumexp(z).
    """
    base = torch.log_softmax(logits[:rows], dim=-1)
    probs = base.exp()
    negative_entropy = (probs * base).sum(dim=-1)
    candidates = logits[rows:].unflatten(0, (-1, rows))
    return [
        negative_entropy - (probs * z).sum(dim=-1) + torch.logsumexp(z, dim=-1) for z in candidates.unbind(0)
    ]


def _mean_kl(
    per_token: torch.Tensor,
    batch: list[list[int]],
    prefix_length: int = 0,
    prefix_kl_sum: float = 0.0,
) -> list[float]:
    """Per row of ``batch``, the mean over its positions but the last of the KL at each position
    (``per_token``, ``[batch, length]``); with a shared prefix before every row, its ``prefix_length``
    positions count too (their sum given)."""
    results = []
    for offset, ids in enumerate(batch):
        positions = per_token[offset, : len(ids) - 1].clamp_min(0)
        count = prefix_length + positions.numel()
        results.append((prefix_kl_sum + float(positions.sum())) / count if count else 0.0)
    return results
