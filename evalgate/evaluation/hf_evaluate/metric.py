"""What the generated ``evaluate`` scripts delegate to: each metric's info and its computation.

    info("faithfulness")                      # evaluate.MetricInfo: description, inputs, features
    compute("faithfulness", predictions=[...], questions=[...], contexts=[...])

``compute`` builds one ``ScoredRow`` per row (``inputs.scored_rows``), keeps the rows of the evaluator's
cohorts (all rows when it names none, as the evaluation runner does), scores them with the registry's
evaluator (default models injected: ``evalgate.evaluation.factory.build_evaluator``; for perplexity the
given causal language model) and returns

    {<name>: mean of the scores of the rows it applies to (None when it applies to none),
     "scores": per row its score, or None where the evaluator does not apply,
     "passed": per row whether it meets the evaluator's threshold (None where it does not apply),
     "n": the number of rows it applies to}

The mean is a plain arithmetic mean in the evaluator's own direction (``higher_is_better`` in the
metric's description): no interval, no comparison. Those are the gate's.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import evaluate
import numpy as np

from evalgate.core.settings import Settings
from evalgate.evaluation.factory import build_evaluator
from evalgate.evaluation.hf_evaluate.inputs import (
    MetricInputError,
    MetricSpec,
    features,
    scored_rows,
    spec_of,
)
from evaluators import registry
from evaluators.base import Evaluator, RowScore, ScoredRow

if TYPE_CHECKING:
    from evaluators.perplexity import Perplexity

MODEL_HINT = "a local causal-LM folder (with config.json), or 'smollm2-135m-instruct' (the embedded model)"


def info(name: str) -> evaluate.MetricInfo:
    """The ``evaluate.MetricInfo`` of evaluator ``name``: what it measures, its inputs and features."""
    spec = spec_of(name)
    return evaluate.MetricInfo(
        description=description(name),
        citation="",
        inputs_description=inputs_description(name, spec),
        features=features(spec),
    )


def description(name: str) -> str:
    """The evaluator's module docstring (its formula) and its version, direction and threshold."""
    evaluator = registry.get(name)
    formula = inspect.getdoc(sys.modules[evaluator.__module__]) or ""
    direction = "higher is better" if evaluator.higher_is_better else "lower is better"
    relation = ">=" if evaluator.higher_is_better else "<="
    summary = (
        f"evalgate evaluator {name!r}, version {evaluator.version}: {direction}; "
        f"a row passes when its score {relation} {evaluator.threshold}."
    )
    return f"{summary}\n\n{formula}"


def inputs_description(name: str, spec: MetricSpec) -> str:
    """The arguments of ``compute`` for evaluator ``name``, one line each."""
    lines = ["Args:"]
    lines += [f"    {column.name} ({column.annotation}): {column.doc}." for column in spec.features]
    lines += [f"    {column.name} ({column.annotation}, optional): {column.doc}." for column in spec.options]
    if spec.needs_model:
        lines.append(f"    model (str): the model whose perplexity is measured: {MODEL_HINT}.")
        lines.append('    device (str, optional): "cpu" (default), "cuda" or "auto".')
    lines += [
        "Returns:",
        f"    {name} (float | None): mean score over the rows it applies to.",
        "    scores (list[float | None]): per row, its score (None: not applicable).",
        "    passed (list[bool | None]): per row, whether it meets the threshold.",
        "    n (int): rows it applies to.",
    ]
    return "\n".join(lines)


def compute(name: str, *, model: str | None = None, device: str = "cpu", **columns: Any) -> dict[str, Any]:
    """Score the rows given as ``columns`` with evaluator ``name`` (see the module docstring)."""
    spec = spec_of(name)
    if not spec.needs_model and model is not None:
        raise MetricInputError(f"evaluator {name!r} takes no model")
    rows = scored_rows(spec, columns)
    evaluator = _model_evaluator(model, device) if spec.needs_model else _plain_evaluator(name)
    results = score_rows(evaluator, rows)
    values = [result.score if result else None for result in results]
    scored = [value for value in values if value is not None]
    return {
        name: float(np.mean(scored)) if scored else None,
        "scores": values,
        "passed": [result.passed if result else None for result in results],
        "n": len(scored),
    }


def score_rows(evaluator: Evaluator, rows: Sequence[ScoredRow]) -> list[RowScore | None]:
    """The evaluator's verdict on each row of its cohorts, None on the others (in row order)."""
    applicable = [row for row in rows if evaluator.cohorts is None or row.cohort in evaluator.cohorts]
    results = evaluator.score(applicable) if applicable else []
    if len(results) != len(applicable):
        raise RuntimeError(
            f"evaluator {evaluator.name} returned {len(results)} scores for {len(applicable)} rows"
        )
    by_id = {row.id: result for row, result in zip(applicable, results, strict=True)}
    return [by_id.get(row.id) for row in rows]


@cache
def _plain_evaluator(name: str) -> Evaluator:
    """The registry's evaluator ``name`` with its default models, built once per process."""
    return build_evaluator(name, Settings())


def _model_evaluator(model: str | None, device: str) -> Perplexity:
    """The perplexity evaluator on ``model`` (loaded once per process and device)."""
    if not model:
        raise MetricInputError(f"perplexity needs model=: {MODEL_HINT}")
    from evalgate.evaluation.forgetting import reference_logprobs
    from evaluators.perplexity import Perplexity

    return Perplexity(reference_logprobs(*_language_model(model, device)))


@lru_cache(maxsize=2)
def _language_model(model: str, device: str) -> tuple[Any, Any]:
    from evalgate.modeling.loading import load_model

    return load_model(model, Settings().home, device=device)
