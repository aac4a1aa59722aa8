"""How a dataset row becomes a chat prompt, the same way for training and for generation.

The user turn is the question, followed by the context (when there is one) after a blank line. Rows of
a grounded cohort (``GROUNDED_COHORTS``: a question about a passage) put the passage first and then ask
the question about it (``GROUNDED_TEMPLATE``), which the small base model answers far more often than a
question followed by a passage it takes for a statement to comment on.
The model's chat template (``tokenizer.apply_chat_template``) renders the turns; a tokenizer without
a template gets a plain ``Question/Answer`` layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import PreTrainedTokenizerBase

PLAIN_TEMPLATE = "Question: {user}\nAnswer:"
GROUNDED_COHORTS = ("ood_grounded",)
"""Cohorts whose question is asked about the row's context (a short passage)."""
GROUNDED_TEMPLATE = "{context}\n\nAnswer this question about the text above in a few words: {question}"


def user_message(row: Mapping[str, Any]) -> str:
    """The user turn of ``row``: question, then context after a blank line (grounded: see module doc)."""
    context = (row.get("context") or "").strip()
    question = str(row["question"]).strip()
    if context and row.get("cohort") in GROUNDED_COHORTS:
        return GROUNDED_TEMPLATE.format(context=context, question=question)
    return f"{question}\n\n{context}" if context else question


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
