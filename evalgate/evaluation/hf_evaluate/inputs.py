"""What each evaluator reads, as Hugging Face ``evaluate`` inputs, and how those inputs become rows.

An evaluator scores ``evaluators.base.ScoredRow`` objects; an ``evaluate`` metric takes columns. Each
column (``Column``) fills one field of the rows:

    predictions -> answer         the model's answers
    references  -> reference      reference answers
    accepted    -> metadata       answer_accuracy: per row the accepted answers (metadata["accept"])
    questions   -> question       the questions the answers reply to
    contexts    -> context        the context of each row: a string, or a list of passages joined by a
                                  blank line
    schemas     -> json_schema    a JSON Schema per row, as JSON text
    cohorts     -> cohort         the cohort of each row (default "target")

A metric's *features* are the columns the evaluator cannot score without (``evaluate`` requires them
in every ``compute`` call); its *options* are columns it reads when given (``compute`` keyword
arguments, one value per row). ``None`` or ``""`` in any column means "absent" (an empty answer, no
reference, no context, the default cohort); write ``""`` in a feature column's first row, whose
values ``evaluate`` checks to be strings.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets

from evaluators.base import ScoredRow

DEFAULT_COHORT = "target"
PASSAGE_SEPARATOR = "\n\n"
"""Joins a row's list of context passages into the one context string an evaluator reads."""


class MetricInputError(ValueError):
    """A column is missing, has the wrong length, or holds a value of the wrong type."""


@dataclass(frozen=True)
class Column:
    """One input of a metric: its ``evaluate`` name, the ``ScoredRow`` field it fills, what it holds."""

    name: str
    field: str
    doc: str
    lists: bool = False
    """Whether a row may also give a list of strings (passages, or accepted answers)."""

    @property
    def annotation(self) -> str:
        """The Python type of the column, as the generated scripts write it."""
        return "list[str | list[str] | None]" if self.lists else "list[str | None]"


PREDICTIONS = Column("predictions", "answer", "the model's answers")
REFERENCES = Column("references", "reference", "reference answers (None: the row has none)")
ACCEPTED = Column(
    "accepted",
    "accept",
    "per row the accepted answers, any one of which counts (None: the reference)",
    lists=True,
)
QUESTIONS = Column("questions", "question", "the questions (prompts) the answers reply to")
CONTEXTS = Column(
    "contexts",
    "context",
    "each row's context: a string, or a list of passages (None: no context)",
    lists=True,
)
SCHEMAS = Column("schemas", "json_schema", "each row's JSON Schema as JSON text (None: not applicable)")
COHORTS = Column("cohorts", "cohort", f"each row's cohort (None: {DEFAULT_COHORT!r})")


@dataclass(frozen=True)
class MetricSpec:
    """The inputs of one evaluator's metric."""

    features: tuple[Column, ...]
    """Columns every ``compute`` call must give."""
    options: tuple[Column, ...] = (COHORTS,)
    """Columns a ``compute`` call may give as keyword arguments."""
    needs_model: bool = False
    """Whether ``compute`` takes ``model=`` (a causal language model: a local folder or the embedded one)."""

    @property
    def columns(self) -> tuple[Column, ...]:
        """Features, then options."""
        return self.features + self.options


SPECS: dict[str, MetricSpec] = {
    "exact_match": MetricSpec((PREDICTIONS, REFERENCES)),
    "token_f1": MetricSpec((PREDICTIONS, REFERENCES)),
    "rouge_l": MetricSpec((PREDICTIONS, REFERENCES)),
    "json_field_match": MetricSpec((PREDICTIONS, REFERENCES)),
    "answer_accuracy": MetricSpec((PREDICTIONS, REFERENCES), (ACCEPTED, COHORTS)),
    "json_validation": MetricSpec((PREDICTIONS, SCHEMAS)),
    "content_safety": MetricSpec((PREDICTIONS,)),
    "faithfulness": MetricSpec((PREDICTIONS, QUESTIONS, CONTEXTS)),
    "hallucination_score": MetricSpec((PREDICTIONS, QUESTIONS, CONTEXTS, REFERENCES)),
    "answer_relevancy": MetricSpec((PREDICTIONS, QUESTIONS), (CONTEXTS, COHORTS)),
    "perplexity": MetricSpec((QUESTIONS, REFERENCES), (CONTEXTS, COHORTS), needs_model=True),
}
"""Evaluator name -> the columns its metric takes (every registered evaluator has one)."""


def spec_of(name: str) -> MetricSpec:
    """The spec of evaluator ``name``; ``KeyError`` naming the known ones when there is none."""
    if name not in SPECS:
        raise KeyError(f"no evaluate metric for evaluator {name!r}; known: {', '.join(sorted(SPECS))}")
    return SPECS[name]


def features(spec: MetricSpec) -> datasets.Features | list[datasets.Features]:
    """The ``datasets.Features`` of ``spec``'s features: one set, or one per combination of string and
    list for the columns that also take lists (``evaluate`` picks the set the first row matches)."""
    choices = [_feature_types(column) for column in spec.features]
    sets = [
        datasets.Features({column.name: kind for column, kind in zip(spec.features, combo, strict=True)})
        for combo in itertools.product(*choices)
    ]
    return sets[0] if len(sets) == 1 else sets


def _feature_types(column: Column) -> list[Any]:
    string = datasets.Value("string")
    return [string, datasets.Sequence(string)] if column.lists else [string]


def scored_rows(spec: MetricSpec, columns: Mapping[str, Sequence[Any] | None]) -> list[ScoredRow]:
    """One ``ScoredRow`` per row of ``columns`` (keyed by column name; options may be None).

    Raises ``MetricInputError`` naming the column and row of a wrong value, or a length that differs
    from the first feature's.
    """
    given = {column.name: columns.get(column.name) for column in spec.columns}
    missing = [column.name for column in spec.features if given[column.name] is None]
    if missing:
        raise MetricInputError(f"missing input(s): {', '.join(missing)}")
    count = len(given[spec.features[0].name] or [])
    for name, values in given.items():
        if values is not None and len(values) != count:
            raise MetricInputError(f"{name} has {len(values)} values for {count} rows")
    return [_row(spec, index, given) for index in range(count)]


def _row(spec: MetricSpec, index: int, given: Mapping[str, Sequence[Any] | None]) -> ScoredRow:
    """Row ``index``: each given, non-empty value in its field (passages joined, accepted answers in
    ``metadata["accept"]``); the rest keep ``ScoredRow``'s defaults (cohort ``DEFAULT_COHORT``)."""
    fields: dict[str, Any] = {"id": str(index), "question": "", "answer": "", "cohort": DEFAULT_COHORT}
    metadata: dict[str, Any] = {}
    for column in spec.columns:
        values = given[column.name]
        value = None if values is None else values[index]
        if value is None or (isinstance(value, str | list | tuple) and not value):
            continue
        where = f"{column.name}[{index}]"
        strings = [_string(item, where) for item in value] if column.lists and _is_list(value) else None
        if column.field == "accept":
            metadata["accept"] = strings if strings is not None else [_string(value, where)]
        elif strings is not None:
            fields[column.field] = PASSAGE_SEPARATOR.join(strings)
        else:
            fields[column.field] = _string(value, where)
    return ScoredRow(**fields, metadata=metadata)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MetricInputError(f"{where} must be a string, got {type(value).__name__} {value!r:.60}")
    return value
