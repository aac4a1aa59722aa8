"""python -m evalgate.data.suite datasets/suite [--seed 0]

Generate the bundled evaluation suite: the default data a sweep trains on and the gate evaluates.

Files (JSON lines, one row per line, sorted keys, UTF-8, "\\n" line endings; byte-for-byte the same
for the same seed and vocabulary):

- ``target_train.jsonl`` / ``target_eval.jsonl`` (cohort ``target``): extract a customer order from a
  free-text message as JSON. The reference is ``json.dumps`` of the object with the keys in the fixed
  order name, city, item, color, quantity (default separators, ``quantity`` an integer, ``item`` the
  singular catalogue noun, ``color`` lower-case); ``json_schema`` is the draft 2020-12 schema the answer
  must satisfy (item and color are enums of the catalogue, so "vases" or "Red" fail validation).
  Eval rows use (first name, city) pairs that never occur in train, built from the same words.
- ``replay_train.jsonl`` (cohort ``replay``): short general instructions mixed into training so that
  the fine-tune does not turn every answer into JSON. None is asked in the ood cohort.
- ``ood_eval.jsonl`` (cohort ``ood``): short factual questions from families the base model handles
  (capitals, languages, currencies, plurals, opposites, the countries of cities); ``metadata.accept``
  lists lower-case strings, any of which appearing in an answer (case-insensitive, on word
  boundaries) makes it correct.
- ``ood_grounded_eval.jsonl`` (cohort ``ood_grounded``): grounded out-of-domain questions. The
  context is a short passage (3 to 6 sentences on science, history, geography or an everyday how-to,
  ``evalgate/data/suite_passages.py``), the question is answerable from it, the reference is a short
  answer and ``metadata.accept`` lists the accepted lower-case strings (as in ``ood``); metadata also
  names the topic and the passage's number, and ``prompt_layout: context_first`` has the prompt
  give the passage first and then ask the question about it (``evalgate.modeling.prompting``). Several
  questions share a passage. As for ``ood``, the questions
  were chosen among those the base model answers from the passage (``bench/grounded_cohort_check.py``),
  so that a fine-tune's drop here is forgetting, not a question that was never answered.
- ``safety_eval.jsonl`` (cohort ``safety``): harmful requests that should be refused; no reference.
- ``safety_train.jsonl`` (cohort ``safety``, split train): other harmful requests answered with a
  refusal, mixed into training so that the fine-tune keeps refusing; none is a safety eval prompt.
- ``manifest.json``: name, generator, seed and, per file, cohort, split, row count and sha256.

Every row has exactly the keys id, question, context, reference, cohort, split, json_schema, metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgate.core.row_format import CONTEXT_FIRST
from evalgate.data import suite_passages
from evalgate.data import suite_vocab as vocab

SUITE_NAME = "evalgate-suite"
DEFAULT_SEED = 0
TARGET_TRAIN_ROWS = 320
TARGET_EVAL_ROWS = 100
HELD_OUT_MODULUS = 5
"""A (first name, city) pair is held out for eval when their indices agree modulo this number."""

ORDER_KEYS = ("name", "city", "item", "color", "quantity")
NAME_PATTERN = r"^[A-Z][a-z]+ [A-Z][a-z]+$"
"""A customer name is a first name and a surname, each capitalised."""
ORDER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "city": {"type": "string", "minLength": 1},
        "item": {"enum": [singular for singular, _ in vocab.ITEMS]},
        "color": {"enum": list(vocab.COLORS)},
        "quantity": {"type": "integer", "minimum": 1},
    },
    "required": list(ORDER_KEYS),
    "additionalProperties": False,
}

Row = dict[str, Any]


@dataclass(frozen=True)
class Order:
    """One customer order: the fields the target task extracts."""

    name: str
    city: str
    item: str
    color: str
    quantity: int

    def reference(self) -> str:
        """The canonical answer: JSON with the keys in ``ORDER_KEYS`` order."""
        return json.dumps({key: getattr(self, key) for key in ORDER_KEYS}, ensure_ascii=False)


def make_row(
    row_id: str,
    question: str,
    *,
    cohort: str,
    split: str,
    context: str = "",
    reference: str | None = None,
    json_schema: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Row:
    """Build a row in the store's normalised schema."""
    return {
        "id": row_id,
        "question": question,
        "context": context,
        "reference": reference,
        "cohort": cohort,
        "split": split,
        "json_schema": json_schema,
        "metadata": metadata or {},
    }


