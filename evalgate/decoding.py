"""Decoding settings of evaluation runs: light (no torch), so the CLI can show defaults quickly."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_MAX_NEW_TOKENS = 96
"""Default answer budget: the base model pretty-prints JSON, which takes room."""
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class DecodingSettings:
    """Everything that decides a generated answer besides the model and the prompt."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    """Most new tokens per answer."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Rows per batch (left padding can change low-order bits of the logits, so it is recorded)."""
    dtype: str = "float32"
    """Model precision, e.g. ``bfloat16``."""
    device: str = "cpu"
    """Device kind the model ran on: cpu, cuda or mps."""
    do_sample: bool = False
    """Always False: greedy decoding, so answers are deterministic."""
    stop: str = "end_of_turn"
    """Decoding stops at the chat template's end-of-turn token (or EOS)."""
    mixed_adapters: bool = False
    """Several models answered each prompt batch in one pass (``evalgate.mixed_generation``). The
    inputs are the same, but the larger batch may round low-order bits differently (bf16 on a GPU)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")
        if self.do_sample:
            raise ValueError("evaluation decoding is greedy: do_sample must be False")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (stored on the evaluation run)."""
        return asdict(self)

    def canonical_json(self) -> str:
        """Sorted-key, compact JSON: equal settings give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
