"""Decoding settings of evaluation runs: light (no torch), so the CLI can show defaults quickly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_MAX_NEW_TOKENS = 96
"""Default answer budget: the base model pretty-prints JSON, which takes room."""
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class DecodingSettings:
    """Everything that decides a generated answer besides the model and the prompt."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    """Most new tokens per answer."""
    cohort_max_new_tokens: Mapping[str, int] = field(default_factory=dict)
    """Most new tokens per answer in a named cohort (short answers need no 96-token budget); a cohort
    not named gets ``max_new_tokens``."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Rows per batch (left padding can change low-order bits of the logits, so it is recorded)."""
    dtype: str = "float32"
    """Model precision, e.g. ``bfloat16``."""
    products: str = "float32"
    """Precision of the linear layers' products: ``bfloat16`` for an fp32 model whose products were
    taken in bf16 (``evalgate.modeling.bf16_products``)."""
    device: str = "cpu"
    """Device kind the model ran on: cpu, cuda or mps."""
    do_sample: bool = False
    """Always False: greedy decoding, so answers are deterministic."""
    stop: str = "end_of_turn"
    """Decoding stops at the chat template's end-of-turn token (or EOS)."""
    mixed_adapters: bool = False
    """Several models answered each prompt batch in one pass (``evalgate.modeling.stacked_generation``). The
    inputs are the same, but the larger batch may round low-order bits differently (bf16 on a GPU)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")
        for cohort, budget in self.cohort_max_new_tokens.items():
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise ValueError(f"cohort_max_new_tokens[{cohort!r}] must be an integer >= 1, got {budget!r}")
        if self.do_sample:
            raise ValueError("evaluation decoding is greedy: do_sample must be False")

    def budget(self, cohort: str | None) -> int:
        """Most new tokens for an answer in ``cohort``."""
        return self.cohort_max_new_tokens.get(cohort or "", self.max_new_tokens)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (stored on the evaluation run); per-cohort budgets only when set
        and products only when not fp32, so runs stored before they existed still match equal settings."""
        data = asdict(self)
        data["cohort_max_new_tokens"] = dict(sorted(self.cohort_max_new_tokens.items()))
        if not data["cohort_max_new_tokens"]:
            del data["cohort_max_new_tokens"]
        if self.products == "float32":
            del data["products"]
        return data

    def canonical_json(self) -> str:
        """Sorted-key, compact JSON: equal settings give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
