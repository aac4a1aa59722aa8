"""The normalised row schema of every dataset version, and the validation that gets rows there.

A stored row has exactly these fields (all strings, ``reference`` and ``json_schema`` may be null):

    id           unique within the version (across splits)
    question     the prompt; input files may call it ``input``, ``prompt`` or ``instruction``
    context      supporting text, "" when none
    reference    the expected answer; objects/lists are stored as compact JSON text
    cohort       target, ood, ood_grounded, safety, or a user label ([a-z0-9_-], starting with a
                 letter or digit)
    split        train, validation, eval or test
    json_schema  a JSON Schema (as JSON text) the answer must satisfy, or null
    metadata     a JSON object (as JSON text); unknown input columns land here
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import datasets
from jsonschema import SchemaError
from jsonschema.validators import validator_for

FIELDS = ("id", "question", "context", "reference", "cohort", "split", "json_schema", "metadata")
Split = Literal["train", "validation", "eval", "test"]
SPLITS: tuple[str, ...] = get_args(Split)
KNOWN_COHORTS = ("target", "ood", "ood_grounded", "safety")
COHORT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
ALIASES = {
    "question": ("input", "prompt", "instruction"),
    "reference": ("expected", "expected_output", "ground_truth"),
}
REQUIRED = ("id", "question")

Fail = Callable[[str, str], "DatasetInputError"]
"""Builds the error for (field, message) at the row being normalised."""

FEATURES = datasets.Features({name: datasets.Value("string") for name in FIELDS})
"""Arrow schema of every stored split."""


class DatasetInputError(ValueError):
    """Bad input, naming the file, the place in it and the field: ``file: line 3: field 'id': ...``."""

    def __init__(self, source: str, message: str, *, where: str | None = None, field: str | None = None):
        self.source, self.where, self.field, self.message = source, where, field, message
        parts = [source] + ([where] if where else []) + ([f"field {field!r}"] if field else [])
        super().__init__(": ".join([*parts, message]))


@dataclass(frozen=True)
class RowDefaults:
    """Values for rows that do not carry a cohort or split of their own."""

    cohort: str = "target"
    split: str = "eval"
    max_field_chars: int = 100_000

    def __post_init__(self) -> None:
        _check_cohort(self.cohort, lambda msg: ValueError(f"--cohort: {msg}"))
        if self.split not in SPLITS:
            raise ValueError(f"--split: unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")


def missing_columns(columns: Iterable[str]) -> list[str]:
    """Required fields that no column (or alias) of ``columns`` provides."""
    present = set(columns)
    return [name for name in REQUIRED if name not in present and not present & set(ALIASES.get(name, ()))]


def normalise_row(raw: Any, defaults: RowDefaults, source: str, where: str) -> dict[str, str | None]:
    """Validate one input record and return it in the stored schema; raise ``DatasetInputError``."""
    if not isinstance(raw, Mapping):
        raise DatasetInputError(source, f"expected a JSON object, got {type(raw).__name__}", where=where)

    def fail(field: str, message: str) -> DatasetInputError:
        return DatasetInputError(source, message, where=where, field=field)

    record = _apply_aliases(dict(raw), fail)
    row: dict[str, str | None] = {
        "id": _required_text(record.pop("id", None), "id", fail),
        "question": _required_text(record.pop("question", None), "question", fail),
        "context": _optional_text(record.pop("context", None), "context", fail) or "",
        "reference": _optional_text(record.pop("reference", None), "reference", fail),
        "cohort": _cohort(record.pop("cohort", None), defaults.cohort, fail),
        "split": _split(record.pop("split", None), defaults.split, fail),
        "json_schema": _json_schema(record.pop("json_schema", None), fail),
    }
    metadata = _json_object(record.pop("metadata", None), "metadata", fail)
    metadata.update({key: value for key, value in record.items() if key is not None})
    row["metadata"] = _metadata_json(metadata, fail)
    for field in ("id", "question", "context", "reference"):
        if len(row[field] or "") > defaults.max_field_chars:
            raise fail(field, f"longer than the limit of {defaults.max_field_chars} characters")
    for field, text in row.items():
        _check_unicode(text or "", field, fail)
    return row


def _check_unicode(text: str, field: str, fail: Fail) -> None:
    """Refuse text that UTF-8 cannot encode: a lone surrogate, which JSON's ``\\ud800`` escapes can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise fail(field, f"not valid Unicode: lone surrogate U+{ord(text[error.start]):04X}") from None


def _metadata_json(metadata: dict[str, Any], fail: Fail) -> str:
    """Metadata as JSON text; a value JSON cannot hold (a timestamp, bytes) is an error naming its field."""
    for key, value in metadata.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise fail(
                str(key), f"value of type {type(value).__name__} cannot be stored as JSON metadata"
            ) from None
        except RecursionError:
            raise fail(str(key), "nested too deeply to be stored as JSON metadata") from None
        _check_unicode(json.dumps({key: value}, ensure_ascii=False), str(key), fail)
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False)


def _apply_aliases(record: dict[str, Any], fail: Fail) -> dict[str, Any]:
    for field, aliases in ALIASES.items():
        given = [name for name in (field, *aliases) if record.get(name) not in (None, "")]
        if len(given) > 1:
            raise fail(field, f"given more than once (as {', '.join(given)})")
        for alias in aliases:
            if alias in record:
                value = record.pop(alias)
                if value not in (None, ""):
                    record[field] = value
    return record


def _required_text(value: Any, field: str, fail: Fail) -> str:
    text = _optional_text(value, field, fail)
    if text is None or not text.strip():
        raise fail(field, "required but missing or empty")
    return text


def _optional_text(value: Any, field: str, fail: Fail) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN from CSV/Parquet
        return None
    if isinstance(value, bool):
        raise fail(field, f"expected text, got a boolean ({value})")
    if isinstance(value, str | int | float):
        return str(value)
    if field == "reference" and isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    raise fail(field, f"expected text, got {type(value).__name__}")


def _check_cohort(value: str, on_error: Callable[[str], Exception]) -> None:
    if not COHORT_PATTERN.match(value):
        raise on_error(f"invalid cohort {value!r}: use lower-case letters, digits, '_' or '-' (max 100)")


def _cohort(value: Any, default: str, fail: Fail) -> str:
    cohort = _optional_text(value, "cohort", fail) or default
    _check_cohort(cohort, lambda message: fail("cohort", message))
    return cohort


def _split(value: Any, default: str, fail: Fail) -> str:
    split = _optional_text(value, "split", fail) or default
    if split not in SPLITS:
        raise fail("split", f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def _json_object(value: Any, field: str, fail: Fail) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise fail(field, f"not valid JSON: {error.msg} at char {error.pos}") from None
        except RecursionError:
            raise fail(field, "not valid JSON: nested too deeply") from None
        except ValueError as error:  # an integer of over 4300 digits
            raise fail(field, f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise fail(field, f"expected a JSON object, got {type(value).__name__}")
    return value


def _json_schema(value: Any, fail: Fail) -> str | None:
    schema = _json_object(value, "json_schema", fail)
    if not schema:
        return None
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as error:
        raise fail("json_schema", f"not a valid JSON Schema: {error.message}") from None
    except RecursionError:
        raise fail("json_schema", "not a valid JSON Schema: nested too deeply to check") from None
    return json.dumps(schema, sort_keys=True, ensure_ascii=False)
