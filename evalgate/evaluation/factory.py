"""Build an evaluator by name with its default models injected (the MiniLM sentence embedder).

    from evalgate.evaluation.factory import build_evaluator
    evaluator = build_evaluator("faithfulness", get_settings())

Evaluators never load models themselves; this is where the defaults are chosen. ``perplexity`` needs
the language model under evaluation, which only the evaluation runner has: it is built there.
"""

from __future__ import annotations

from typing import Any

from evalgate.core.settings import Settings
from evalgate.evaluation.embeddings import Embedder, default_embedder
from evaluators import registry
from evaluators.base import Evaluator

EMBEDDING_EVALUATORS = frozenset({"answer_relevancy"})
"""Evaluators that take ``embedder=`` (a sentence embedder)."""
RUNNER_BUILT_EVALUATORS = frozenset({"perplexity"})
"""Evaluators that need the evaluated language model: built by the evaluation runner."""


class EvaluatorNeedsModelError(ValueError):
    """The evaluator needs a model that only the evaluation runner can provide."""


def build_evaluator(
    name: str, settings: Settings | None = None, *, embedder: Embedder | None = None
) -> Evaluator:
    """An instance of evaluator ``name``; ``embedder`` overrides the default MiniLM embedder.

    ``settings`` is accepted for the runner's factory signature; no default model depends on it yet.
    Raises ``registry.UnknownEvaluatorError`` for an unknown name and ``EvaluatorNeedsModelError``
    for an evaluator that needs the evaluated language model.
    """
    del settings  # the defaults are offline package models; nothing to configure yet
    if name in RUNNER_BUILT_EVALUATORS:
        raise EvaluatorNeedsModelError(
            f"evaluator {name!r} needs the language model being evaluated; it is built by the evaluation "
            "runner (`evalgate evaluate`), not on its own"
        )
    dependencies: dict[str, Any] = {}
    if name in EMBEDDING_EVALUATORS:
        registry.get(name)  # unknown names fail here, before a model is loaded
        dependencies["embedder"] = embedder or default_embedder()
    return registry.create(name, **dependencies)
