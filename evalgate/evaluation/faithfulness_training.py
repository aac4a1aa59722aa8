"""Train the faithfulness head: a logistic regression on perturbed answers to the project's own passages.

    python -m evalgate.evaluation.faithfulness_training           # print the module it would write, its fit
    python -m evalgate.evaluation.faithfulness_training --write   # regenerate evaluators/faithfulness_head.py

Examples come from ``evalgate.evaluation.faithfulness_corpus`` (passages written for the project; nothing
from a
benchmark). For every question with its answer span, ``perturb`` makes faithful answers (the span, the
span as a sentence, the passage sentence holding it, that sentence cut after the span) and
hallucinated ones (a name or number swapped for one from elsewhere in the passage or from another
passage, a negated sentence, an unsupported clause from another passage appended, another name of the
passage as a short wrong answer); ``question_perturbations`` adds answers judged against the question
(a name the question itself gives; the question made a choice between the answer and another name
of the passage, answered right or with a third name). Each answer's ``evaluators.grounding.features``
against its passage and question are fitted by L2-regularised logistic regression (Newton's method,
numpy only), so the output is the same on every machine; weights are rounded to 4 decimals.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalgate.evaluation.faithfulness_corpus import PASSAGES, Passage
from evaluators import grounding, text

HEAD_MODULE = Path(__file__).resolve().parents[2] / "evaluators" / "faithfulness_head.py"
SEED = 14
"""Seed of the perturbation choices (the held-out check in bench/ uses another)."""
L2 = 1.0
"""Ridge penalty on the weights (not the bias)."""

_NAME_RUN = re.compile(r"\b[A-Z][a-z'\u2019]+(?:\s+(?:of\s+|de\s+|von\s+|van\s+)?[A-Z][a-z'\u2019]+)*")
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?")
_VERB = re.compile(r"\b(is|was|are|were|can|has|had|have)\b")


@dataclass(frozen=True)
class Example:
    """One answer to a question about a passage, with its label (1 faithful, 0 hallucinated)."""

    question: str
    answer: str
    context: str
    label: int
    kind: str


def passage_names(passage: str) -> list[str]:
    """Runs of capitalised words of ``passage`` that do not open a sentence (the names it mentions)."""
    found = []
    for sentence in text.split_sentences(passage):
        for match in _NAME_RUN.finditer(sentence):
            if match.start() > 0 and match.group() not in found:
                found.append(match.group())
    return found


def negate(sentence: str) -> str | None:
    """``sentence`` with "not" after its first auxiliary verb, or None when it has none."""
    match = _VERB.search(sentence)
    return None if match is None else f"{sentence[: match.end()]} not{sentence[match.end() :]}"


def swap_number(answer: str, passage: str, rng: random.Random) -> str | None:
    """``answer`` with one of its numbers changed to another of the passage's or a nearby one."""
    numbers = _NUMBER.findall(answer)
    if not numbers:
        return None
    old = rng.choice(numbers)
    others = [n for n in _NUMBER.findall(passage) if n != old]
    if others and rng.random() < 0.5:
        new = rng.choice(others)
    else:
        value = int(old.replace(",", "").split(".")[0])
        new = f"{value + rng.choice([-3, -2, -1, 1, 2, 5, 10]) * max(1, value // 20):,}"
    return answer.replace(old, new, 1)


def swap_name(answer: str, candidates: Sequence[str], rng: random.Random) -> str | None:
    """``answer`` with one of its names replaced by one of ``candidates`` it does not contain."""
    own = [name for name in passage_names(" " + answer) if name in answer] or [
        m.group() for m in _NAME_RUN.finditer(answer)
    ]
    pool = [c for c in candidates if c not in answer and not any(c in o or o in c for o in own)]
    if not own or not pool:
        return None
    return answer.replace(rng.choice(own), rng.choice(pool), 1)


def answer_sentence(passage: str, answer: str) -> str:
    """The sentence of ``passage`` holding ``answer`` (the first sentence when none does)."""
    sentences = text.split_sentences(passage)
    return next((s for s in sentences if answer.lower() in s.lower()), sentences[0])


def perturb(
    question: str, answer: str, passage: str, others: Sequence[str], rng: random.Random
) -> Iterator[Example]:
    """Faithful and hallucinated answers to ``question`` (see the module docstring).

    ``others``: other passages, the source of invented names and unsupported clauses.
    """
    sentence = answer_sentence(passage, answer)
    cut = sentence.lower().find(answer.lower())
    faithful = {"span": answer, "span sentence": f"It is {answer}.", "sentence": sentence}
    if cut > 0:
        faithful["cut sentence"] = sentence[: cut + len(answer)] + "."
    for kind, candidate in faithful.items():
        yield Example(question, candidate, passage, 1, kind)
    other = rng.choice(others)
    names, foreign = passage_names(passage), passage_names(other)
    clause = rng.choice(text.split_sentences(other)).rstrip(".")
    base = rng.choice([answer, sentence])
    hallucinated: dict[str, str | None] = {
        "name from the passage": swap_name(base, names, rng),
        "invented name": swap_name(base, foreign, rng),
        "number": swap_number(base, passage, rng),
        "negated": negate(sentence),
        "added clause": f"{base.rstrip('.')}, and {_lower_first(clause)}.",
        "short wrong answer": rng.choice([n for n in names if n not in answer] or [None]),
    }
    for kind, made in hallucinated.items():
        if made and made != base:
            yield Example(question, made, passage, 0, kind)


