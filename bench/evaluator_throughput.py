"""Rows per second of every evaluator on the bundled suite with synthetic answers; prints the machine.

    python bench/evaluator_throughput.py            # all eval rows of datasets/suite (350)
    python bench/evaluator_throughput.py --rows 100

Synthetic answers: the reference for target rows (JSON), "The answer is <first accepted string>."
for ood rows, a refusal for safety rows. The MiniLM embedder is loaded once before timing; each
evaluator scores all rows in one ``score`` call (so embedding is batched) after one warm-up row,
then, side by side, one ``score`` call per row (the obvious way to call it), and the ratio is
printed.
"""

from __future__ import annotations

import argparse
import json
import time

from common import machine  # bench/ is on sys.path when run as a script

from evalgate.embeddings import default_embedder
from evalgate.evaluator_factory import RUNNER_BUILT_EVALUATORS, build_evaluator
from evalgate.paths import BUNDLED_SUITE_DIR
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


def main() -> None:
    """Print rows/s and mean score per evaluator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="score only the first N rows")
    args = parser.parse_args()
    rows = suite_rows(args.rows)
    embedder = default_embedder()
    print(f"machine: {machine()}\nrows: {len(rows)} (bundled suite, synthetic answers)")
    for name in registry.names():
        if name in RUNNER_BUILT_EVALUATORS:
            print(f"  {name:<20} (needs the evaluated model; built by the evaluation runner)")
            continue
        evaluator = build_evaluator(name, embedder=embedder)
        evaluator.score(rows[:1])
        started = time.perf_counter()
        results = evaluator.score(rows)
        batched = time.perf_counter() - started
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


if __name__ == "__main__":
    main()
