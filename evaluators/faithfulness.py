"""Faithfulness: how much of an answer the row's context supports (ragas-style, offline by default).

The answer is split into claims (sentences, split again at ';' and clause joints; a JSON answer gives
one claim per leaf value). A ``ClaimJudge`` gives each claim a support in [0, 1]. The offline
default, ``OverlapJudge``, combines three signals against the context:

    alignment(c) = max over context sentences s of cos(e(c), e(s)), clipped to [0, 1];
                   e = the injected sentence embedder (MiniLM by default)
    overlap(c)   = |content tokens of c found in the context| / |content tokens of c|
    grounding(c) = 1 if every number and capitalised entity of c occurs in the context, else 0
    support(c)   = grounding(c) * (w * alignment(c) + (1 - w) * overlap(c)),   w = ALIGNMENT_WEIGHT,
                   but w = 0 for a claim of fewer than SHORT_CLAIM content tokens (a bare name, "yes":
                   a sentence embedding of it says little, its overlap and grounding say it all)

    faithfulness = mean over claims c of support(c)          range [0, 1], higher is better

So a claim naming a number or a name the context does not contain is unsupported, however similar
it reads. (Proportional grounding, the share of anchors found, was tried on the HaluEval dev half:
accuracy at 0.5 was 0.80 against 0.85 for this all-or-nothing rule, AUC unchanged.)
Rows with no context, or an answer with no claim, are not applicable.
Pluggable judges (``evaluators.claim_judges``): an NLI cross-encoder from a local path and an LLM
judge on an OpenAI-compatible endpoint; pass one as ``judge=``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from evaluators import text
from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.registry import register

if TYPE_CHECKING:
    from evalgate.embeddings import Embedder

ALIGNMENT_WEIGHT = 0.5
"""Weight of embedding alignment against lexical overlap in a claim's support."""
SHORT_CLAIM = 3
"""Claims with fewer content tokens than this (a bare name, "yes") are judged without alignment."""
CLAIM_SUPPORTED = 0.5
"""A claim counts as supported (in ``detail``) when its support reaches this."""


@dataclass(frozen=True)
class ClaimCheck:
    """One claim to check against evidence (a question gives the judge the claim's setting)."""

    question: str
    answer: str
    evidence: str


@dataclass(frozen=True)
class ClaimVerdict:
    """A judge's verdict on one claim: support in [0, 1], and whether the evidence contradicts it."""

    claim: str
    support: float
    contradicted: bool = False
    reason: str = ""


class ClaimJudge(Protocol):
    """Splits each answer into claims and rates every claim against its evidence."""

    def judge(self, checks: Sequence[ClaimCheck]) -> list[list[ClaimVerdict]]:
        """One list of verdicts per check, in order (empty when the answer makes no claim)."""
        ...


def answer_claims(answer: str) -> list[str]:
    """Claims of ``answer``: one per leaf value of a JSON answer, else ``text.split_claims``."""
    try:
        value = text.parse_json(answer)
    except ValueError:
        return text.split_claims(answer)
    if isinstance(value, dict | list):
        return [leaf for leaf in _json_leaves(value) if text.tokens(leaf)]
    return text.split_claims(answer)


def _json_leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _json_leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _json_leaves(item)]
    return [] if value is None else [value if isinstance(value, str) else json.dumps(value)]


class OverlapJudge:
    """The offline judge: embedding alignment plus lexical overlap, gated by number/entity grounding.

    Entities are matched as words: "India" is not grounded by "Indian", nor "NYC" by "New York".
    """

    def __init__(self, embedder: Embedder, alignment_weight: float = ALIGNMENT_WEIGHT):
        if not 0.0 <= alignment_weight <= 1.0:
            raise ValueError(f"alignment_weight must be in [0, 1], got {alignment_weight}")
        self.embedder = embedder
        self.alignment_weight = alignment_weight

    def judge(self, checks: Sequence[ClaimCheck]) -> list[list[ClaimVerdict]]:
        """Verdicts for every check; all texts are embedded in one ``encode`` call."""
        claims = [answer_claims(check.answer) for check in checks]
        units = [evidence_units(check.evidence) for check in checks]
        vectors = self._embed([*(c for cs in claims for c in cs), *(u for us in units for u in us)])
        return [
            self._judge_one(check.evidence, row_claims, row_units, vectors)
            for check, row_claims, row_units in zip(checks, claims, units, strict=True)
        ]

    def _embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        unique = list(dict.fromkeys(texts))
        return dict(zip(unique, self.embedder.encode(unique), strict=True)) if unique else {}

    def _judge_one(
        self, evidence: str, claims: list[str], units: list[str], vectors: dict[str, np.ndarray]
    ) -> list[ClaimVerdict]:
        if not claims or not units:
            return []
        facts = Facts.of(evidence)
        unit_matrix = np.stack([vectors[unit] for unit in units])
        verdicts = []
        for claim in claims:
            similarities = unit_matrix @ vectors[claim]
            best = int(np.argmax(similarities))
            alignment = float(np.clip(similarities[best], 0.0, 1.0))
            overlap, grounding, missing = facts.overlap(claim), *facts.grounding(claim)
            w = self.alignment_weight if len(text.content_tokens(claim)) >= SHORT_CLAIM else 0.0
            support = grounding * (w * alignment + (1 - w) * overlap)
            contradicted = conflicts(claim, units[best], alignment)
            reason = f"alignment {alignment:.2f}, overlap {overlap:.2f}, grounding {grounding:.2f}"
            reason += f"; not in context: {', '.join(sorted(missing))}" if missing else ""
            verdicts.append(ClaimVerdict(claim, float(support), contradicted, reason))
        return verdicts


