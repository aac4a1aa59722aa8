"""``evalgate score``: score a JSONL file of answers with one evaluator, no database involved.

    evalgate score --evaluator faithfulness --input rows.jsonl --output scored.jsonl

Each input line is a JSON object with ``question``, ``context`` and ``answer`` (text), and optionally
``reference`` (text, or an object/list stored as JSON text), ``json_schema`` (an object or JSON text),
``cohort`` (default "target"), ``id`` (default the line number) and ``metadata`` (an object). Each
output line is the input object plus ``score``, ``passed`` (at the evaluator's default threshold;
both null when the evaluator does not apply to the row) and ``detail``. A one-line summary gives the
mean score and pass rate over the rows it applies to. Bad input names the file and line; exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from evaluators.base import Evaluator, RowScore, ScoredRow

EXIT_USER_ERROR = 2
console = Console()
errors = Console(stderr=True)


class ScoreInputError(ValueError):
    """A bad input file or line: the message names the file and line."""


def score(
    evaluator: Annotated[str, typer.Option("--evaluator", "-e", help="Evaluator name (see the registry).")],
    input: Annotated[
        Path, typer.Option("--input", help="JSONL with question, context, answer[, reference].")
    ],
    output: Annotated[Path, typer.Option("--output", help="Where to write the scored JSONL.")],
) -> None:
    """Score every row of a JSONL file with one evaluator and write rows with score, passed, detail."""
    from evalgate.evaluation.factory import EvaluatorNeedsModelError, build_evaluator
    from evaluators.registry import UnknownEvaluatorError

    try:
        records = read_records(input)
        built = build_evaluator(evaluator)
        results = built.score([scored_row(record, input, line) for line, record in records])
    except (ScoreInputError, EvaluatorNeedsModelError) as error:
        _fail(str(error))
    except UnknownEvaluatorError as error:
        _fail(str(error.args[0]))
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for (_, record), result in zip(records, results, strict=True):
            handle.write(json.dumps(scored_record(record, result), ensure_ascii=False) + "\n")
    console.print(summary(built, results, output), highlight=False, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USER_ERROR)


def read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; ``ScoreInputError`` otherwise."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ScoreInputError(f"{path}: cannot read: {error}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ScoreInputError(f"{path}: line {number}: not valid JSON: {error.msg}") from None
        if not isinstance(value, dict):
            raise ScoreInputError(
                f"{path}: line {number}: expected a JSON object, got {type(value).__name__}"
            )
        records.append((number, value))
    if not records:
        raise ScoreInputError(f"{path}: no rows")
    return records


def scored_row(record: Mapping[str, Any], path: Path, line: int) -> ScoredRow:
    """The ``ScoredRow`` of one input object; ``ScoreInputError`` names the file, line and field."""

    def text(field: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = record.get(field)
        if value is None:
            if required:
                raise ScoreInputError(f"{path}: line {line}: field '{field}': required but missing")
            return default
        if isinstance(value, dict | list) and field in ("reference", "json_schema"):
            return json.dumps(value, ensure_ascii=False)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ScoreInputError(f"{path}: line {line}: field '{field}': expected text")
        return str(value)

    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ScoreInputError(f"{path}: line {line}: field 'metadata': expected a JSON object")
    return ScoredRow(
        id=text("id", default=str(line)) or str(line),
        question=text("question", required=True) or "",
        answer=text("answer", required=True) or "",
        context=text("context", default="") or "",
        reference=text("reference"),
        cohort=text("cohort", default="target") or "target",
        json_schema=_schema_text(text("json_schema"), path, line),
        metadata=metadata,
    )


def _schema_text(value: str | None, path: Path, line: int) -> str | None:
    if value is None:
        return None
    try:
        schema = json.loads(value)
    except json.JSONDecodeError:
        raise ScoreInputError(f"{path}: line {line}: field 'json_schema': not valid JSON") from None
    if not isinstance(schema, dict):
        raise ScoreInputError(f"{path}: line {line}: field 'json_schema': expected a JSON object")
    return value


def scored_record(record: Mapping[str, Any], result: RowScore) -> dict[str, Any]:
    """The input object plus ``score``, ``passed`` and ``detail``."""
    return {**record, "score": result.score, "passed": result.passed, "detail": dict(result.detail)}


def summary(evaluator: Evaluator, results: list[RowScore], output: Path) -> str:
    """One line: rows scored, mean, pass rate, threshold and direction, where the rows went."""
    scores = [r.score for r in results if r.score is not None]
    skipped = len(results) - len(scores)
    direction = "higher" if evaluator.higher_is_better else "lower"
    head = f"{evaluator.name}: {len(scores)} rows scored" + (
        f" ({skipped} not applicable)" if skipped else ""
    )
    if not scores:
        return f"{head}; nothing to average -> {output}"
    passed = sum(bool(r.passed) for r in results if r.score is not None)
    return (
        f"{head}, mean {sum(scores) / len(scores):.3f}, pass rate {passed / len(scores):.1%} "
        f"(threshold {evaluator.threshold:g}, {direction} is better) -> {output}"
    )
