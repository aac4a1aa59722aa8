"""Faithfulness and hallucination_score on HaluEval QA: ROC AUC, length-matched AUROC, balanced accuracy.

    python bench/faithfulness_halueval.py                      # ../shared/data/halueval_qa_dev.jsonl
    python bench/faithfulness_halueval.py --data rows.jsonl --show-errors 5

The default file is ``../shared/data/halueval_qa_dev.jsonl`` relative to the repository root (beside
the checkout, not in it); a missing file is an error that names the path. Each row has question,
context, answer and label ("faithful" or "hallucinated"); the two answers of a question come in pairs.
Rows are split into halves by a hash of the question number (a pair stays together): the default
threshold was chosen on the "dev" half; "test" is the held-out figure. The evaluators' weights were
fitted on the project's own perturbed passages (``python -m evalgate.evaluation.faithfulness_training``),
never on this file.

Figures, each for the dev half, the test half and all rows:
- ROC AUC: P(a random faithful row scores better than a random hallucinated row), ties count 1/2.
- length-matched AUROC: HaluEval's faithful answers are short spans and its hallucinated ones longer
  sentences, so length alone separates them. Rows are put in strata of equal answer length (the
  number of word tokens); the AUROC is computed inside each stratum holding both labels and averaged
  with weights = (faithful rows x hallucinated rows) of the stratum, i.e. only pairs of equal length
  are compared. Answer length alone therefore gives exactly 0.5 (printed as a check).
- balanced accuracy at the evaluator's default threshold: mean of the pass rate of faithful rows and
  the fail rate of hallucinated rows.
Beside them, the bare new-word overlap: the share of the answer's content words that the question
does not contain and the context does (1 when the answer adds no word to the question).

Second check, on hallucinations this project generates: for every question, its faithful answer
against one hallucinated answer made from that faithful answer and the context by
``evalgate.evaluation.faithfulness_training.perturb`` (seed ``GENERATED_SEED``, not the training seed; the
passages are this file's contexts, never seen in training): a name or number swapped for another of
the context or of another context, a negation, an unsupported clause, another name as a short answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import HALUEVAL_QA_DEV, machine, require_file  # bench/ is on sys.path when run as a script

from evalgate.evaluation.faithfulness_training import perturb
from evaluators import text
from evaluators.base import Evaluator, ScoredRow
from evaluators.faithfulness import Faithfulness
from evaluators.hallucination import HallucinationScore

GENERATED_SEED = 90210
"""Seed of the generated hallucinations (training uses ``faithfulness_training.SEED``)."""


def half(row_id: str) -> str:
    """ "dev" or "test": a stable hash of the question number in ``halueval-qa-<n>-<kind>``."""
    question_number = row_id.rsplit("-", 1)[0]
    return "dev" if hashlib.sha256(question_number.encode()).digest()[0] % 2 == 0 else "test"


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def length_matched_auroc(scores: np.ndarray, positive: np.ndarray, lengths: np.ndarray) -> float:
    """AUROC within strata of equal answer length, weighted by positive x negative pairs (see module)."""
    total, weight = 0.0, 0
    for length in np.unique(lengths):
        mask = lengths == length
        pairs = int(positive[mask].sum()) * int((~positive[mask]).sum())
        if pairs:
            total += roc_auc(scores[mask], positive[mask]) * pairs
            weight += pairs
    return total / weight if weight else float("nan")


def balanced_accuracy(passed: np.ndarray, positive: np.ndarray) -> float:
    """Mean of the pass rate of positives and the fail rate of negatives."""
    return float((passed[positive].mean() + (~passed[~positive]).mean()) / 2)


def new_word_overlap(row: ScoredRow) -> float:
    """Share of the answer's content words absent from the question that the context holds."""
    new = text.content_tokens(row.answer) - text.content_tokens(row.question)
    return len(new & text.content_tokens(row.context)) / len(new) if new else 1.0


def generated_rows(raw: Sequence[dict[str, str]]) -> tuple[list[ScoredRow], np.ndarray]:
    """Each faithful row beside one hallucination generated from it (see the module docstring)."""
    rng = random.Random(GENERATED_SEED)
    faithful = [r for r in raw if r["label"] == "faithful"]
    contexts = [r["context"] for r in faithful]
    rows, labels = [], []
    for index, r in enumerate(faithful):
        others = contexts[:index] + contexts[index + 1 :]
        made = [e for e in perturb(r["question"], r["answer"], r["context"], others, rng) if not e.label]
        pair = (r["answer"], rng.choice(made).answer) if made else (r["answer"],)
        for kind, answer in zip(("right", "halluc"), pair, strict=False):
            row_id = r["id"].rsplit("-", 1)[0] + f"-{kind}"
            rows.append(ScoredRow(row_id, r["question"], answer, context=r["context"]))
            labels.append(kind == "right")
    return rows, np.array(labels)