def evidence_units(evidence: str) -> list[str]:
    """The units a claim is aligned to: the evidence's sentences.

    (Adding pairs of adjacent sentences was tried on the HaluEval dev half: no gain, twice the cost.)
    """
    return text.split_sentences(evidence)


@dataclass(frozen=True)
class Facts:
    """What an evidence text contains: content tokens, all tokens, numbers."""

    content: frozenset[str]
    words: frozenset[str]
    numbers: frozenset[str]

    @classmethod
    def of(cls, evidence: str) -> Facts:
        """The facts of ``evidence``."""
        words = frozenset(text.tokens(evidence)) | frozenset(text.content_tokens(evidence))
        return cls(frozenset(text.content_tokens(evidence)), words, frozenset(text.numbers(evidence)))

    def overlap(self, claim: str) -> float:
        """Share of the claim's content tokens found in the evidence (1 when it has none)."""
        content = text.content_tokens(claim)
        return len(content & self.content) / len(content) if content else 1.0

    def grounding(self, claim: str) -> tuple[float, set[str]]:
        """1 if all the claim's numbers and entities occur in the evidence, else 0; and the missing ones."""
        anchors = {f"#{n}" for n in text.numbers(claim)} | text.entities(claim)
        missing = {a for a in anchors if not self._has(a)}
        return (0.0 if missing else 1.0), missing

    def _has(self, anchor: str) -> bool:
        if anchor.startswith("#"):
            return anchor[1:] in self.numbers
        return anchor in self.words or text.content_tokens(anchor) <= self.content


def conflicts(claim: str, sentence: str, alignment: float, min_alignment: float = 0.6) -> bool:
    """Whether ``claim`` contradicts its best-aligned evidence ``sentence``.

    Only a closely aligned sentence (cosine ≥ ``min_alignment``) can contradict: it does when exactly
    one of the two is negated, or when both carry numbers and the claim's are not the sentence's.
    """
    if alignment < min_alignment:
        return False
    if text.has_negation(claim) != text.has_negation(sentence):
        return True
    claim_numbers, sentence_numbers = text.numbers(claim), text.numbers(sentence)
    return bool(claim_numbers and sentence_numbers and not claim_numbers <= sentence_numbers)


@register
class Faithfulness(Evaluator):
    """Faithfulness to the context: mean claim support, range [0, 1], higher is better (see module)."""

    name: ClassVar[str] = "faithfulness"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True
    threshold: ClassVar[float] = 0.5
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, embedder: Embedder | None = None, judge: ClaimJudge | None = None):
        if judge is None:
            if embedder is None:
                raise TypeError("faithfulness needs an embedder (for the offline judge) or a judge")
            judge = OverlapJudge(embedder)
        self.judge = judge

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """One score per row: mean claim support; rows without context are not applicable."""
        scored = [i for i, row in enumerate(rows) if row.context.strip() and row.answer.strip()]
        checks = [ClaimCheck(rows[i].question, rows[i].answer, rows[i].context) for i in scored]
        verdicts = dict(zip(scored, self.judge.judge(checks), strict=True))
        return [self._row_score(row, verdicts.get(i)) for i, row in enumerate(rows)]

    def _row_score(self, row: ScoredRow, verdicts: list[ClaimVerdict] | None) -> RowScore:
        if verdicts is None:
            reason = "no context" if not row.context.strip() else "empty answer"
            return RowScore.not_applicable(reason)
        if not verdicts:
            return RowScore.not_applicable("the answer makes no claim")
        supports = [verdict.support for verdict in verdicts]
        return self.verdict(float(np.mean(supports)), **claim_detail(verdicts))


def claim_detail(verdicts: Sequence[ClaimVerdict]) -> dict[str, Any]:
    """The ``detail`` of a claim-based score: counts and each claim's verdict."""
    return {
        "claims": len(verdicts),
        "supported": sum(v.support >= CLAIM_SUPPORTED for v in verdicts),
        "contradicted": sum(v.contradicted for v in verdicts),
        "verdicts": [
            {
                "claim": v.claim,
                "support": round(v.support, 4),
                "contradicted": v.contradicted,
                "reason": v.reason,
            }
            for v in verdicts
        ],
    }
