"""Greedy, batched, deterministic answers of a model (or of each adapter of a PeftModel) to dataset rows.

    answers = generate_answers(model, tokenizer, rows, DecodingSettings(max_new_tokens=96))

Prompts are rendered with ``render_prompt``, the same rendering training used; batches are left-padded
(the answer of every row starts at the same position) and decoding stops at the chat template's
end-of-turn token. Rows are batched in order of prompt length to waste little on padding; answers
come back in the order of the input rows. The settings that change an answer are recorded as a dict
(``DecodingSettings.to_dict``) and go into the generation cache key (``cache_key``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import PreTrainedTokenizerBase

from evalgate.core.timings import stage
from evalgate.modeling.bf16_products import bf16_products, products_for
from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.greedy import Prefill, RowsKept, greedy_decode, plain_prefill
from evalgate.modeling.loading import (
    hub_cache_dir,
    load_model,
    model_fingerprint,
    pick_device,
    pick_dtype,
    resolve_model,
)
from evalgate.modeling.prompting import render_completion, render_prompt
from evalgate.modeling.shared_layers import common_prefix_length

BatchDone = Callable[[int], None]
"""Called with the number of rows of each finished batch (progress bars)."""


@dataclass(frozen=True)
class Answer:
    """A generated answer and the number of new tokens it took (end-of-turn included when reached)."""

    text: str
    new_tokens: int


def cache_key(model_fingerprint: str, dataset_hash: str, decoding: DecodingSettings) -> str:
    """sha256 of ``model fingerprint \\0 dataset content hash \\0 canonical decoding JSON``."""
    payload = "\0".join([model_fingerprint, dataset_hash, decoding.canonical_json()])
    return hashlib.sha256(payload.encode()).hexdigest()


def candidate_fingerprint(base_fingerprint: str, adapter_hash: str) -> str:
    """A candidate's model fingerprint: sha256 of the base model's fingerprint and the adapter's hash."""
    return hashlib.sha256(f"{base_fingerprint}\0{adapter_hash}".encode()).hexdigest()


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids that end an answer: the special tokens the template puts after an answer, and EOS."""
    suffix = render_completion(tokenizer, {"question": "?"}, "")
    suffix_ids = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids)
    stops = [token for token in suffix_ids if token in special]
    if tokenizer.eos_token_id is not None:
        stops.append(int(tokenizer.eos_token_id))
    return sorted(set(stops))


def generate_answers(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    decoding: DecodingSettings,
    on_batch: BatchDone | None = None,
) -> list[Answer]:
    """Greedy answers of ``model`` (as it is: a PeftModel uses its active adapter) to ``rows``."""
    encoded, budgets, batches = prompt_batches(tokenizer, rows, decoding)
    stops = end_of_turn_ids(tokenizer)
    answers: dict[int, Answer] = {}
    with bf16_products(model, decoding.products):
        for batch in batches:
            texts = generate_batch(
                model, tokenizer, [encoded[i] for i in batch], [budgets[i] for i in batch], stops
            )
            answers.update(zip(batch, texts, strict=True))
            if on_batch is not None:
                on_batch(len(batch))
    return [answers[index] for index in range(len(rows))]


def prompt_batches(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[Mapping[str, Any]], decoding: DecodingSettings
) -> tuple[list[list[int]], list[int], list[list[int]]]:
    """Token ids of every row's prompt, its answer budget, and batches of row indices in order of
    budget, then prompt length (rows of one budget share batches, and a batch wastes little on padding)."""
    encoded = [
        tokenizer(render_prompt(tokenizer, row), add_special_tokens=False)["input_ids"] for row in rows
    ]
    budgets = [decoding.budget(row.get("cohort")) for row in rows]
    order = sorted(range(len(rows)), key=lambda index: (budgets[index], len(encoded[index]), index))
    size = decoding.batch_size
    return encoded, budgets, [order[start : start + size] for start in range(0, len(order), size)]


def generate_batch(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    encoded: list[list[int]],
    budgets: list[int],
    stops: list[int],
    on_rows_kept: RowsKept | None = None,
    prefill: Prefill = plain_prefill,
) -> list[Answer]:
    """One left-padded batch through ``evalgate.modeling.greedy.greedy_decode``: each row stops at its own
    budget or stop token and leaves the running batch then (``on_rows_kept`` is told which rows stay).

    The prompt prefix every row shares (the chat template's system turn) comes before the padding, so
    that a prefill can run it once; positions count real tokens only, so each row still sees the
    positions it would see alone."""
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0])
    width = max(len(ids) for ids in encoded)
    shared = common_prefix_length(encoded)
    input_ids = torch.tensor([ids[:shared] + [pad_id] * (width - len(ids)) + ids[shared:] for ids in encoded])
    attention = torch.tensor(
        [[1] * shared + [0] * (width - len(ids)) + [1] * (len(ids) - shared) for ids in encoded]
    )
    device = next(model.parameters()).device
    new_ids = greedy_decode(
        model, input_ids.to(device), attention.to(device), budgets, stops, on_rows_kept, prefill
    )
    return [_decode(tokenizer, ids, stops) for ids in new_ids]


def _decode(tokenizer: PreTrainedTokenizerBase, new_ids: list[int], stops: list[int]) -> Answer:
    """Cut at the first stop token (counted as a new token), decode without special tokens."""
    cut = next((i + 1 for i, token in enumerate(new_ids) if token in stops), len(new_ids))
    text = tokenizer.decode(new_ids[:cut], skip_special_tokens=True)
    return Answer(text=str(text).strip(), new_tokens=cut)


# ------------------------------------------------------------------------------------- many adapters


class AdapterGenerate(Protocol):
    """Answers of several models that share one base: ``None`` is the base, a name an adapter.

    ``generate_per_adapter`` loops over ``set_adapter``; ``evalgate.modeling.stacked_generation``
    answers every
    model's copy of a prompt batch in one pass. Both give each model the same prompt batches, padded
    the same way.
    """

    def __call__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[Mapping[str, Any]],
        adapters: Sequence[str | None],
        decoding: DecodingSettings,
        on_batch: BatchDone | None = None,
    ) -> dict[str | None, list[Answer]]: ...


def generate_per_adapter(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    adapters: Sequence[str | None],
    decoding: DecodingSettings,
    on_batch: BatchDone | None = None,
) -> dict[str | None, list[Answer]]:
    """For each adapter name (``None``: the base model, adapters disabled), the answers to ``rows``."""
    results: dict[str | None, list[Answer]] = {}
    for adapter in adapters:
        with active_adapter(model, adapter):
            results[adapter] = generate_answers(model, tokenizer, rows, decoding, on_batch)
    return results


@contextlib.contextmanager
def active_adapter(model: Any, adapter: str | None) -> Iterator[None]:
    """Run the block with ``adapter`` active, or with every adapter disabled when ``adapter`` is None.

    A plain (non-PEFT) model only accepts ``None``.
    """
    if not hasattr(model, "disable_adapter"):
        if adapter is not None:
            raise ValueError(f"adapter {adapter!r} requested from a model without adapters")
        yield
        return
    if adapter is None:
        with model.disable_adapter():
            yield
        return
    previous = model.active_adapter
    model.set_adapter(adapter)
    try:
        yield
    finally:
        model.set_adapter(previous)


# ------------------------------------------------------------------------------------------ model pool


class ModelPool:
    """One base model, loaded on first use, with candidates' adapters attached to it on demand.

    ``fingerprint`` hashes files only (no weights loaded): the base model's ``model_fingerprint``, or for
    a candidate ``candidate_fingerprint(base, adapter_hash)``.
    """

    def __init__(self, ref: str, home: Path, *, device: str = "auto", precision: str = "auto"):
        self.ref = ref
        self.home = home
        self.device = pick_device(device)
        self.dtype = pick_dtype(precision, self.device, generation=True)
        self.products = products_for(precision, self.device, self.dtype)
        """Precision of the linear layers' products in generation (``evalgate.modeling.bf16_products``)."""
        self.model: Any = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.adapters: dict[int, str] = {}
        self._base_fingerprint: str | None = None
        self.loads = 0
        """How many times weights were loaded (0 when everything came from the cache)."""

    def fingerprint(self, candidate: CandidateRef | None = None) -> str:
        """The base model's fingerprint, or the candidate's (base + adapter hash)."""
        if self._base_fingerprint is None:
            self._base_fingerprint = model_fingerprint(_local_folder(self.ref, self.home))
        if candidate is None:
            return self._base_fingerprint
        return candidate_fingerprint(self._base_fingerprint, candidate.adapter_hash)

    def load(self) -> tuple[Any, PreTrainedTokenizerBase]:
        """The model (a PeftModel once an adapter is attached) and its left-padding tokenizer."""
        if self.model is None:
            with stage("evaluation: model load"):
                self.model, self.tokenizer = load_model(
                    self.ref, self.home, dtype=self.dtype, device=self.device
                )
            self.tokenizer.padding_side = "left"
            self.loads += 1
        assert self.tokenizer is not None
        return self.model, self.tokenizer

    def adapter(self, candidate: CandidateRef | None) -> str | None:
        """Attach ``candidate``'s adapter (once); its adapter name, or None for the base model."""
        if candidate is None:
            return None
        if candidate.id not in self.adapters:
            from peft import PeftModel

            model, _ = self.load()
            name = f"candidate_{candidate.id}"
            if isinstance(model, PeftModel):
                model.load_adapter(candidate.adapter_uri, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(model, candidate.adapter_uri, adapter_name=name)
            self.model.eval()
            self.adapters[candidate.id] = name
        return self.adapters[candidate.id]


class CandidateRef(Protocol):
    """What the pool needs of a candidate."""

    @property
    def id(self) -> int: ...
    @property
    def adapter_uri(self) -> str: ...
    @property
    def adapter_hash(self) -> str: ...


def _local_folder(ref: str, home: Path) -> str:
    """The local folder of a model reference (the HF cache snapshot for a hub id)."""
    location = resolve_model(ref, home)
    if Path(location).is_dir():
        return location
    from huggingface_hub import snapshot_download

    return str(snapshot_download(location, local_files_only=True, cache_dir=hub_cache_dir()))
