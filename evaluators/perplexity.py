"""Perplexity of the reference answer under the evaluated model itself (lower is better).

    evaluator = registry.create("perplexity", logprobs=my_logprobs)

The model is injected as a callable: ``logprobs(rows)`` returns, per row, the log-probabilities
(natural log) of the reference answer's tokens given the row's prompt, rendered as training renders
them (evalgate builds it from the loaded model). For a row with T reference tokens:

    perplexity = exp(-(1/T) * sum_t log p(token_t | prompt, token_<t))

Range [1, inf); 1 means the model predicts the reference with certainty. A row passes when its
perplexity is at most ``threshold`` (a loose sanity bound; compare runs by their paired deltas).
Rows without a reference are not applicable. Perplexity moves non-monotonically with the learning rate:
read it beside answer-based evaluators, not alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.registry import register

LogProbs = Callable[[Sequence[ScoredRow]], list[list[float]]]
"""Rows in, per row the log-probabilities of its reference tokens given its prompt."""
MAX_LOG_PERPLEXITY = 700.0
"""Caps the exponent so that a hopeless row scores a huge finite number instead of overflowing."""


@register
class Perplexity(Evaluator):
    """exp of the mean negative log-likelihood per reference token; lower is better."""

    name = "perplexity"
    version = "1"
    higher_is_better = False
    threshold = 20.0
    cohorts = None

    def __init__(self, logprobs: LogProbs):
        self.logprobs = logprobs

    def score(self, rows: Sequence[ScoredRow]) -> list[RowScore]:
        """One perplexity per row with a reference; ``not_applicable`` for the others."""
        scorable = [row for row in rows if row.reference]
        values = iter(self.logprobs(scorable) if scorable else [])
        results = []
        for row in rows:
            if not row.reference:
                results.append(RowScore.not_applicable("no reference answer"))
                continue
            token_logprobs = next(values)
            if not token_logprobs:
                results.append(RowScore.not_applicable("reference has no tokens"))
                continue
            mean = sum(token_logprobs) / len(token_logprobs)
            perplexity = math.exp(min(-mean, MAX_LOG_PERPLEXITY))
            results.append(self.verdict(perplexity, tokens=len(token_logprobs), mean_logprob=mean))
        return results
