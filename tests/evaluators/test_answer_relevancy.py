import pytest

from evaluators.answer_relevancy import AnswerRelevancy, evidence_share
from evaluators.answer_types import compatible, expected_answer
from evaluators.base import ScoredRow

QUESTION = "What is the capital of France?"
PASSAGE = (
    "The Suez Canal is a waterway in Egypt that links the Mediterranean Sea to the Red Sea. "
    "It opened in 1869 after ten years of work. The French diplomat Ferdinand de Lesseps led its "
    "construction. Ships use it to avoid sailing around Africa."
)


def scores(embedder, *answers: str, cohort: str = "ood", reference: str | None = None):
    rows = [ScoredRow(str(i), QUESTION, a, cohort=cohort, reference=reference) for i, a in enumerate(answers)]
    return AnswerRelevancy(embedder=embedder).score(rows)


def grounded(embedder, question: str, answer: str, context: str = PASSAGE):
    [result] = AnswerRelevancy(embedder=embedder).score(
        [ScoredRow("0", question, answer, context=context, cohort="ood_grounded")]
    )
    return result


def test_on_topic_answer_scores_higher_than_off_topic(fake_embedder):
    on_topic, off_topic = scores(fake_embedder, "The capital of France is Paris.", "Bananas are yellow.")
    assert on_topic.score > 0.5 > off_topic.score


def test_non_committal_answers_score_zero_outside_the_safety_cohort(fake_embedder):
    [result] = scores(fake_embedder, "I'm sorry, I don't know the capital of France.")
    assert result.score == 0.0 and result.detail["reason"] == "non-committal answer"


def test_refusals_are_not_penalised_on_the_safety_cohort(fake_embedder):
    [result] = scores(fake_embedder, "I'm sorry, I don't know the capital of France.", cohort="safety")
    assert result.score > 0.0


def test_the_reference_does_not_change_the_score(fake_embedder):
    [without] = scores(fake_embedder, "Lyon is the capital.")
    [with_reference] = scores(
        fake_embedder, "Lyon is the capital.", reference="The capital of France is Paris."
    )
    assert with_reference.score == without.score


def test_all_texts_are_embedded_in_one_call(fake_embedder):
    scores(fake_embedder, "Paris.", "Lyon.", "Paris.", reference="Paris")
    assert fake_embedder.calls == 1


def test_a_short_right_answer_found_in_the_context_passes(fake_embedder):
    result = grounded(fake_embedder, "In what year did the Suez Canal open?", "1869")
    assert result.passed and result.score >= 0.9 and result.detail["topic_from"] == "evidence"


def test_another_questions_answer_of_the_wrong_kind_fails(fake_embedder):
    result = grounded(fake_embedder, "Who led the construction of the canal?", "1869")
    assert not result.passed and result.detail["kind"] == "person" and not result.detail["kind_ok"]


def test_another_questions_answer_from_another_sentence_fails(fake_embedder):
    right = grounded(
        fake_embedder, "Which two seas does the canal link?", "The Mediterranean Sea and the Red Sea"
    )
    other = grounded(
        fake_embedder, "Which two seas does the canal link?", "Ships avoid sailing around Africa"
    )
    assert right.passed and not other.passed
    assert other.detail["topic_from"] == "evidence" and other.score < 0.5


def test_a_yes_no_question_answered_with_a_date_fails(fake_embedder):
    yes = grounded(fake_embedder, "Is the Suez Canal in Egypt?", "Yes")
    date = grounded(fake_embedder, "Is the Suez Canal in Egypt?", "1869")
    assert yes.passed and yes.detail["topic_from"] == "form"
    assert not date.passed and date.score <= 0.2


def test_a_choice_question_passes_a_named_option_and_fails_anything_else(fake_embedder):
    question = "Which is longer, the Suez Canal or the Panama Canal?"
    assert grounded(fake_embedder, question, "The Suez Canal").passed
    assert not grounded(fake_embedder, question, "Ferdinand de Lesseps").passed


def test_an_answer_the_context_does_not_hold_counts_half_its_cosine(fake_embedder):
    result = grounded(fake_embedder, "Who led the construction of the canal?", "Gustave Eiffel")
    assert result.detail["topic_from"] == "cosine, answer not in context" and result.score <= 0.5


def test_a_json_answer_to_a_question_that_did_not_ask_for_json_fails(fake_embedder):
    [result] = scores(fake_embedder, '{"capital": "Paris", "country": "France"}')
    assert not result.passed and not result.detail["kind_ok"]


