import pytest

from evaluators.base import ScoredRow
from evaluators.hallucination import HallucinationScore, reference_conflict

CONTEXT = "The order is for eight blue vases, to be shipped to Oslo for Lucas Haddad."


def row(answer: str, context: str = CONTEXT, reference: str | None = None) -> ScoredRow:
    return ScoredRow("r", "How many vases?", answer, context=context, reference=reference)


def test_invented_content_scores_higher_than_supported_content():
    supported, invented = HallucinationScore().score(
        [row("Lucas Haddad ordered eight blue vases."), row("Maria Lopez ordered red chairs in Paris.")]
    )
    assert supported.score is not None and invented.score is not None
    assert supported.score < HallucinationScore.threshold < invented.score
    assert supported.passed and not invented.passed


def test_a_number_conflicting_with_the_reference_counts_as_hallucinated():
    # 12 appears in the context, but the reference says 8: a contradiction, not support
    context = "Ship eight vases to Oslo. Call me at extension 12."
    [result] = HallucinationScore().score([row("12 vases", context, reference="8")])
    assert result.score == 1.0
    assert result.detail["contradicted"] == 1


def test_reference_alone_is_enough_evidence():
    answer = "The capital of France is Paris."
    [result] = HallucinationScore().score(
        [ScoredRow("r", "What is the capital of France?", answer, context="", reference=answer)]
    )
    assert result.score == pytest.approx(0.0, abs=1e-6)


def test_rows_without_context_or_reference_are_not_applicable():
    [result] = HallucinationScore().score([row("Paris.", context="")])
    assert result.score is None


def test_reference_conflict_names_the_other_entity():
    assert reference_conflict("Berlin", "The capital is Paris.") is not None
    assert reference_conflict("Paris, of course", "The capital is Paris.") is None
    assert reference_conflict("It has 3 rooms", "It has 4 rooms") is not None


def test_a_closed_book_answer_inventing_a_name_scores_higher_than_the_reference_fact():
    question, reference = "What is the capital of Belgium?", "Brussels"
    right, invented = HallucinationScore().score(
        [ScoredRow("a", question, "The capital of Belgium is Brussels.", reference=reference),
         ScoredRow("b", question, "The capital of Belgium is Leuart.", reference=reference)]
    )  # fmt: skip
    assert right.score is not None and invented.score is not None
    assert right.score < invented.score and right.passed and not invented.passed


def test_is_lower_is_better():
    assert HallucinationScore.higher_is_better is False
