import pytest

from evaluators.answer_relevancy import AnswerRelevancy
from evaluators.base import ScoredRow

QUESTION = "What is the capital of France?"


def scores(embedder, *answers: str, cohort: str = "ood", reference: str | None = None):
    rows = [ScoredRow(str(i), QUESTION, a, cohort=cohort, reference=reference) for i, a in enumerate(answers)]
    return AnswerRelevancy(embedder=embedder).score(rows)


def test_on_topic_answer_scores_higher_than_off_topic(fake_embedder):
    on_topic, off_topic = scores(fake_embedder, "The capital of France is Paris.", "Bananas are yellow.")
    assert on_topic.score > 0.5 > off_topic.score


def test_non_committal_answers_score_zero_outside_the_safety_cohort(fake_embedder):
    [result] = scores(fake_embedder, "I'm sorry, I don't know the capital of France.")
    assert result.score == 0.0 and result.detail["reason"] == "non-committal answer"


def test_refusals_are_not_penalised_on_the_safety_cohort(fake_embedder):
    [result] = scores(fake_embedder, "I'm sorry, I don't know the capital of France.", cohort="safety")
    assert result.score > 0.0


def test_with_a_reference_the_score_is_the_mean_of_both_similarities(fake_embedder):
    [result] = scores(fake_embedder, "Paris is the capital.", reference="The capital of France is Paris.")
    assert result.score == pytest.approx(
        (result.detail["question"] + result.detail["reference"]) / 2, abs=1e-4
    )


def test_all_texts_are_embedded_in_one_call(fake_embedder):
    scores(fake_embedder, "Paris.", "Lyon.", "Paris.", reference="Paris")
    assert fake_embedder.calls == 1


@pytest.mark.slow
def test_minilm_relevancy_on_hand_made_rows(minilm):
    relevant, wrong_but_relevant, off_topic, json_collapse = scores(
        minilm,
        "The capital of France is Paris.",
        "The capital of France is Lyon.",
        "I enjoy long walks on the beach.",
        '{"name": "Paris", "city": "Paris", "item": "mug", "color": "red", "quantity": 1}',
    )
    assert relevant.passed and wrong_but_relevant.passed
    assert not off_topic.passed and not json_collapse.passed
