import pytest

from evaluators.base import ScoredRow
from evaluators.faithfulness import ClaimCheck, ClaimVerdict, Faithfulness, answer_claims
from evaluators.hallucination import HallucinationScore

CONTEXT = (
    "The Oberoi family is an Indian family famous for its hotels.The Oberoi Group is a hotel company "
    "with its head office in Delhi. It was founded in 1934."
)
QUESTION = "Where is the head office of the Oberoi Group?"
BELGIUM = (
    "Belgium is a country in western Europe. Its capital is Brussels, which also hosts the main "
    "institutions of the European Union. The country has three official languages: Dutch, French and German."
)


def row(answer: str, context: str = CONTEXT, question: str = QUESTION) -> ScoredRow:
    return ScoredRow("r1", question, answer, context=context)


def test_supported_answer_scores_higher_than_one_naming_a_city_absent_from_the_context():
    supported, unsupported = Faithfulness().score(
        [row("The Oberoi Group has its head office in Delhi."), row("Its head office is in Mumbai.")]
    )
    assert supported.score is not None and unsupported.score is not None
    assert supported.score == 1.0 and supported.passed
    assert unsupported.score < 0.5 and not unsupported.passed
    assert "mumbai" in unsupported.detail["verdicts"][0]["reason"]


def test_a_number_absent_from_the_context_fails():
    [result] = Faithfulness().score([row("The Oberoi Group was founded in 1950.")])
    assert result.score is not None and result.score < 0.5 and result.passed is False


def test_numbers_and_dates_match_in_any_notation():
    context = "The bridge opened on March 2, 1991, and cost 1,000 million dollars."
    answers = ["It opened on 2 March 1991.", "It cost 1000 million dollars.", "It opened on 3 March 1991."]
    opened, cost, wrong = Faithfulness().score(
        [row(a, context, "When did the bridge open?") for a in answers]
    )
    assert opened.score == 1.0 and cost.score == 1.0
    assert wrong.score is not None and wrong.score < Faithfulness.threshold


def test_words_the_question_names_prove_nothing():
    # "Oberoi Group" and "head office" come from the question; only "Mumbai" is new, and unsupported
    [result] = Faithfulness().score([row("The Oberoi Group head office is in Mumbai.")])
    assert result.score is not None and not result.passed


def test_a_claim_stitched_from_two_sentences_scores_lower_than_one_sentence_holds():
    context = "Anna Berg was born in Oslo. Her brother Tom moved to Bergen in 1990."
    held, stitched = Faithfulness().score(
        [row("Anna Berg was born in Oslo.", context, "Where was Anna Berg born?"),
         row("Anna Berg was born in Bergen.", context, "Where was Anna Berg born?")]
    )  # fmt: skip
    assert held.score is not None and stitched.score is not None
    assert stitched.score < held.score and held.passed


def test_an_option_the_question_offers_between_x_and_y_is_an_answer_not_an_echo():
    context = (
        "Kim Clijsters (born 8 June 1983) is a Belgian player. Mary Pierce (born 15 January 1975) is French."
    )
    question = "Between two tennis players Kim Clijsters and Mary Pierce, who is older?"
    named, neither = Faithfulness().score(
        [row("Mary Pierce", context, question), row("Belgian", context, question)]
    )
    assert named.passed and named.score == 1.0
    assert neither.score is not None and not neither.passed


def test_an_or_inside_a_long_clause_offers_no_choice():
    context = (
        "Affirmative action favours members of a disadvantaged group. "
        "Black Economic Empowerment is a form of it."
    )
    question = (
        "What is the name of this policy of favoring members of a disadvantaged group who suffer or "
        "have suffered from discrimination within a culture of which Black Economic Empowerment is a form?"
    )
    [result] = Faithfulness().score([row("Affirmative action", context, question)])
    assert result.passed and result.score == 1.0


def test_a_negated_claim_is_contradicted():
    [result] = Faithfulness().score([row("The Oberoi Group is not a hotel company.")])
    assert result.detail["contradicted"] == 1 and not result.passed


@pytest.mark.parametrize("evaluator", [Faithfulness(), HallucinationScore()], ids=lambda e: e.name)
def test_a_short_invented_answer_is_judged_worse_than_a_faithful_long_one(evaluator):
    question = "What is the capital of Belgium?"
    faithful = (
        "The capital of Belgium is Brussels, which also hosts the main institutions of the European Union."
    )
    long, invented = evaluator.score(
        [row(faithful, BELGIUM, question), row("The capital of Belgium is Leuart.", BELGIUM, question)]
    )
    assert long.score is not None and invented.score is not None
    if evaluator.higher_is_better:
        assert invented.score < long.score and long.passed and not invented.passed
    else:
        assert invented.score > long.score and long.passed and not invented.passed