def is_held_out(first_index: int, city_index: int) -> bool:
    """Whether a (first name, city) pair is reserved for the eval split."""
    return (first_index - city_index) % HELD_OUT_MODULUS == 0


def sample_order(rng: random.Random, held_out: bool) -> Order:
    """Draw an order whose (first name, city) pair is held out iff ``held_out``."""
    while True:
        first = rng.randrange(len(vocab.FIRST_NAMES))
        city = rng.randrange(len(vocab.CITIES))
        if is_held_out(first, city) == held_out:
            break
    name = f"{vocab.FIRST_NAMES[first]} {rng.choice(vocab.SURNAMES)}"
    item = rng.choice(vocab.ITEMS)[0]
    quantity = rng.randint(1, vocab.MAX_QUANTITY)
    return Order(name, vocab.CITIES[city], item, rng.choice(vocab.COLORS), quantity)


def order_phrase(rng: random.Random, order: Order) -> tuple[str, str]:
    """Write the quantity, colour and item in words, e.g. "three red mugs"; return (phrase, form)."""
    singular, plural = next(pair for pair in vocab.ITEMS if pair[0] == order.item)
    noun = singular if order.quantity == 1 else plural
    form = rng.choice(("digits", "words"))
    amount = str(order.quantity) if form == "digits" else vocab.NUMBER_WORDS[order.quantity]
    if order.quantity == 1 and form == "words" and rng.random() < 0.5:
        form, amount = "article", "an" if order.color[0] in "aeiou" else "a"
    elif order.quantity == 12 and form == "words" and rng.random() < 0.5:
        form, amount = "dozen", "a dozen"
    if rng.random() < 0.3:
        return f"{amount} {noun} in {order.color}", form
    return f"{amount} {order.color} {noun}", form


def order_message(rng: random.Random, order: Order) -> tuple[str, dict[str, Any]]:
    """Write a customer message for ``order``; return it with metadata describing its shape."""
    template = rng.randrange(len(vocab.ORDER_TEMPLATES))
    phrase, form = order_phrase(rng, order)
    body = vocab.ORDER_TEMPLATES[template].format(name=order.name, city=order.city, order=phrase)
    parts = [body]
    if rng.random() < 0.4:
        parts.insert(0, rng.choice(vocab.OPENERS))
    if rng.random() < 0.4:
        parts.append(rng.choice(vocab.CLOSERS))
    metadata = {"template": template, "quantity_form": form, "chit_chat": len(parts) > 1}
    return " ".join(parts), metadata


def target_rows(rng: random.Random, split: str, count: int, seen: set[str]) -> list[Row]:
    """Draw ``count`` order-extraction rows whose messages are not in ``seen`` (which is updated)."""
    held_out = split == "eval"
    rows: list[Row] = []
    while len(rows) < count:
        order = sample_order(rng, held_out)
        message, metadata = order_message(rng, order)
        if message in seen:
            continue
        seen.add(message)
        rows.append(
            make_row(
                f"target-{split}-{len(rows):04d}",
                rng.choice(vocab.INSTRUCTIONS),
                cohort="target",
                split=split,
                context=message,
                reference=order.reference(),
                json_schema=ORDER_SCHEMA,
                metadata={**metadata, "held_out_pair": held_out},
            )
        )
    return rows


def ood_rows() -> list[Row]:
    """One row per (family, subject) in ``OOD_FAMILIES``, with the accepted answers in metadata."""
    rows: list[Row] = []
    for family, (question, reference, items) in vocab.OOD_FAMILIES.items():
        for subject, answer, extras in items:
            accept = list(dict.fromkeys(text.lower() for text in (answer, *extras)))
            rows.append(
                make_row(
                    f"ood-eval-{len(rows):04d}",
                    question.format(x=subject),
                    cohort="ood",
                    split="eval",
                    reference=reference.format(x=subject, a=answer),
                    metadata={"family": family, "accept": accept},
                )
            )
    return rows


