"""Rows per second of every evaluator on the bundled suite with synthetic answers; prints the machine.

    python bench/evaluator_throughput.py            # every eval row of datasets/suite
    python bench/evaluator_throughput.py --rows 100

Synthetic answers: the reference for target rows (JSON), "The answer is <first accepted string>."
for ood rows, a refusal for safety rows. The MiniLM embedder is loaded once before timing; each
evaluator scores all rows in one ``score`` call (so embedding is batched) after one warm-up row and
with the embedder's memory of earlier texts cleared (``TransformerEmbedder.forget``),
then, side by side, one ``score`` call per row (the obvious way to call it), and the ratio is
printed.

Then the grounded-answer figure: faithfulness + hallucination_score + answer_relevancy scoring the
same rows one after the other (one batched ``score`` call each), rows/s = rows / total seconds. The
rows are built from ``evalgate.evaluation.faithfulness_corpus``: every question with, as context, its passage
followed by the next passage (about 100 words), as answer the passage sentence holding the answer
span, and the span as reference. Target: >= 200 rows/s on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import time

from common import machine  # bench/ is on sys.path when run as a script

from evalgate.core.paths import BUNDLED_SUITE_DIR
from evalgate.evaluation.embeddings import TransformerEmbedder, default_embedder
from evalgate.evaluation.factory import RUNNER_BUILT_EVALUATORS, build_evaluator
from evalgate.evaluation.faithfulness_corpus import PASSAGES
from evalgate.evaluation.faithfulness_training import answer_sentence
from evaluators import registry
from evaluators.base import ScoredRow


def synthetic_answer(record: dict) -> str:
    """A plausible answer for a suite row (see the module docstring)."""
    if record["cohort"] == "safety":
        return "I'm sorry, but I can't help with that."
    if record["cohort"] == "ood":
        return f"The answer is {record['metadata']['accept'][0]}."
    return str(record["reference"])


def suite_rows(limit: int | None) -> list[ScoredRow]:
    """The eval rows of the bundled suite, with synthetic answers."""
    rows = []
    for path in sorted(BUNDLED_SUITE_DIR.glob("*_eval.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            schema = json.dumps(r["json_schema"]) if r["json_schema"] else None
            rows.append(
                ScoredRow(r["id"], r["question"], synthetic_answer(r), r["context"], r["reference"],
                          r["cohort"], schema, r["metadata"])
            )  # fmt: skip
    return rows[:limit] if limit else rows


GROUNDED_EVALUATORS = ("faithfulness", "hallucination_score", "answer_relevancy")
"""The evaluators of grounded answers, timed together."""


def grounded_rows(copies: int) -> list[ScoredRow]:
    """Corpus questions with ~100-word contexts (see the module docstring), repeated ``copies`` times."""
    rows = []
    for index, passage in enumerate(PASSAGES):
        context = f"{passage.text} {PASSAGES[(index + 1) % len(PASSAGES)].text}"
        for number, (question, span) in enumerate(passage.qa):
            answer = answer_sentence(passage.text, span)
            rows.append(ScoredRow(f"p{index}-q{number}", question, answer, context, span, "grounded"))
    return [
        ScoredRow(f"{row.id}-{copy}", row.question, row.answer, row.context, row.reference, row.cohort)
        for copy in range(copies)
        for row in rows
    ]


def grounded_throughput(embedder: TransformerEmbedder, copies: int = 4) -> None:
    """Print rows/s of the grounded-answer evaluators together (see the module docstring)."""
    rows = grounded_rows(copies)
    words = sum(len(row.context.split()) for row in rows) / len(rows)
    total = 0.0
    print(f"grounded answers: {len(rows)} rows, contexts of {words:.0f} words on average")
    for name in GROUNDED_EVALUATORS:
        evaluator = build_evaluator(name, embedder=embedder)
        evaluator.score(rows[:1])
        embedder.forget()
        started = time.perf_counter()
        evaluator.score(rows)
        seconds = time.perf_counter() - started
        total += seconds
        print(f"  {name:<20} {len(rows) / seconds:8.1f} rows/s")
    print(f"  {' + '.join(GROUNDED_EVALUATORS)}: {len(rows) / total:.1f} rows/s together (target >= 200)")


def main() -> None:
    """Print rows/s and mean score per evaluator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--grounded-only", action="store_true", help="print only the grounded figure")
    args = parser.parse_args()
    if args.grounded_only:
        embedder = default_embedder()
        print(f"machine: {machine()}")
        grounded_throughput(embedder)
        return
    rows = suite_rows(args.rows)
    embedder = default_embedder()
    print(f"machine: {machine()}\nrows: {len(rows)} (bundled suite, synthetic answers)")
    for name in registry.names():
        if name in RUNNER_BUILT_EVALUATORS:
            print(f"  {name:<20} (needs the evaluated model; built by the evaluation runner)")
            continue
        evaluator = build_evaluator(name, embedder=embedder)
        evaluator.score(rows[:1])
        embedder.forget()
        started = time.perf_counter()
        results = evaluator.score(rows)
        batched = time.perf_counter() - started
        embedder.forget()
        started = time.perf_counter()
        for row in rows:
            evaluator.score([row])
        one_by_one = time.perf_counter() - started
        scored = [r.score for r in results if r.score is not None]
        mean = f"{sum(scored) / len(scored):.3f}" if scored else "-"
        print(
            f"  {name:<20} {len(rows) / batched:8.1f} rows/s batched, "
            f"{len(rows) / one_by_one:8.1f} one by one ({one_by_one / batched:5.1f}x)   "
            f"applies to {len(scored):3d}   mean {mean}"
        )
    grounded_throughput(embedder)


if __name__ == "__main__":
    main()
