"""TransformerEmbedder: rows in the order asked whatever the batching, and texts embedded once."""

from __future__ import annotations

import numpy as np
import pytest

from evalgate.evaluation import embeddings
from evalgate.evaluation.embeddings import TransformerEmbedder, default_embedder

TEXTS = [
    "What is the capital of France, the country in western Europe?",
    "Paris.",
    "The Eiffel Tower was finished in 1889 for the World's Fair held in Paris that year.",
    "Berlin",
    "Which river flows through Vienna?",
]


@pytest.fixture
def embedder() -> TransformerEmbedder:
    """The real MiniLM in a new embedder with nothing remembered, batches of two."""
    shared = default_embedder()
    return TransformerEmbedder(shared.model, shared.tokenizer, batch_size=2)


def test_rows_come_back_in_the_order_of_the_texts(embedder: TransformerEmbedder) -> None:
    together = embedder.encode(TEXTS)
    embedder.forget()
    alone = np.stack([embedder.encode([text])[0] for text in TEXTS])
    assert together.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_a_text_seen_before_is_not_encoded_again(
    embedder: TransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    real = embedder._encode_batch

    def counting(texts: list[str]) -> np.ndarray:
        encoded.extend(texts)
        return real(texts)

    monkeypatch.setattr(embedder, "_encode_batch", counting)
    first = embedder.encode(TEXTS[:3])
    again = embedder.encode([TEXTS[1], TEXTS[3], TEXTS[1]])
    assert sorted(encoded) == sorted([*TEXTS[:3], TEXTS[3]])
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[2], first[1])


def test_the_least_recently_used_text_is_forgotten_first(
    embedder: TransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "MEMO_SIZE", 2)
    embedder.encode(TEXTS[:2])
    embedder.encode([TEXTS[0]])  # now the most recently used
    embedder.encode([TEXTS[2]])
    assert list(embedder._memo) == [TEXTS[0], TEXTS[2]]


def test_more_distinct_texts_than_the_memory_holds_in_one_call(
    embedder: TransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "MEMO_SIZE", 2)
    vectors = embedder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert len(embedder._memo) == 2


def test_no_texts_give_an_empty_array(embedder: TransformerEmbedder) -> None:
    assert embedder.encode([]).shape == (0, 384)
