"""Measure faithfulness and hallucination_score on HaluEval QA: ROC AUC and accuracy at the threshold.

    python bench/faithfulness_halueval.py                      # /work/shared/data/halueval_qa_dev.jsonl
    python bench/faithfulness_halueval.py --data rows.jsonl --show-errors 5

Each row has question, context, answer and label ("faithful" or "hallucinated"); faithful and
hallucinated answers come in pairs on the same question. Rows are split into two halves by a hash of
the question number (both answers of a pair land in the same half): the offline judge was designed
by looking at the "dev" half only; the "test" half is reported as the held-out figure. The default
thresholds were fixed before measuring (0.5 for both), not tuned on these rows.

HaluEval's faithful answers are short spans and its hallucinated ones longer sentences, so answer
length alone separates them well: the script prints that length-only baseline, and the AUC on the
short answers only (<= 3 tokens), where length carries no signal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from evalgate.embeddings import default_embedder
from evaluators import text
from evaluators.base import Evaluator, ScoredRow
from evaluators.faithfulness import Faithfulness
from evaluators.hallucination import HallucinationScore

DEFAULT_DATA = Path("/work/shared/data/halueval_qa_dev.jsonl")
SHORT_ANSWER = 3
"""Answers of at most this many tokens form the length-controlled subset."""


def machine() -> str:
    """CPU, torch threads and GPU, for the record."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} torch threads, {gpu}, torch {torch.__version__}"


def half(row_id: str) -> str:
    """ "dev" or "test": a stable hash of the question number in ``halueval-qa-<n>-<kind>``."""
    question_number = row_id.rsplit("-", 1)[0]
    return "dev" if hashlib.sha256(question_number.encode()).digest()[0] % 2 == 0 else "test"


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    for end in range(1, len(scores) + 1):
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # average 1-based rank of the tie group
            start = end
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(evaluator: Evaluator, rows: Sequence[ScoredRow], labels: np.ndarray) -> dict[str, object]:
    """Scores of ``evaluator`` on ``rows`` with AUC and accuracy for each half and overall."""
    started = time.perf_counter()
    results = evaluator.score(rows)
    seconds = time.perf_counter() - started
    scores = np.array([np.nan if r.score is None else r.score for r in results])
    passed = np.array([bool(r.passed) for r in results])
    halves = np.array([half(row.id) for row in rows])
    # faithful rows should pass; "good" direction: faithful rows score higher (or lower if not hib)
    oriented = scores if evaluator.higher_is_better else -scores
    figures: dict[str, object] = {"rows_per_s": len(rows) / seconds}
    for name, mask in (("dev", halves == "dev"), ("test", halves == "test"), ("all", halves != "")):
        ok = mask & ~np.isnan(scores)
        figures[name] = {
            "n": int(ok.sum()),
            "auc": roc_auc(oriented[ok], labels[ok]),
            "accuracy": float((passed[ok] == labels[ok]).mean()),
        }
    short = np.array([len(text.tokens(row.answer)) <= SHORT_ANSWER for row in rows]) & ~np.isnan(scores)
    figures["short"] = {"n": int(short.sum()), "auc": roc_auc(oriented[short], labels[short])}
    figures["scores"] = scores
    return figures


def length_baseline(rows: Sequence[ScoredRow], labels: np.ndarray) -> dict[str, float]:
    """AUC of "shorter answer = faithful" alone, overall and on short answers: the dataset's length bias."""
    lengths = np.array([len(text.tokens(row.answer)) for row in rows], dtype=float)
    short = lengths <= SHORT_ANSWER
    return {"all": roc_auc(-lengths, labels), "short": roc_auc(-lengths[short], labels[short])}


def main() -> None:
    """Print the figures (and optionally the worst-scored faithful / best-scored hallucinated rows)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--show-errors", type=int, default=0, help="print this many misjudged dev rows")
    args = parser.parse_args()
    raw = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    rows = [ScoredRow(r["id"], r["question"], r["answer"], context=r["context"]) for r in raw]
    labels = np.array([r["label"] == "faithful" for r in raw])
    embedder = default_embedder()
    print(f"machine: {machine()}")
    print(f"data: {args.data} ({len(rows)} rows, {int(labels.sum())} faithful)")
    baseline = length_baseline(rows, labels)
    print(
        f"length-only baseline (shorter = faithful): ROC AUC {baseline['all']:.3f} on all rows, "
        f"{baseline['short']:.3f} on answers of <= {SHORT_ANSWER} tokens"
    )
    for evaluator in (Faithfulness(embedder=embedder), HallucinationScore(embedder=embedder)):
        figures = evaluate(evaluator, rows, labels)
        direction = "higher" if evaluator.higher_is_better else "lower"
        print(f"\n{evaluator.name} (threshold {evaluator.threshold}, {direction} is better)")
        for name in ("dev", "test", "all"):
            f = figures[name]
            assert isinstance(f, dict)
            print(
                f"  {name:>4}: n={f['n']:3d}  ROC AUC {f['auc']:.3f}  accuracy@threshold {f['accuracy']:.3f}"
            )
        short = figures["short"]
        assert isinstance(short, dict)
        print(f"  answers <= {SHORT_ANSWER} tokens: n={short['n']}  ROC AUC {short['auc']:.3f}")
        print(f"  throughput: {figures['rows_per_s']:.1f} rows/s")
        if args.show_errors and evaluator.higher_is_better:
            _show_errors(raw, np.asarray(figures["scores"]), args.show_errors)


def _show_errors(raw: list[dict[str, str]], scores: np.ndarray, count: int) -> None:
    dev = [i for i, r in enumerate(raw) if half(r["id"]) == "dev"]
    faithful = sorted((i for i in dev if raw[i]["label"] == "faithful"), key=lambda i: scores[i])
    hallucinated = sorted((i for i in dev if raw[i]["label"] != "faithful"), key=lambda i: -scores[i])
    for title, picked in (("lowest faithful", faithful), ("highest hallucinated", hallucinated)):
        print(f"  -- {title} (dev) --")
        for i in picked[:count]:
            print(f"  {scores[i]:.2f} Q: {raw[i]['question']}\n       A: {raw[i]['answer']}")


if __name__ == "__main__":
    main()