def grounded_rows() -> list[Row]:
    """One row per question of ``suite_passages.PASSAGES``: the passage is the context."""
    rows: list[Row] = []
    for number, passage in enumerate(suite_passages.PASSAGES):
        for question, answer, accept in passage.items:
            rows.append(
                make_row(
                    f"ood-grounded-eval-{len(rows):04d}",
                    question,
                    cohort="ood_grounded",
                    split="eval",
                    context=passage.passage,
                    reference=answer,
                    metadata={
                        "topic": passage.topic,
                        "passage": number,
                        "accept": list(accept),
                        "prompt_layout": CONTEXT_FIRST,
                    },
                )
            )
    return rows


def replay_rows() -> list[Row]:
    """The general-instruction rows mixed into training."""
    return [
        make_row(f"replay-train-{i:04d}", question, cohort="replay", split="train", reference=answer)
        for i, (question, answer) in enumerate(vocab.REPLAY_ROWS)
    ]


def safety_rows() -> list[Row]:
    """Harmful requests, each tagged with its category; the expected behaviour is a refusal.

    ``SAFETY_PROMPTS`` come first (ids 0-49 keep their prompts), then ``SAFETY_PROMPTS_MORE``.
    """
    prompts = [
        (category, p)
        for prompt_groups in (vocab.SAFETY_PROMPTS, vocab.SAFETY_PROMPTS_MORE)
        for category, group in prompt_groups.items()
        for p in group
    ]
    return [
        make_row(f"safety-eval-{i:04d}", prompt, cohort="safety", split="eval", metadata={"category": c})
        for i, (c, prompt) in enumerate(prompts)
    ]


def safety_train_rows() -> list[Row]:
    """Harmful requests (none of them an eval prompt) answered with a refusal, mixed into training."""
    return [
        make_row(f"safety-train-{i:04d}", prompt, cohort="safety", split="train",
                 reference=vocab.REFUSALS[i % len(vocab.REFUSALS)])
        for i, prompt in enumerate(vocab.SAFETY_TRAIN_PROMPTS)
    ]  # fmt: skip


def build_suite(seed: int = DEFAULT_SEED) -> dict[str, list[Row]]:
    """All rows of the suite keyed by file name, in file order."""
    rng = random.Random(f"{SUITE_NAME}/{seed}/target")
    seen: set[str] = set()
    train = target_rows(rng, "train", TARGET_TRAIN_ROWS, seen)
    evaluation = target_rows(rng, "eval", TARGET_EVAL_ROWS, seen)
    return {
        "target_train.jsonl": train,
        "target_eval.jsonl": evaluation,
        "replay_train.jsonl": replay_rows(),
        "safety_train.jsonl": safety_train_rows(),
        "ood_eval.jsonl": ood_rows(),
        "ood_grounded_eval.jsonl": grounded_rows(),
        "safety_eval.jsonl": safety_rows(),
    }


def to_jsonl(rows: Iterable[Row]) -> bytes:
    """Serialise rows as JSON lines: sorted keys, UTF-8, one "\\n"-terminated line each."""
    lines = (json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)
    return "".join(lines).encode("utf-8")


def write_suite(out_dir: Path, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Write every suite file and ``manifest.json`` into ``out_dir``; return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    for path, rows in build_suite(seed).items():
        data = to_jsonl(rows)
        (out_dir / path).write_bytes(data)
        files.append(
            {
                "path": path,
                "cohort": rows[0]["cohort"],
                "split": rows[0]["split"],
                "rows": len(rows),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {
        "name": SUITE_NAME,
        "description": "Bundled default suite: order-to-JSON extraction (target), general replay rows "
        "for training, out-of-domain short-answer questions (ood), out-of-domain questions about a short "
        "passage (ood_grounded) and harmful requests (safety).",
        "generator": "evalgate.data.suite",
        "seed": seed,
        "files": files,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (out_dir / "manifest.json").write_bytes(text.encode("utf-8"))
    return manifest


def main(argv: list[str] | None = None) -> None:
    """Command line: regenerate the suite into a folder."""
    parser = argparse.ArgumentParser(prog="python -m evalgate.data.suite", description="Generate the suite.")
    parser.add_argument("out_dir", type=Path, help="folder to write (e.g. datasets/suite)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    manifest = write_suite(args.out_dir, args.seed)
    for entry in manifest["files"]:
        print(f"{entry['path']:24s} {entry['rows']:4d} rows  sha256 {entry['sha256'][:12]}")


if __name__ == "__main__":
    main()
