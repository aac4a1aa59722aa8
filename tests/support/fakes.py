"""Test doubles: a deterministic bag-of-words embedder (no model download, no torch)."""

from __future__ import annotations

import hashlib

import numpy as np

from evaluators import text


class BagOfWordsEmbedder:
    """Hashes content tokens into a unit vector: cosine grows with shared words."""

    def __init__(self, dim: int = 512):
        self.dim = dim
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        """One unit row per text (a zero text maps to a fixed unit vector)."""
        self.calls += 1
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, item in enumerate(texts):
            for token in text.content_tokens(item) or {"<empty>"}:
                matrix[row, int(hashlib.md5(token.encode()).hexdigest(), 16) % self.dim] += 1.0
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
