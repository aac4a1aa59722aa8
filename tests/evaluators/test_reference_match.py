import pytest

from evaluators.base import ScoredRow
from evaluators.reference_match import ExactMatch, JSONFieldMatch, RougeL, TokenF1, token_f1

REFERENCE = '{"name": "Lucas Haddad", "city": "Oslo", "quantity": 8}'


def one(evaluator, answer: str, reference: str | None):
    [result] = evaluator.score([ScoredRow("r", "q", answer, reference=reference)])
    return result


def test_exact_match_ignores_case_punctuation_and_articles():
    assert one(ExactMatch(), "the Capital of France!", "Capital of France").score == 1.0
    assert one(ExactMatch(), "Paris", "Lyon").score == 0.0


def test_exact_match_compares_json_references_as_parsed_objects():
    reordered = '```json\n{"quantity": 8, "city": "Oslo", "name": "Lucas Haddad"}\n```'
    assert one(ExactMatch(), reordered, REFERENCE).score == 1.0
    assert one(ExactMatch(), reordered.replace("8", "9"), REFERENCE).score == 0.0


def test_token_f1_is_squad_f1():
    # answer tokens: capital paris (2); reference: paris (1); common 1 -> P 0.5, R 1, F1 2/3
    assert token_f1("the capital Paris", "Paris") == pytest.approx(2 / 3)
    assert one(TokenF1(), "Lyon", "Paris").score == 0.0


def test_rouge_l_rewards_the_longest_common_subsequence():
    close = one(RougeL(), "The capital of France is Paris.", "The capital of France is Paris.")
    far = one(RougeL(), "Bananas are yellow.", "The capital of France is Paris.")
    assert close.score == pytest.approx(1.0) and far.score == 0.0


def test_json_field_match_is_the_share_of_reference_fields_matched():
    result = one(JSONFieldMatch(), '{"name": "lucas haddad", "city": "Bergen", "quantity": 8.0}', REFERENCE)
    assert result.score == pytest.approx(2 / 3)
    assert result.detail["wrong"] == ["city"] and result.detail["missing"] == []


def test_json_field_match_scores_unparseable_answers_zero_and_skips_text_references():
    assert one(JSONFieldMatch(), "Lucas from Oslo", REFERENCE).score == 0.0
    assert one(JSONFieldMatch(), "Paris", "Paris").score is None


def test_rows_without_a_reference_are_not_applicable():
    for evaluator in (ExactMatch(), TokenF1(), RougeL(), JSONFieldMatch()):
        assert one(evaluator, "Paris", None).score is None
