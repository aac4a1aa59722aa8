"""How a dataset row becomes a chat prompt, the same way for training and for generation.

The user turn is the question, followed by the context (when there is one) after a blank line. A row
whose ``metadata.prompt_layout`` is ``context_first`` (a question about a passage) puts the passage
first and then asks the question about it (``CONTEXT_FIRST_TEMPLATE``), which a small model answers
far more often than a question followed by a passage it takes for a statement to comment on.
The model's chat template (``tokenizer.apply_chat_template``) renders the turns; a tokenizer without
a template gets a plain ``Question/Answer`` layout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from evalgate.core.row_format import CONTEXT_FIRST

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PLAIN_TEMPLATE = "Question: {user}\nAnswer:"
CONTEXT_FIRST_TEMPLATE = "{context}\n\nAnswer this question about the text above in a few words: {question}"


def user_message(row: Mapping[str, Any]) -> str:
    """The user turn of ``row``: question, then context after a blank line (or the context first, when
    its metadata asks for it: see the module docstring)."""
    context = (row.get("context") or "").strip()
    question = str(row["question"]).strip()
    if context and prompt_layout(row) == CONTEXT_FIRST:
        return CONTEXT_FIRST_TEMPLATE.format(context=context, question=question)
    return f"{question}\n\n{context}" if context else question


def prompt_layout(row: Mapping[str, Any]) -> str | None:
    """``metadata.prompt_layout`` of ``row`` (metadata as a mapping or as the store's JSON text)."""
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return None
    layout = metadata.get("prompt_layout") if isinstance(metadata, Mapping) else None
    return layout if isinstance(layout, str) else None


def render_prompt(tokenizer: PreTrainedTokenizerBase, row: Mapping[str, Any]) -> str:
    """The prompt text up to where the model's answer starts."""
    message = user_message(row)
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
        return str(rendered)
    return PLAIN_TEMPLATE.format(user=message)


def render_completion(tokenizer: PreTrainedTokenizerBase, row: Mapping[str, Any], answer: str) -> str:
    """The text the model should produce after ``render_prompt``: the answer and its end-of-turn mark.

    With a chat template this is the part of the rendered [user, assistant] conversation after the
    prompt (so the template decides the end-of-turn token); otherwise the answer plus EOS.
    """
    prompt = render_prompt(tokenizer, row)
    if getattr(tokenizer, "chat_template", None):
        conversation = [
            {"role": "user", "content": user_message(row)},
            {"role": "assistant", "content": answer},
        ]
        full = str(tokenizer.apply_chat_template(conversation, tokenize=False))
        if full.startswith(prompt):
            return full[len(prompt) :]
    return f"{answer}{tokenizer.eos_token or ''}"
