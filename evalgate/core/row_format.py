"""Values of row fields that more than one layer reads: the dataset store writes them, generation
renders prompts by them. Constants only."""

from __future__ import annotations

CONTEXT_FIRST = "context_first"
"""The ``metadata.prompt_layout`` of rows whose question is asked about their context (the passage
comes first in the prompt, see ``evalgate.modeling.prompting``)."""
