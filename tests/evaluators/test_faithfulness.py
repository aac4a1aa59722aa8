import pytest

from evaluators.base import ScoredRow
from evaluators.faithfulness import ClaimCheck, ClaimVerdict, Faithfulness, answer_claims

CONTEXT = (
    "The Oberoi family is an Indian family famous for its hotels.The Oberoi Group is a hotel company "
    "with its head office in Delhi. It was founded in 1934."
)


def row(answer: str, context: str = CONTEXT) -> ScoredRow:
    return ScoredRow("r1", "Where is the head office of the Oberoi Group?", answer, context=context)


def test_supported_answer_scores_higher_than_one_naming_a_city_absent_from_the_context(fake_embedder):
    supported, unsupported = Faithfulness(embedder=fake_embedder).score(
        [row("The Oberoi Group has its head office in Delhi."), row("Its head office is in Mumbai.")]
    )
    assert supported.score is not None and unsupported.score is not None
    assert supported.score > 0.8 and supported.passed
    assert unsupported.score < supported.score
    assert "mumbai" in unsupported.detail["verdicts"][0]["reason"]


def test_a_number_absent_from_the_context_removes_support(fake_embedder):
    [result] = Faithfulness(embedder=fake_embedder).score([row("The Oberoi Group was founded in 1950.")])
    assert result.score == 0.0 and result.passed is False


def test_score_is_the_mean_support_of_the_claims(fake_embedder):
    [result] = Faithfulness(embedder=fake_embedder).score(
        [row("The Oberoi Group is a hotel company. It was founded in 1999.")]
    )
    assert result.detail["claims"] == 2 and result.detail["supported"] == 1
    supports = [verdict["support"] for verdict in result.detail["verdicts"]]
    assert result.score == pytest.approx(sum(supports) / 2, abs=1e-3)


def test_rows_without_context_are_not_applicable(fake_embedder):
    [result] = Faithfulness(embedder=fake_embedder).score([row("Delhi.", context="  ")])
    assert result.score is None and result.detail == {"skipped": "no context"}


def test_json_answers_are_checked_value_by_value():
    assert answer_claims('{"name": "Lucas Haddad", "quantity": 8, "note": null}') == ["Lucas Haddad", "8"]


def test_json_extraction_grounded_in_the_message_is_faithful(fake_embedder):
    message = "Please send eight vases in blue to Lucas Haddad in Oslo."
    good = '{"name": "Lucas Haddad", "city": "Oslo", "item": "vase", "color": "blue", "quantity": 8}'
    bad = '{"name": "Lucas Haddad", "city": "Bergen", "item": "vase", "color": "blue", "quantity": 3}'
    scores = Faithfulness(embedder=fake_embedder).score([row(good, message), row(bad, message)])
    assert scores[0].score == 1.0
    assert scores[1].score == pytest.approx(0.6)


def test_a_custom_judge_replaces_the_offline_one():
    class AlwaysHalf:
        def judge(self, checks: list[ClaimCheck]) -> list[list[ClaimVerdict]]:
            return [[ClaimVerdict(check.answer, 0.5)] for check in checks]

    [result] = Faithfulness(judge=AlwaysHalf()).score([row("anything")])
    assert result.score == 0.5


def test_needs_an_embedder_or_a_judge():
    with pytest.raises(TypeError, match="embedder"):
        Faithfulness()


@pytest.mark.slow
def test_minilm_faithfulness_separates_grounded_from_invented_answers(minilm):
    grounded, invented = Faithfulness(embedder=minilm).score(
        [row("The Oberoi Group's head office is in Delhi."), row("Mumbai, the financial capital of India.")]
    )
    assert grounded.passed and not invented.passed
