"""evalgate's evaluators as Hugging Face ``evaluate`` metrics, loaded from local scripts (no hub).

    import evaluate
    from evalgate.evaluation.hf_evaluate import evalgate_metric_path

    faithfulness = evaluate.load(evalgate_metric_path("faithfulness"))
    faithfulness.compute(predictions=answers, questions=questions, contexts=contexts)
    # {"faithfulness": 0.91, "scores": [...], "passed": [...], "n": 3}

Every registered evaluator has a script, ``modules/<name>/<name>.py``, generated from one template
(``evalgate.evaluation.hf_evaluate.scripts``) and shipped in the wheel. Its ``compute`` gives exactly
the registry evaluator's per-row scores (``evalgate.evaluation.hf_evaluate.metric``); the inputs each
one takes are in ``evalgate.evaluation.hf_evaluate.inputs``.
"""

from __future__ import annotations

from pathlib import Path

from evaluators.registry import UnknownEvaluatorError

MODULES_DIR = Path(__file__).resolve().parent / "modules"
"""One folder per evaluator, holding its ``evaluate`` script of the same name."""


def metric_names() -> list[str]:
    """Evaluators with an ``evaluate`` script, sorted."""
    return sorted(folder.name for folder in MODULES_DIR.iterdir() if (folder / f"{folder.name}.py").is_file())


def evalgate_metric_path(name: str) -> str:
    """The folder to pass to ``evaluate.load`` for evaluator ``name``; ``UnknownEvaluatorError``
    (a ``KeyError``) naming the known ones when it has no script."""
    known = metric_names()
    if name not in known:
        raise UnknownEvaluatorError(
            f"no evaluate script for evaluator {name!r} in {MODULES_DIR}; known: {', '.join(known)}"
        )
    return str(MODULES_DIR / name)