def figures(scores: np.ndarray, passed: np.ndarray, rows: Sequence[ScoredRow], labels: np.ndarray) -> str:
    """One line per half: n, ROC AUC, length-matched AUROC, balanced accuracy."""
    halves = np.array([half(row.id) for row in rows])
    lengths = np.array([len(text.tokens(row.answer)) for row in rows])
    lines = []
    for name in ("dev", "test", "all"):
        mask = (halves == name) | (name == "all")
        s, y, n = scores[mask], labels[mask], int(mask.sum())
        lines.append(
            f"  {name:>4}: n={n:3d}  ROC AUC {roc_auc(s, y):.3f}  length-matched "
            f"{length_matched_auroc(s, y, lengths[mask]):.3f}  "
            f"balanced acc {balanced_accuracy(passed[mask], y):.3f}"
        )
    return "\n".join(lines)


def report(
    title: str, rows: Sequence[ScoredRow], labels: np.ndarray, evaluators: Sequence[Evaluator]
) -> None:
    """Print the figures of the baselines and of each evaluator on ``rows``."""
    print(f"\n=== {title}: {len(rows)} rows, {int(labels.sum())} faithful")
    lengths = np.array([len(text.tokens(row.answer)) for row in rows], dtype=float)
    print("length alone (shorter = faithful; passes at <= 3 tokens)")
    print(figures(-lengths, lengths <= 3, rows, labels))
    overlap = np.array([new_word_overlap(row) for row in rows])
    print("bare new-word overlap (passes at >= 0.5)")
    print(figures(overlap, overlap >= 0.5, rows, labels))
    for evaluator in evaluators:
        started = time.perf_counter()
        results = evaluator.score(rows)
        rate = len(rows) / (time.perf_counter() - started)
        raw = np.array([np.nan if r.score is None else r.score for r in results])
        scores = raw if evaluator.higher_is_better else -raw
        passed = np.array([bool(r.passed) for r in results])
        direction = "higher" if evaluator.higher_is_better else "lower"
        print(f"{evaluator.name} v{evaluator.version} (threshold {evaluator.threshold}, "
              f"{direction} is better, {rate:.0f} rows/s)")  # fmt: skip
        print(figures(scores, passed, rows, labels))


def main() -> None:
    """Print the figures on the file and on the generated hallucinations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HALUEVAL_QA_DEV, help="HaluEval QA rows (JSONL)")
    parser.add_argument("--show-errors", type=int, default=0, help="print this many misjudged dev rows")
    args = parser.parse_args()
    require_file(parser, args.data, "--data")
    raw = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    rows = [ScoredRow(r["id"], r["question"], r["answer"], context=r["context"]) for r in raw]
    labels = np.array([r["label"] == "faithful" for r in raw])
    evaluators = (Faithfulness(), HallucinationScore())
    print(f"machine: {machine()}\ndata: {args.data}")
    report("HaluEval QA file", rows, labels, evaluators)
    generated, generated_labels = generated_rows(raw)
    report(f"the file's faithful answers against generated hallucinations (seed {GENERATED_SEED})",
           generated, generated_labels, evaluators)  # fmt: skip
    if args.show_errors:
        _show_errors(rows, labels, evaluators[0], args.show_errors)


def _show_errors(rows: Sequence[ScoredRow], labels: np.ndarray, evaluator: Evaluator, count: int) -> None:
    results = evaluator.score(rows)
    dev = [i for i, row in enumerate(rows) if half(row.id) == "dev"]
    score = {i: results[i].score or 0.0 for i in dev}
    faithful = sorted((i for i in dev if labels[i]), key=lambda i: score[i])
    hallucinated = sorted((i for i in dev if not labels[i]), key=lambda i: -score[i])
    for title, picked in (("lowest faithful", faithful), ("highest hallucinated", hallucinated)):
        print(f"  -- {title} (dev) --")
        for i in picked[:count]:
            print(f"  {score[i]:.2f} Q: {rows[i].question}\n       A: {rows[i].answer}")


if __name__ == "__main__":
    main()
