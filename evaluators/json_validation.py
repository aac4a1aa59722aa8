"""JSON validation: does the answer parse as JSON and satisfy the row's JSON Schema?

    score = 1 if the answer parses and the schema (if any) accepts it, else 0     higher is better

Parsing accepts the JSON value alone (surrounding whitespace allowed) or wrapped in one Markdown code
fence, ```json ... ``` or ``` ... ```; any other text around it fails. Rows without a ``json_schema``
are not applicable (the schema is what marks a row as expecting JSON). ``detail`` names what failed:
``parse`` with the decoder's message, or ``schema`` with the validator's path (e.g. ``$.quantity``),
the failing keyword and its message (the most relevant error, by ``jsonschema``'s ``best_match``).
"""

from __future__ import annotations

import json
from typing import ClassVar

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from evaluators import text
from evaluators.base import RowScore, RowwiseEvaluator, ScoredRow
from evaluators.registry import register


@register
class JSONValidation(RowwiseEvaluator):
    """1 when the answer is JSON that matches the row's schema, else 0; higher is better."""

    name: ClassVar[str] = "json_validation"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True
    threshold: ClassVar[float] = 1.0
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def score_row(self, row: ScoredRow) -> RowScore:
        """Parse, then validate against the row's schema; ``detail`` says which rule failed."""
        if not row.json_schema:
            return RowScore.not_applicable("no json_schema")
        try:
            value = text.parse_json(row.answer)
        except json.JSONDecodeError as decode_error:
            message = f"{decode_error.msg} at char {decode_error.pos}"
            return self.verdict(0.0, failed="parse", message=message)
        schema = json.loads(row.json_schema)
        error = best_match(validator_for(schema)(schema).iter_errors(value))
        if error is None:
            return self.verdict(1.0)
        return self.verdict(
            0.0, failed="schema", path=error.json_path, rule=str(error.validator), message=error.message
        )
