"""hallucination_score as the evaluation runner builds it (``build_evaluator``), on hand-made rows whose
right answer is known: a passage, an answer that restates it, and one that invents a capital, a year, a
date or a number. The invented answer must score as more hallucinated however short it is; a number
written another way ("1,000", "1000", "eight") and a reworded faithful answer must not count as
invented. hallucination_score is pure text (no model is loaded); the one slow test puts it beside
answer_relevancy on the real MiniLM embedder, to show that an on-topic answer with an invented fact
passes relevancy and is caught here.
"""

from __future__ import annotations

import pytest

from evalgate.evaluation import factory
from evalgate.evaluation.factory import build_evaluator
from evaluators.base import Evaluator, RowScore, ScoredRow
from evaluators.hallucination import HallucinationScore

CANBERRA = (
    "Canberra is the capital of Australia. The city was founded in 1913 and its Parliament House "
    "opened in 1988. About 1,000 people work in the building."
)
TREATY = "The treaty was signed on March 2, 1991 in Vienna by 14 countries."
THRESHOLD = 0.2
"""hallucination_score passes at <= 0.2 (docs/evaluators.md), written out rather than read from the code."""


def _evaluator() -> Evaluator:
    return build_evaluator("hallucination_score")


def _score(question: str, answer: str, context: str = "", reference: str | None = None) -> RowScore:
    [result] = _evaluator().score([ScoredRow("r", question, answer, context=context, reference=reference)])
    assert result.score is not None, result.detail
    return result


def test_the_runner_builds_it_without_loading_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model() -> None:
        raise AssertionError("hallucination_score must not load the sentence embedder")

    monkeypatch.setattr(factory, "default_embedder", no_model)

    evaluator = _evaluator()

    assert isinstance(evaluator, HallucinationScore) and evaluator.threshold == THRESHOLD


@pytest.mark.parametrize(
    ("question", "context", "faithful", "invented"),
    [
        pytest.param(
            "What is the capital of Australia?",
            CANBERRA,
            "Canberra is the capital of Australia. It was founded in 1913, and its Parliament House "
            "opened in 1988.",
            "The capital of Australia is Sydney.",
            id="wrong-capital-short-vs-long-restatement",
        ),
        pytest.param(
            "When was the city founded?",
            CANBERRA,
            "The city was founded in 1913.",
            "The city was founded in 1931.",
            id="wrong-year",
        ),
        pytest.param(
            "When was the treaty signed?",
            TREATY,
            "It was signed on 2 March 1991.",  # the passage's date, written the other way round
            "It was signed on 2 March 1993.",
            id="wrong-date",
        ),
        pytest.param(
            "How many people work in Parliament House?",
            CANBERRA,
            "About 1,000 people work in the building.",
            "About 2,000 people work in the building.",
            id="wrong-number",
        ),
        pytest.param(
            "Where was the treaty signed?",
            TREATY,
            "The treaty was signed in Vienna on March 2, 1991. Fourteen countries signed it.",
            "Geneva.",
            id="wrong-city-one-word",
        ),
    ],
)
def test_an_invented_fact_scores_as_hallucinated_and_the_restatement_does_not(
    question: str, context: str, faithful: str, invented: str
) -> None:
    right, wrong = _evaluator().score(
        [ScoredRow("right", question, faithful, context=context),
         ScoredRow("wrong", question, invented, context=context)]
    )  # fmt: skip

    assert right.score is not None and wrong.score is not None
    assert right.score <= THRESHOLD < wrong.score, (right.score, wrong.score)
    assert right.passed and not wrong.passed


@pytest.mark.parametrize(
    ("question", "answer", "context", "reference"),
    [
        pytest.param(
            "How many people work in Parliament House?",
            "About 1000 people work in the building.",
            CANBERRA,
            None,
            id="1000-against-a-passage-saying-1,000",
        ),
        pytest.param(
            "How many metres are in a kilometre?",
            "There are 1000 metres in a kilometre.",
            "",
            "1,000",
            id="1000-against-the-reference-1,000",
        ),
        pytest.param(
            "How many metres are in a kilometre?",
            "There are 1,000 metres in a kilometre.",
            "",
            "1000",
            id="1,000-against-the-reference-1000",
        ),
        pytest.param(
            "How many legs does a spider have?", "A spider has 8 legs.", "", "eight", id="8-against-eight"
        ),
        pytest.param(
            "How many countries signed the treaty?",
            "Fourteen countries signed the treaty.",
            TREATY,
            None,
            id="fourteen-against-14",
        ),
        pytest.param(
            "When was the treaty signed?",
            "The treaty was signed on Mar. 2, 1991.",
            TREATY,
            None,
            id="abbreviated-month",
        ),
        pytest.param(
            "How many people work in Parliament House?",
            "About one thousand people work in the building.",
            CANBERRA,
            None,
            id="one-thousand-against-1,000",
        ),
    ],
)
def test_a_number_written_another_way_is_not_invented(
    question: str, answer: str, context: str, reference: str | None
) -> None:
    result = _score(question, answer, context, reference)

    assert result.score == pytest.approx(0.0, abs=1e-6), result.detail
    assert result.detail["contradicted"] == 0


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("When did Parliament House open?", "In 1988, Parliament House opened."),
        ("When was the city founded?", "The founding of the city was in 1913."),  # "founded" ~ "founding"
        ("What is the capital of Australia?", "Australia's capital is Canberra."),
    ],
)
def test_a_reworded_faithful_answer_passes(question: str, answer: str) -> None:
    result = _score(question, answer, CANBERRA)

    assert result.score is not None and result.score <= THRESHOLD and result.passed, result.detail


def test_a_paraphrase_with_new_words_still_scores_below_the_same_paraphrase_with_a_wrong_year() -> None:
    # "established" is not in the passage: a documented limit (lexical grounding) costs the faithful
    # paraphrase support, but the invented year must cost the other answer more
    question = "What is the capital of Australia?"
    right, wrong = _evaluator().score(
        [ScoredRow("right", question, "Australia's capital is Canberra, which was established in 1913.",
                   context=CANBERRA),
         ScoredRow("wrong", question, "Australia's capital is Canberra, which was established in 1931.",
                   context=CANBERRA)]
    )  # fmt: skip

    assert right.score is not None and wrong.score is not None
    assert right.score < wrong.score and not wrong.passed


def test_a_wrong_capital_contradicts_the_reference_even_beside_a_passage_that_names_it() -> None:
    result = _score("What is the capital of Australia?", "Sydney.", CANBERRA, reference="Canberra")

    assert result.score == 1.0 and result.detail["contradicted"] == 1


@pytest.mark.slow
def test_on_topic_answers_with_an_invented_fact_pass_relevancy_but_not_hallucination() -> None:
    relevancy = build_evaluator("answer_relevancy")  # the real MiniLM, from its package folder
    rows = [
        ScoredRow("date", "When was the treaty signed?", "The treaty was signed in Vienna on March 2, 1991.",
                  context=TREATY),
        ScoredRow("wrong-date", "When was the treaty signed?", "It was signed on 2 March 1993.",
                  context=TREATY),
        ScoredRow("number", "How many people work in Parliament House?",
                  "About 1000 people work in the building.", context=CANBERRA),
        ScoredRow("wrong-number", "How many people work in Parliament House?",
                  "About 2000 people work in the building.", context=CANBERRA),
    ]  # fmt: skip

    relevant = relevancy.score(rows)
    hallucinated = _evaluator().score(rows)

    assert all(result.passed for result in relevant), [r.score for r in relevant]
    assert [result.passed for result in hallucinated] == [True, False, True, False], [
        r.score for r in hallucinated
    ]