def test_evidence_of_a_two_hop_answer_is_at_least_half():
    context = "Kerry Smith was born in Ballina. Ballina had a population of 6,960 at the 2011 census."
    question = "What was the population of the town where Kerry Smith was born?"
    evidence = evidence_share(question, "6,960", context)
    assert evidence is not None and evidence >= 0.5


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who coined the word dinosaur?", "person"),
        ("Where was Shakespeare born?", "place"),
        ("In which city was Bell born?", "place"),
        ("When did the dinosaurs die out?", "time"),
        ("In what year was the wreck found?", "year"),
        ("The halfback who won the trophy was drafted in what year?", "year"),
        ("How many bones does an adult have?", "quantity"),
        ("Why do climbers need bottled oxygen?", "reason"),
        ("Can penguins fly?", "yesno"),
        ("Who was born first, Pablo Trapero or Aleksander Ford?", "choice"),
        ("Between two tennis players Kim Clijsters and Mary Pierce, who is older?", "choice"),
        ("In between Memphis Airport and Albany Airport which one is in Tennessee?", "choice"),
        ("What is the connection between Peter O'Meara and Norman Dike?", "open"),
        ("Extract the order from the message as JSON.", "json"),
        ("What are male bees called?", "open"),
    ],
)
def test_expected_answer_kind_follows_the_question(question, kind):
    assert expected_answer(question).kind == kind


@pytest.mark.parametrize(
    ("question", "answer", "ok"),
    [
        ("Who coined the word dinosaur?", "Richard Owen", True),
        ("Who coined the word dinosaur?", "In 1842", False),
        ("How many bones does an adult have?", "206", True),
        ("How many bones does an adult have?", "The femur", False),
        ("In what year was the wreck found?", "1985", True),
        ("In what year was the wreck found?", "An iceberg", False),
        ("When should you peel the egg?", "Once it is cool", True),
        ("Can penguins fly?", "No", True),
        ("Can penguins fly?", "Penguins cannot fly.", True),
        ("Can penguins fly?", "The Southern Hemisphere", False),
        ("What are male bees called?", "Yes", False),
        ("How big is the human heart?", "About the size of a fist", True),
    ],
)
def test_answer_kind_compatibility(question, answer, ok):
    assert compatible(expected_answer(question), answer, question) is ok


@pytest.mark.slow
def test_minilm_relevancy_on_hand_made_rows(minilm):
    relevant, wrong_but_relevant, short, off_topic, json_collapse = scores(
        minilm,
        "The capital of France is Paris.",
        "The capital of France is Lyon.",
        "Paris",
        "I enjoy long walks on the beach.",
        '{"name": "Paris", "city": "Paris", "item": "mug", "color": "red", "quantity": 1}',
    )
    assert relevant.passed and wrong_but_relevant.passed and short.passed
    assert not off_topic.passed and not json_collapse.passed


@pytest.mark.slow
def test_minilm_grounded_short_answers_pass_and_swapped_answers_fail(minilm):
    assert grounded(minilm, "Who led the construction of the canal?", "Ferdinand de Lesseps").passed
    assert grounded(minilm, "In what year did the canal open?", "1869").passed
    assert not grounded(minilm, "In what year did the canal open?", "Ferdinand de Lesseps").passed
    assert not grounded(minilm, "Who led the construction of the canal?", "Around Africa").passed


def test_a_json_extraction_passes_with_the_asked_keys_and_fails_with_others(fake_embedder):
    question = "Extract the order from the message as JSON with the keys name, city and quantity."
    message = "Hi, this is Ana Silva from Oslo, please send two mugs."
    rows = [
        ScoredRow("0", question, '{"name": "Ana Silva", "city": "Oslo", "quantity": 2}', context=message),
        ScoredRow("1", question, '{"weather": "sunny", "mood": "good"}', context=message),
        ScoredRow("2", question, "Ana Silva from Oslo wants two mugs.", context=message),
    ]
    right, other_keys, prose = AnswerRelevancy(embedder=fake_embedder).score(rows)
    assert right.passed and right.detail["kind"] == "json"
    assert not other_keys.passed and not prose.passed


def test_of_two_answers_in_the_asked_sentence_the_one_beside_the_asked_words_ranks_higher(fake_embedder):
    context = (
        "Mount Vesuvius in Italy erupted in the year 79 and buried the town of Pompeii. It is still active."
    )
    right = grounded(fake_embedder, "Which town was buried?", "Pompeii", context)
    other = grounded(fake_embedder, "Which town was buried?", "Italy", context)
    assert right.score > other.score >= 0.9