def test_score_is_the_mean_support_of_the_claims():
    [result] = Faithfulness().score([row("The Oberoi Group is a hotel company. It was founded in 1999.")])
    assert result.detail["claims"] == 2 and result.detail["supported"] == 1
    supports = [verdict["support"] for verdict in result.detail["verdicts"]]
    assert result.score == pytest.approx(sum(supports) / 2, abs=1e-3)


def test_rows_without_context_are_not_applicable():
    [result] = Faithfulness().score([row("Delhi.", context="  ")])
    assert result.score is None and result.detail == {"skipped": "no context"}


def test_json_answers_are_checked_value_by_value():
    assert answer_claims('{"name": "Lucas Haddad", "quantity": 8, "note": null}') == ["Lucas Haddad", "8"]


def test_json_extraction_grounded_in_the_message_is_faithful():
    message = "Please send eight vases in blue to Lucas Haddad in Oslo."
    good = '{"name": "Lucas Haddad", "city": "Oslo", "item": "vase", "color": "blue", "quantity": 8}'
    bad = '{"name": "Lucas Haddad", "city": "Bergen", "item": "vase", "color": "blue", "quantity": 3}'
    scores = Faithfulness().score([row(good, message), row(bad, message)])
    assert scores[0].score == 1.0
    assert scores[1].score is not None and scores[1].score < 0.8 and scores[1].detail["supported"] == 3


EXTRACT = "Turn this customer message into JSON with the keys name, city, item, color and quantity."


@pytest.mark.parametrize(
    ("message", "extraction"),
    [
        ("Please send eight vases in blue to Lucas Haddad in Oslo.",
         '{"name": "Lucas Haddad", "city": "Oslo", "item": "vase", "color": "blue", "quantity": 8}'),
        ("Can I get ten green scarves? My name is Chloe Silva and I live in Austin.",
         '{"name": "Chloe Silva", "city": "Austin", "item": "scarf", "color": "green", "quantity": 10}'),
        ("Good morning. Tom Silva in Dublin wants to buy a red notebook.",
         '{"name": "Tom Silva", "city": "Dublin", "item": "notebook", "color": "red", "quantity": 1}'),
        ("We would like a dozen water bottles in red delivered to Krakow, for Nina Berg.",
         '{"name": "Nina Berg", "city": "Krakow", "item": "water bottle", "color": "red", "quantity": 12}'),
    ],
)  # fmt: skip
def test_a_correct_extraction_from_the_customer_message_is_faithful(message, extraction):
    [result] = Faithfulness().score([row(extraction, message, EXTRACT)])
    assert result.score == 1.0 and result.passed


@pytest.mark.parametrize(
    ("wrong", "value"),
    [('"city": "Bergen"', "bergen"), ('"quantity": 3', "3"), ('"quantity": 80', "80"),
     ('"color": "red"', "red"), ('"name": "Lucas Berg"', "berg")],
)  # fmt: skip
def test_one_invented_or_wrong_value_fails_the_whole_extraction(wrong, value):
    message = "A friend recommended your store. Please send eight vases in blue to Lucas Haddad in Oslo."
    good = {'"city": "Oslo"', '"quantity": 8', '"color": "blue"', '"name": "Lucas Haddad"'}
    key = wrong.split(":")[0]
    parts = [wrong if p.startswith(key) else p for p in sorted(good)] + ['"item": "vase"']
    for evaluator in (Faithfulness(), HallucinationScore()):
        [result] = evaluator.score([row("{" + ", ".join(parts) + "}", message, EXTRACT)])
        assert result.score is not None and not result.passed, (evaluator.name, wrong)
    [result] = Faithfulness().score([row("{" + ", ".join(parts) + "}", message, EXTRACT)])
    assert result.score is not None and result.score < 0.5
    assert value in " ".join(v["reason"] for v in result.detail["verdicts"])


def test_a_custom_judge_replaces_the_offline_one():
    class AlwaysHalf:
        def judge(self, checks: list[ClaimCheck]) -> list[list[ClaimVerdict]]:
            return [[ClaimVerdict(check.answer, 0.5)] for check in checks]

    [result] = Faithfulness(judge=AlwaysHalf()).score([row("anything")])
    assert result.score == 0.5
