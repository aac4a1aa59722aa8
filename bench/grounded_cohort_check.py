"""How well the base model answers an out-of-domain cohort, grounded (``ood_grounded``) or closed book.

    python bench/grounded_cohort_check.py                         # embedded SmolLM2-135M-Instruct
    python bench/grounded_cohort_check.py --max-new-tokens 32 --show-failures 50
    python bench/grounded_cohort_check.py --cohort ood --max-new-tokens 24 --show-failures 50

Builds the cohort's rows with ``evalgate.data.suite.grounded_rows`` or ``ood_rows`` (the rows the suite
file holds),
answers them the way evaluation runs do (``ModelPool`` + ``generate_answers``: the row rendered by
``evalgate.modeling.prompting``, greedy decoding, batched), scores each answer with ``answer_accuracy`` and
prints the share correct, per topic (or question family) and overall, with the failed rows if asked.
The questions of ``evalgate/data/suite_passages.py`` and the subjects of ``OOD_FAMILIES``
(``evalgate/data/suite_vocab.py``) were kept where this check passes: a cohort is meant to hold
questions the base model handles, so that a fine-tune's drop on it is forgetting.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from evalgate.core.settings import get_settings
from evalgate.data.suite import grounded_rows, ood_rows
from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.generation import ModelPool, generate_answers
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL
from evaluators.accept_match import AnswerAccuracy
from evaluators.base import ScoredRow


def main() -> None:
    """Generate, score and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=("ood_grounded", "ood"), default="ood_grounded")
    parser.add_argument("--model", default=EMBEDDED_DEFAULT_MODEL)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--show-failures", type=int, default=0, help="print up to N failed rows")
    args = parser.parse_args()

    rows = grounded_rows() if args.cohort == "ood_grounded" else ood_rows()
    pool = ModelPool(args.model, get_settings().home, device=args.device, precision=args.precision)
    model, tokenizer = pool.load()
    decoding = DecodingSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    start = time.perf_counter()
    answers = generate_answers(model, tokenizer, rows, decoding)
    seconds = time.perf_counter() - start
    scored = [
        ScoredRow(row["id"], row["question"], answer.text, row["context"], row["reference"],
                  row["cohort"], None, row["metadata"])
        for row, answer in zip(rows, answers, strict=True)
    ]  # fmt: skip
    results = AnswerAccuracy().score(scored)

    by_topic: dict[str, list[float]] = defaultdict(list)
    for row, result in zip(rows, results, strict=True):
        metadata = row["metadata"]
        by_topic[metadata.get("topic") or metadata["family"]].append(result.score or 0.0)
    print(f"model {args.model} on {pool.device} ({pool.dtype}), max_new_tokens {args.max_new_tokens}, "
          f"{len(rows)} rows in {seconds:.0f} s")  # fmt: skip
    for topic, values in sorted(by_topic.items()):
        print(f"  {topic:12s} {sum(values) / len(values):6.1%}  ({len(values)} rows)")
    correct = sum(result.score or 0.0 for result in results)
    print(f"answer_accuracy {correct / len(rows):.1%} ({correct:.0f}/{len(rows)})")
    failures = [(s, r) for s, r in zip(scored, results, strict=True) if not r.passed]
    for failed, result in failures[: args.show_failures]:
        accepted = result.detail.get("accepted")
        print(f"- {failed.id} {failed.question!r} -> {failed.answer!r} (accept {accepted})")


if __name__ == "__main__":
    main()
