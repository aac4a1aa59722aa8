"""Fixtures of the evaluator tests: a fake embedder, and the real MiniLM one for slow tests."""

from __future__ import annotations

import pytest

from evalgate.evaluation.embeddings import Embedder
from tests.support.fakes import BagOfWordsEmbedder


@pytest.fixture
def fake_embedder() -> BagOfWordsEmbedder:
    """A fast, deterministic embedder."""
    return BagOfWordsEmbedder()


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real all-MiniLM-L6-v2 from its package folder (slow tests only)."""
    from evalgate.evaluation.embeddings import default_embedder

    return default_embedder()
