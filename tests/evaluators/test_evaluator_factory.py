import pytest

from evalgate.evaluation.factory import EvaluatorNeedsModelError, build_evaluator
from evaluators.answer_relevancy import AnswerRelevancy
from evaluators.faithfulness import Faithfulness
from evaluators.json_validation import JSONValidation
from evaluators.registry import UnknownEvaluatorError


def test_embedding_evaluators_get_the_given_embedder(fake_embedder):
    evaluator = build_evaluator("answer_relevancy", embedder=fake_embedder)
    assert isinstance(evaluator, AnswerRelevancy) and evaluator.embedder is fake_embedder


def test_model_free_evaluators_are_built_plainly():
    assert isinstance(build_evaluator("json_validation"), JSONValidation)
    assert isinstance(build_evaluator("faithfulness"), Faithfulness)


def test_perplexity_is_refused_with_a_pointer_to_the_runner():
    with pytest.raises(EvaluatorNeedsModelError, match="evaluation runner"):
        build_evaluator("perplexity")


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(UnknownEvaluatorError, match="no_such"):
        build_evaluator("no_such_evaluator")


@pytest.mark.slow
def test_default_embedder_is_minilm_from_its_package(minilm):
    evaluator = build_evaluator("answer_relevancy")
    assert evaluator.embedder is minilm  # type: ignore[attr-defined]
