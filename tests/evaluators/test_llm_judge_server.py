"""``LLMJudge`` against a real OpenAI-compatible server: ``transformers serve`` pinned to the embedded
SmolLM2-135M-Instruct (its local folder, offline), through the ``openai`` SDK.

A 135M model seldom writes the JSON the judge asks for, so a row's outcome is one of two, and both are
checked: verdicts with scores in [0, 1], or a ``JudgeError`` naming the endpoint, the model and the
malformed reply. The failure paths are checked for real: a model the server does not serve (HTTP 400 in
the server's own words) and a timeout too short for any answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from evaluators.base import RowScore, ScoredRow
from evaluators.claim_judges import JudgeError, LLMJudge
from evaluators.faithfulness import ClaimCheck, Faithfulness
from tests.support.openai_server import ServedModel, serving

pytestmark = pytest.mark.slow

MAX_TOKENS = 64
"""Cap on each reply: enough for a short claims object, and it bounds the module's time on CPU."""
MALFORMED = (
    "did not reply with JSON",
    "expected a JSON object with",
    "verdict objects",
    "verdict must be 1 or 0",
    "the reply's message is empty",
)
"""The ways ``LLMJudge`` names a reply it cannot use."""
ROWS = [
    ScoredRow(
        "r1", "Where is the head office?", "The head office is in Delhi.", context="Head office: Delhi."
    ),
    ScoredRow(
        "r2", "When did it open?", "It opened in 1950 in Mumbai.", context="It opened in 1934 in Kolkata."
    ),
]

CHECK = ClaimCheck(ROWS[0].question, ROWS[0].answer, ROWS[0].context)


@pytest.fixture(scope="module")
def served(embedded_model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    """``transformers serve`` with the embedded model, shared by the module's tests."""
    with serving(embedded_model_cache, tmp_path_factory.mktemp("serve")) as running:
        yield running


def score_or_error(judge: LLMJudge, row: ScoredRow) -> RowScore | JudgeError:
    """Faithfulness of one row through ``judge``, or the ``JudgeError`` it raised."""
    try:
        [result] = Faithfulness(judge=judge).score([row])
    except JudgeError as error:
        return error
    return result


def test_the_server_is_up_and_names_its_model(served: ServedModel) -> None:
    models = httpx.get(f"{served.base_url}/models", timeout=10).json()
    assert served.model in [model["id"] for model in models["data"]]
    print(f"\ntransformers serve: /health answered {served.started_in:.1f} s after launch")


@pytest.mark.parametrize("json_mode", [True, False], ids=["json-mode", "plain"])
def test_faithfulness_through_the_served_judge(served: ServedModel, json_mode: bool) -> None:
    judge = LLMJudge(served.base_url, served.model, timeout=60, json_mode=json_mode, max_tokens=MAX_TOKENS)
    started = time.perf_counter()
    outcomes = [score_or_error(judge, row) for row in ROWS]
    print(f"\n{len(ROWS)} rows judged in {time.perf_counter() - started:.1f} s (json_mode={json_mode}):")
    for outcome in outcomes:
        print(f"  {outcome!r}"[:300])
        if isinstance(outcome, JudgeError):
            message = str(outcome)
            assert f"LLM judge {served.model!r} at {served.base_url}" in message
            assert any(phrase in message for phrase in MALFORMED), message
        elif outcome.score is not None:
            assert 0.0 <= outcome.score <= 1.0
            assert outcome.detail["claims"] == len(outcome.detail["verdicts"]) >= 1
        else:
            assert outcome.detail == {"skipped": "the answer makes no claim"}


def test_a_model_the_server_does_not_serve_is_a_judge_error(served: ServedModel) -> None:
    judge = LLMJudge(served.base_url, "not-a-served-model", max_retries=0, max_tokens=MAX_TOKENS)
    with pytest.raises(JudgeError, match=r"HTTP 4\d\d: .*not-a-served-model") as caught:
        judge.judge([CHECK])
    assert served.base_url in str(caught.value)


def test_a_timeout_too_short_for_an_answer_is_a_judge_error(served: ServedModel) -> None:
    judge = LLMJudge(served.base_url, served.model, timeout=0.01, max_retries=0, max_tokens=8)
    with pytest.raises(JudgeError, match=r"timed out: no answer within 0.01 s \(after 0 retries\)") as caught:
        judge.judge([CHECK])
    assert f"{served.model!r} at {served.base_url}" in str(caught.value)
