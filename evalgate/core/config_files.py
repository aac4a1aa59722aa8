"""Config files (sweep configs, gate policies, CI jobs): YAML read into frozen pydantic dataclasses that
refuse unknown keys, and pydantic's validation errors told as one line naming the key and its place::

    examples/sweep.yaml: lora.r: must be >= 1, got 0
    policy.yaml: checks[1].margin: must be >= 0, got -1
    unknown key(s) learning_rate (did you mean learning_rates?); known: base_model, batch_size, ...

The shared pieces live here: the pydantic settings of every config dataclass (``CONFIG_FILE``), the
scalar types that take YAML at its word (``Integer``, ``Number``, ``Name``), ``validated`` (plain data
into a config, or the config's error naming every problem) and ``load_yaml`` (the same from a file).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AllowInfNan, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

T = TypeVar("T")
UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
"""pydantic's error types for a key the config does not have (models, dataclasses)."""

CONFIG_FILE = ConfigDict(extra="forbid", use_attribute_docstrings=True)
"""pydantic settings of every config dataclass: an unknown key is an error (a typo must not fall back to
a default silently), and the attribute docstrings describe the fields in the published JSON Schemas."""

Integer = Annotated[int, Strict()]
"""A YAML integer: ``true`` and ``1.0`` are refused, and so is the string ``"8"``."""
Number = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite YAML number (an integer is taken as the float it equals); strings are refused (YAML 1.1
reads ``1e9`` as one: write ``1.0e+9``)."""
Name = Annotated[str, Strict(), Field(min_length=1)]
"""A non-empty string."""
Precision = Literal["auto", "fp32", "bf16", "fp16"]
"""Model precision: auto (bf16 on a GPU that has it and on a CPU with AMX, else fp32), fp32, bf16, fp16."""


class ConfigProblem(ValueError):
    """A rule across several keys, raised inside a model validator; ``key`` (dotted, relative to the
    object being validated) is the place the message is reported at."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def load_yaml(path: Path, build: Callable[[dict[str, Any]], T], error: type[ValueError]) -> T:
    """Parse ``path`` as a YAML mapping and ``build`` an object from it; errors are ``error(path: ...)``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as problem:
        raise error(f"{path}: cannot read YAML: {problem}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of settings at the top level")
    try:
        return build(data)
    except (error, TypeError) as problem:
        raise error(f"{path}: {problem}") from None


def validated(kind: type[T], data: Any, error: type[ValueError]) -> T:
    """``data`` (plain data, as parsed from YAML or JSON) validated into ``kind``; a ``ValidationError``
    becomes ``error`` with ``describe``'s message."""
    try:
        return _adapter(kind).validate_python(data)
    except ValidationError as problem:
        raise error(describe(problem, kind)) from None


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(kind: type) -> TypeAdapter[Any]:
    """pydantic's validator of ``kind``, built once."""
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def describe(problem: ValidationError, kind: Any) -> str:
    """Every error of ``problem`` as ``place: what is wrong`` (``lora.r: must be >= 1, got 0``), joined by
    ``; ``. Unknown keys of one mapping are told together with the keys ``kind`` knows there."""
    lines: list[str | tuple[str | int, ...]] = []
    unknown: dict[tuple[str | int, ...], list[str]] = {}
    for detail in problem.errors():
        loc = tuple(detail["loc"])
        if detail["type"] not in UNKNOWN_KEY:
            lines.append(_located(loc, detail))
            continue
        if loc[:-1] not in unknown:
            unknown[loc[:-1]] = []
            lines.append(loc[:-1])  # where this mapping's unknown keys are told, together
        unknown[loc[:-1]].append(str(loc[-1]))
    return "; ".join(
        line if isinstance(line, str) else _unknown_keys(line, unknown[line], _known_keys(kind, line))
        for line in lines
    )


def _located(loc: tuple[str | int, ...], detail: ErrorDetails) -> str:
    """``place: what is wrong``; a ``ConfigProblem`` is told at its own key below ``loc``."""
    error = detail.get("ctx", {}).get("error")
    if isinstance(error, ConfigProblem):
        return f"{place([*loc, *error.key.split('.')])}: {error.message}"
    return f"{place(loc) or 'config'}: {_what(detail)}"


def place(loc: Sequence[str | int]) -> str:
    """``("checks", 1, "margin")`` -> ``checks[1].margin``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _what(detail: ErrorDetails) -> str:
    """What is wrong, in the words of a config file (pydantic's error types, reworded)."""
    kind, ctx, got = detail["type"], detail.get("ctx", {}), _shown(detail["input"])
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit}, got {got}"
    phrases = {
        "missing": "is required",
        "missing_argument": "is required",
        "int_type": f"must be an integer, got {got}",
        "int_from_float": f"must be an integer, got {got}",
        "float_type": f"must be a number, got {got}",
        "finite_number": f"must be a finite number, got {got}",
        "bool_type": f"must be true or false, got {got}",
        "string_type": f"must be a string, got {got}",
        "string_too_short": "must not be empty",
        "too_short": f"must list at least {ctx.get('min_length')}, got {got}",
        "too_long": f"must list at most {ctx.get('max_length')}, got {got}",
        "literal_error": f"{got} is not one of {ctx.get('expected')}",
        "tuple_type": f"must be a list, got {got}",
        "list_type": f"must be a list, got {got}",
        "dict_type": f"must be a mapping, got {got}",
        "dataclass_type": f"must be a mapping, got {got}",
        "model_type": f"must be a mapping, got {got}",
    }
    if kind in phrases:
        return phrases[kind]
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    return detail["msg"]


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown_keys(parent: tuple[str | int, ...], keys: list[str], known: list[str]) -> str:
    """``unknown key(s) lora.rank; known: alpha, dropout, r, ...`` with a ``did you mean`` per close typo."""
    named = []
    for key in keys:
        close = difflib.get_close_matches(key, known, n=1)
        named.append(place([*parent, key]) + (f" (did you mean {close[0]}?)" if close else ""))
    return f"unknown key(s) {', '.join(named)}" + (f"; known: {', '.join(sorted(known))}" if known else "")


def _known_keys(kind: Any, loc: Sequence[str | int]) -> list[str]:
    """The field names of the dataclass ``kind`` holds at ``loc`` (empty when there is none)."""
    for part in loc:
        kind = _dataclass_in(kind) or kind
        if dataclasses.is_dataclass(kind) and isinstance(part, str):
            kind = typing.get_type_hints(kind, include_extras=True).get(part)
        elif typing.get_origin(_bare(kind)) in (tuple, list):
            kind = typing.get_args(_bare(kind))[0]
        elif typing.get_origin(_bare(kind)) in (dict, Mapping):
            kind = typing.get_args(_bare(kind))[1]
        else:
            return []
    found = _dataclass_in(kind)
    return [item.name for item in dataclasses.fields(found)] if found else []


def _bare(kind: Any) -> Any:
    """``kind`` without ``Annotated`` metadata."""
    while typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    return kind


def _dataclass_in(kind: Any) -> Any:
    """The dataclass ``kind`` is, or the one in its union (``X | None``), else None."""
    kind = _bare(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        found = [_bare(option) for option in typing.get_args(kind)]
        return next((option for option in found if dataclasses.is_dataclass(option)), None)
    return kind if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None
