"""Does answer_relevancy tell a question's own answer from another question's? ROC AUC, balanced accuracy.

    python bench/answer_relevancy_pairs.py
    python bench/answer_relevancy_pairs.py --halueval rows.jsonl --show-errors 10

Pairs built from ``evalgate/data/suite_passages.py``: each question with its own reference answer is
relevant (label 1); the same question with the answer of every other question on the same passage,
and with the answer of a question on another passage of the same topic, is irrelevant (label 0).
Extra check on HaluEval QA (``--halueval``, default ``../shared/data/halueval_qa_dev.jsonl`` relative to
the repository root; skipped with a note when that default is absent, an error when a given file is
missing): each question with its own faithful answer (1) against
the faithful answer of the next question in the file (0). Every pair is scored twice: with the passage
as the row's context, and with no context. The reference is never given: a relevancy score must not
copy the reference match. Printed side by side: the evaluator as it is now and the question-answer
cosine of its version 1 (``clip(cos(e(question), e(answer)), 0, 1)``, what version 1 scored without a
reference), each with ROC AUC and balanced accuracy at the evaluator's default threshold (0.5).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from common import HALUEVAL_QA_DEV, require_file  # bench/ is on sys.path when run as a script
from scipy.stats import rankdata

from evalgate.data.suite_passages import PASSAGES
from evalgate.evaluation.embeddings import Embedder, default_embedder
from evaluators.answer_relevancy import AnswerRelevancy
from evaluators.base import ScoredRow

Pair = tuple[str, str, str, int]
"""(question, answer, context, label)."""
Scorer = Callable[[list[ScoredRow]], list[float]]


def passage_pairs() -> list[Pair]:
    """Own answer (1) vs other answers of the same passage and one of another same-topic passage (0)."""
    by_topic: dict[str, list[int]] = defaultdict(list)
    for index, passage in enumerate(PASSAGES):
        by_topic[passage.topic].append(index)
    pairs: list[Pair] = []
    for index, passage in enumerate(PASSAGES):
        group = by_topic[passage.topic]
        neighbour = PASSAGES[group[(group.index(index) + 1) % len(group)]]
        for k, (question, answer, _) in enumerate(passage.items):
            pairs.append((question, answer, passage.passage, 1))
            pairs.extend((question, other, passage.passage, 0)
                         for j, (_, other, _) in enumerate(passage.items) if j != k)  # fmt: skip
            pairs.append((question, neighbour.items[k % len(neighbour.items)][1], passage.passage, 0))
    return pairs


def halueval_pairs(path: Path) -> list[Pair]:
    """Each question's faithful answer (1) against the next question's faithful answer (0)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    right = [row for row in rows if row["label"] == "faithful"]
    pairs: list[Pair] = []
    for index, row in enumerate(right):
        other = right[(index + 1) % len(right)]
        pairs.append((row["question"], row["answer"], row["context"], 1))
        pairs.append((row["question"], other["answer"], row["context"], 0))
    return pairs


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    y = np.asarray(labels)
    ranks = rankdata(scores)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def balanced_accuracy(labels: Sequence[int], scores: Sequence[float], threshold: float) -> float:
    """Mean of the pass rate of relevant pairs and the fail rate of irrelevant ones."""
    y, passed = np.asarray(labels), np.asarray(scores) >= threshold
    return float((passed[y == 1].mean() + (~passed[y == 0]).mean()) / 2)


def rows_of(pairs: Sequence[Pair], with_context: bool) -> list[ScoredRow]:
    """Scored rows (cohort ood_grounded, no reference), with or without the passage as context."""
    return [ScoredRow(f"pair-{i}", q, a, c if with_context else "", None, "ood_grounded")
            for i, (q, a, c, _) in enumerate(pairs)]  # fmt: skip


def cosine_v1(embedder: Embedder) -> Scorer:
    """Version 1 without a reference: clip(cos(question, answer), 0, 1)."""

    def score(rows: list[ScoredRow]) -> list[float]:
        texts = list(dict.fromkeys(t for row in rows for t in (row.question, row.answer)))
        vectors = dict(zip(texts, embedder.encode(texts), strict=True))
        return [float(np.clip(vectors[r.question] @ vectors[r.answer], 0.0, 1.0)) for r in rows]

    return score


def current(embedder: Embedder) -> Scorer:
    """The registered answer_relevancy evaluator as it is now."""
    evaluator = AnswerRelevancy(embedder)
    return lambda rows: [result.score or 0.0 for result in evaluator.score(rows)]


def report(name: str, pairs: list[Pair], scorers: dict[str, Scorer], show_errors: int) -> None:
    """Print AUC and balanced accuracy of each scorer, with and without context."""
    labels = [pair[3] for pair in pairs]
    print(f"\n{name}: {len(pairs)} pairs ({sum(labels)} relevant)")
    header = ("context", "ROC AUC", "bal.acc", "pass rel", "pass irr")
    print(f"  {'scorer':26s} " + " ".join(f"{title:>8s}" for title in header))
    for with_context in (True, False):
        rows = rows_of(pairs, with_context)
        for scorer_name, scorer in scorers.items():
            scores = scorer(rows)
            passed = np.asarray(scores) >= AnswerRelevancy.threshold
            y = np.asarray(labels) == 1
            print(f"  {scorer_name:26s} {'yes' if with_context else 'no':>8s} {roc_auc(labels, scores):8.3f} "
                  f"{balanced_accuracy(labels, scores, AnswerRelevancy.threshold):8.3f} "
                  f"{passed[y].mean():8.1%} {passed[~y].mean():8.1%}")  # fmt: skip
            if show_errors and scorer_name.startswith("answer_relevancy"):
                wrong = [(p, s) for p, s in zip(pairs, scores, strict=True) if (s >= 0.5) != (p[3] == 1)]
                for (question, answer, _, label), value in wrong[:show_errors]:
                    print(f"      {'rel' if label else 'irr'} {value:.2f} {question!r} -> {answer!r}")


def main() -> None:
    """Build the pairs, score them, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--halueval", type=Path, default=None, help=f"HaluEval QA rows (JSONL; default {HALUEVAL_QA_DEV})"
    )
    parser.add_argument("--show-errors", type=int, default=0, help="print up to N misjudged pairs")
    args = parser.parse_args()
    halueval = HALUEVAL_QA_DEV if args.halueval is None else require_file(parser, args.halueval, "--halueval")
    embedder = default_embedder()
    scorers = {
        f"answer_relevancy v{AnswerRelevancy.version}": current(embedder),
        "cosine (v1, no reference)": cosine_v1(embedder),
    }
    report("suite passages (evalgate/data/suite_passages.py)", passage_pairs(), scorers, args.show_errors)
    if halueval.is_file():
        report(f"HaluEval QA faithful answers ({halueval.name})", halueval_pairs(halueval),
               scorers, args.show_errors)  # fmt: skip
    else:
        print(f"\nHaluEval QA pairs skipped: {halueval} not found (pass --halueval PATH)")


if __name__ == "__main__":
    main()
