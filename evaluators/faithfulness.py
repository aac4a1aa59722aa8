"""Faithfulness: how much of an answer the row's context supports (ragas-style, offline by default).

The answer is split into claims (sentences, split again at ';' and clause joints; a JSON answer gives
one claim per leaf value). A ``ClaimJudge`` gives each claim a support in [0, 1]. The offline
default, ``GroundingJudge``, reads nine question-aware grounding features of the claim
(``evaluators.grounding``: the share of its new words and of its new names and numbers absent from
the context, whether one context sentence holds its words, negation, and whether it adds nothing to
the question, names none of the alternatives the question offers, or lacks the number or date the
question asks for) and weighs them with a logistic regression trained on perturbed answers to the
project's own passages
(``evaluators.faithfulness_head``, rebuilt by
``python -m evalgate.evaluation.faithfulness_training --write``):

    support(c)   = sigmoid(BIAS + sum_i WEIGHTS[i] * feature_i(c)) / sigmoid(BIAS)    in (0, 1]
                   (every feature is 0 for a fully grounded claim and every weight <= 0, so such a
                   claim gets 1 and each unsupported word, name or negation lowers it)
    faithfulness = mean over claims c of support(c)                     range [0, 1], higher is better
                   (min over claims for a JSON answer: an extraction is faithful only when every
                   extracted value is found in the context)

Words the question already names prove nothing: "Delhi" answering "Where is the head office?" is
checked, "head office" is not. Numbers, dates and names are normalised ("1,000" = "1000",
"March 2, 1991" = "2 March 1991") and must occur in the context exactly. So a claim naming a number
or a name the context lacks, or stitching a subject of one sentence to a fact of another, loses
support however fluent it reads. The default threshold (``THRESHOLD``) was chosen on the dev half of
a HaluEval QA file (bench/faithfulness_halueval.py); nothing else was fitted to it.
Rows with no context, or an answer with no claim, are not applicable. Pure text: no model is loaded.
Pluggable judges (``evaluators.claim_judges``): an NLI cross-encoder from a local path and an LLM
judge on an OpenAI-compatible endpoint; pass one as ``judge=``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from evaluators import faithfulness_head, grounding, text
from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.registry import register

THRESHOLD = 0.8
"""Default pass threshold of faithfulness (hallucination_score passes at 1 - THRESHOLD): chosen on the
dev half of the HaluEval QA file, the only thing fitted to it."""
CLAIM_SUPPORTED = THRESHOLD
"""A claim counts as supported (in ``detail``) when its support reaches this."""


@dataclass(frozen=True)
class ClaimCheck:
    """One claim to check against evidence (a question gives the judge the claim's setting)."""

    question: str
    answer: str
    evidence: str
    passage: bool = True
    """Whether the evidence holds a passage (a context), not only a reference answer."""


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


def is_json_record(answer: str) -> bool:
    """Whether ``answer`` is a JSON object or array (an extraction whose every value must hold)."""
    try:
        return isinstance(text.parse_json(answer), dict | list)
    except ValueError:
        return False


def _json_leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _json_leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _json_leaves(item)]
    return [] if value is None else [value if isinstance(value, str) else json.dumps(value)]


class GroundingJudge:
    """The offline judge: grounding features of each claim, weighed by the learned head.

    support(c) = sigmoid(BIAS + sum_i WEIGHTS[i] * features_i(c)) / sigmoid(BIAS), range (0, 1], where
    the features are ``evaluators.grounding.features`` against the evidence and the question;
    WEIGHTS and BIAS come from ``evaluators.faithfulness_head`` (regenerated by
    ``python -m evalgate.evaluation.faithfulness_training --write``). A claim is contradicted when it
    disagrees on
    negation with its closest sentence.
    Pure text: no model is loaded.
    """

    def judge(self, checks: Sequence[ClaimCheck]) -> list[list[ClaimVerdict]]:
        """Verdicts for every check (the evidence of each is parsed once)."""
        return [self._judge_one(check) for check in checks]

    def _judge_one(self, check: ClaimCheck) -> list[ClaimVerdict]:
        evidence = grounding.Evidence.of(check.evidence, check.question, passage=check.passage)
        verdicts = []
        for claim in answer_claims(check.answer):
            values = grounding.features(claim, check.question, evidence)
            support = head_probability(values)
            named = dict(zip(grounding.FEATURES, values, strict=True))
            missing = grounding.missing_words(claim, check.question, evidence)
            reason = ", ".join(f"{name} {value:.2f}" for name, value in named.items())
            reason += f"; not in context: {', '.join(missing)}" if missing else ""
            verdicts.append(ClaimVerdict(claim, support, named["negation"] > 0, reason))
        return verdicts


def head_probability(values: Sequence[float]) -> float:
    """The learned head's p(faithful) for one claim's feature values (``grounding.FEATURES`` order),
    divided by its p for a fully grounded claim (every feature 0), so that such a claim gets 1."""
    logit = faithfulness_head.BIAS + sum(
        w * v for w, v in zip(faithfulness_head.WEIGHTS, values, strict=True)
    )
    return min(1.0, _sigmoid(logit) / _sigmoid(faithfulness_head.BIAS))


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


@register
class Faithfulness(Evaluator):
    """Faithfulness to the context: mean claim support (min for JSON), range [0, 1], higher is better."""

    name: ClassVar[str] = "faithfulness"
    version: ClassVar[str] = "5"
    higher_is_better: ClassVar[bool] = True
    threshold: ClassVar[float] = THRESHOLD
    cohorts: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, judge: ClaimJudge | None = None):
        self.judge: ClaimJudge = judge or GroundingJudge()

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
        score = min(supports) if is_json_record(row.answer) else float(np.mean(supports))
        return self.verdict(score, **claim_detail(verdicts))


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