def question_perturbations(question: str, answer: str, passage: str, rng: random.Random) -> Iterator[Example]:
    """Answers judged against what the question asks (training only; the bench's check uses ``perturb``).

    "echo": a name the question itself gives, as the answer (it adds nothing); "choice": the
    question turned into a choice between the answer and another name of the passage, answered
    with the right one (faithful) or with a third name that is neither (hallucinated).
    """
    asked = [n for n in passage_names(" " + question) if n.lower() not in answer.lower()]
    if asked:
        yield Example(question, rng.choice(asked), passage, 0, "echo of the question")
    names = [n for n in passage_names(passage) if n.lower() not in answer.lower() and n not in question]
    if len(names) < 2 or not answer[:1].isupper():
        return
    rival, third = rng.sample(names, 2)
    pair = (answer, rival) if rng.random() < 0.5 else (rival, answer)
    choice = f"{question.rstrip('?')}, {pair[0]} or {pair[1]}?"
    yield Example(choice, answer, passage, 1, "choice: right option")
    yield Example(choice, third, passage, 0, "choice: neither option")


def _lower_first(sentence: str) -> str:
    first, _, rest = sentence.partition(" ")
    return f"{first.lower()} {rest}" if first.lower() in text.STOPWORDS else sentence


def examples(passages: Sequence[Passage] = PASSAGES, seed: int = SEED) -> list[Example]:
    """Every perturbed example of ``passages``, in a fixed order for ``seed``."""
    rng = random.Random(seed)
    texts = [p.text for p in passages]
    found: list[Example] = []
    for index, passage in enumerate(passages):
        others = texts[:index] + texts[index + 1 :]
        for question, answer in passage.qa:
            found.extend(perturb(question, answer, passage.text, others, rng))
            found.extend(question_perturbations(question, answer, passage.text, rng))
    return found


def feature_matrix(found: Sequence[Example]) -> np.ndarray:
    """``grounding.features`` of each example's answer against its passage and question."""
    return np.array(
        [
            grounding.features(e.answer, e.question, grounding.Evidence.of(e.context, e.question))
            for e in found
        ]
    )


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias maximising the L2-penalised log-likelihood of ``y`` given ``x`` (Newton)."""
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.diag([l2] * x.shape[1] + [0.0])
    theta = np.zeros(design.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-design @ theta))
        gradient = design.T @ (y - p) - penalty @ theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:-1], float(theta[-1])


def render(weights: np.ndarray, bias: float, found: Sequence[Example]) -> str:
    """The source of ``evaluators/faithfulness_head.py`` for these weights."""
    faithful = sum(e.label for e in found)
    lines = [
        '"""Weights of the faithfulness head: p(faithful) = sigmoid(BIAS + sum of WEIGHTS * features).',
        "",
        "Generated by `python -m evalgate.evaluation.faithfulness_training --write`: do not edit by hand.",
        f"Fitted on {len(found)} perturbed answers ({faithful} faithful, "
        f"{len(found) - faithful} hallucinated)",
        f"to the {len(PASSAGES)} passages of evalgate/evaluation/faithfulness_corpus.py "
        f"(seed {SEED}, L2 {L2}).",
        '"""',
        "",
        "FEATURES = (",
        *(f'    "{name}",' for name in grounding.FEATURES),
        ")",
        "WEIGHTS = (",
        *(
            f"    {round(float(w), 4)!r},  # {name}"
            for w, name in zip(weights, grounding.FEATURES, strict=True)
        ),
        ")",
        f"BIAS = {round(bias, 4)!r}",
        "",
    ]
    return "\n".join(lines)


def build() -> tuple[str, list[Example], np.ndarray, np.ndarray]:
    """The head module's source, the examples, their features and labels."""
    found = examples()
    x = feature_matrix(found)
    y = np.array([e.label for e in found], dtype=float)
    weights, bias = fit_logistic(x, y)
    return render(weights, bias, found), found, x, y


def main() -> None:
    """Print the module (and the training accuracy), or write it with ``--write``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {HEAD_MODULE}")
    args = parser.parse_args()
    source, found, x, y = build()
    if args.write:
        HEAD_MODULE.write_text(source)
    print(source)
    namespace: dict[str, object] = {}
    exec(source, namespace)
    logits = x @ np.array(namespace["WEIGHTS"]) + float(namespace["BIAS"])  # type: ignore[arg-type]
    print(
        f"# training accuracy at p=0.5: {float(((logits > 0) == (y > 0.5)).mean()):.3f} on {len(y)} examples"
    )
    for kind in dict.fromkeys(e.kind for e in found):
        mask = np.array([e.kind == kind for e in found])
        print(
            f"#   {kind:<22} n={int(mask.sum()):3d}  "
            f"mean p(faithful) {float((1 / (1 + np.exp(-logits[mask]))).mean()):.2f}"
        )


if __name__ == "__main__":
    main()
