from evaluators.accept_match import AnswerAccuracy, contains
from evaluators.base import ScoredRow


def score(answer: str, accept=None, reference: str | None = None):
    metadata = {"family": "capital", "accept": accept} if accept is not None else {}
    [result] = AnswerAccuracy().score([ScoredRow("r", "q", answer, reference=reference, metadata=metadata)])
    return result


def test_an_accepted_string_in_the_answer_scores_one_case_insensitively():
    assert score("The capital of France is PARIS.", ["paris"]).score == 1.0


def test_matching_respects_word_boundaries():
    assert score("Parisian food is great.", ["paris"]).score == 0.0
    assert not contains("mice and men", "ice")
    assert contains("the United  States dollar", "united states")


def test_any_of_several_accepted_strings_counts():
    assert score("It is the US dollar.", ["usd", "dollar"]).detail == {"matched": "dollar"}


def test_falls_back_to_the_reference_without_an_accept_list():
    assert score("I think it is cold.", reference="cold").score == 1.0
    assert score("It is warm.", reference="cold").score == 0.0


def test_not_applicable_without_accept_list_or_text_reference():
    assert score("anything").score is None
    assert score('{"a": 1}', reference='{"a": 1}').score is None
