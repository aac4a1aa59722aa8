"""Imports every built-in evaluator module so that each registers itself (see ``registry``)."""

from __future__ import annotations

import importlib

BUILTIN_MODULES = (
    "answer_relevancy",
    "faithfulness",
    "hallucination",
    "json_validation",
    "reference_match",
    "accept_match",
    "content_safety",
    "perplexity",
)

for _module in BUILTIN_MODULES:
    importlib.import_module(f"evaluators.{_module}")
