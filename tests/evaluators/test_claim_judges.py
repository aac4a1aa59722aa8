import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch

from evaluators.base import ScoredRow
from evaluators.claim_judges import JudgeError, LLMJudge, NLIJudge, label_index
from evaluators.faithfulness import ClaimCheck, Faithfulness
from tests.support.openai_server import free_port, require_openai

CHECK = ClaimCheck("Where is the head office?", "Delhi.", "Head office: Delhi.")


class FakeChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions answering from a queue: a reply's text, or an HTTP
    (status, body) error; ``delay`` seconds before each answer."""

    replies: ClassVar[list[str | tuple[int, str]]] = []
    requests: ClassVar[list[dict[str, Any]]] = []
    delay: ClassVar[float] = 0.0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        time.sleep(FakeChat.delay)
        reply = FakeChat.replies.pop(0)
        status, payload = reply if isinstance(reply, tuple) else (200, self.completion(reply))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload.encode())))
            self.send_header("retry-after-ms", "10")  # the SDK's back-off before a retry
            self.end_headers()
            self.wfile.write(payload.encode())
        except BrokenPipeError:  # the client gave up waiting (the timeout test)
            pass

    @staticmethod
    def completion(content: str) -> str:
        message = {"role": "assistant", "content": content}
        return json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": message}]})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_server() -> Iterator[str]:
    require_openai()
    FakeChat.replies, FakeChat.requests, FakeChat.delay = [], [], 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_llm_judge_asks_for_claims_then_verdicts_in_json_mode(chat_server):
    FakeChat.replies = [
        '{"claims": ["Delhi is the head office.", "It opened in 1950."]}',
        '```json\n{"verdicts": [{"claim": "a", "verdict": 1, "reason": "stated"},'
        ' {"claim": "b", "verdict": 0, "contradicted": true, "reason": "1934"}]}\n```',
    ]
    judge = LLMJudge(chat_server, "judge-model", api_key="secret", max_tokens=256)
    [result] = Faithfulness(judge=judge).score(
        [ScoredRow("r", "Where?", "Delhi, opened 1950.", context="Head office in Delhi since 1934.")]
    )
    assert result.score == 0.5
    assert result.detail["contradicted"] == 1
    assert [v["reason"] for v in result.detail["verdicts"]] == ["stated", "1934"]
    assert [r["path"] for r in FakeChat.requests] == ["/v1/chat/completions"] * 2
    first, second = FakeChat.requests
    assert first["auth"] == "Bearer secret"
    assert (first["model"], first["temperature"], first["max_tokens"]) == ("judge-model", 0, 256)
    assert first["response_format"] == {"type": "json_object"}
    assert '{"claims": [' in first["messages"][0]["content"]
    assert "Head office in Delhi since 1934." in second["messages"][0]["content"]
    assert '"It opened in 1950."' in second["messages"][0]["content"]


def test_llm_judge_without_json_mode_accepts_bare_lists(chat_server):
    FakeChat.replies = ['["Delhi is the head office."]', '[{"claim": "a", "verdict": "yes"}]']
    [[verdict]] = LLMJudge(chat_server, "m", json_mode=False).judge([CHECK])
    assert (verdict.claim, verdict.support, verdict.contradicted) == ("Delhi is the head office.", 1.0, False)
    assert all("response_format" not in r and "max_tokens" not in r for r in FakeChat.requests)


def test_an_answer_without_claims_asks_no_verdicts(chat_server):
    FakeChat.replies = ['{"claims": []}']
    assert LLMJudge(chat_server, "m").judge([CHECK]) == [[]]
    assert len(FakeChat.requests) == 1


def test_llm_judge_rejects_a_reply_that_is_not_json(chat_server):
    FakeChat.replies = ["Sure! The claims are: Delhi."]
    with pytest.raises(JudgeError, match="did not reply with JSON") as caught:
        LLMJudge(chat_server, "m").judge([CHECK])
    assert f"'m' at {chat_server}" in str(caught.value)
    assert "Sure! The claims are" in str(caught.value)


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        (['{"answer": ["Delhi."]}'], "expected a JSON object with a 'claims' list"),
        (['{"claims": ["a", "b"]}', '{"verdicts": [{"verdict": 1}]}'], "expected 2 verdict objects"),
        (
            ['{"claims": ["a"]}', '{"verdicts": [{"verdict": "maybe"}]}'],
            "a verdict must be 1 or 0, got 'maybe'",
        ),
        (["   "], "the reply's message is empty"),
    ],
)
def test_malformed_replies_are_judge_errors(chat_server, replies, message):
    FakeChat.replies = list(replies)
    with pytest.raises(JudgeError, match=message):
        LLMJudge(chat_server, "m").judge([CHECK])


def test_an_http_error_names_the_status_and_the_server_s_words_without_retrying(chat_server):
    FakeChat.replies = [(400, '{"detail": "model not-here is not served"}')]
    with pytest.raises(JudgeError, match=r"'not-here' at .*: HTTP 400: .*model not-here is not served"):
        LLMJudge(chat_server, "not-here", max_retries=3).judge([CHECK])
    assert len(FakeChat.requests) == 1


def test_rate_limiting_is_retried_by_the_sdk_then_a_judge_error(chat_server):
    FakeChat.replies = [(429, '{"error": "slow down"}')] * 3
    with pytest.raises(JudgeError, match=r"rate-limited, HTTP 429 \(after 2 retries\): .*slow down"):
        LLMJudge(chat_server, "m", max_retries=2).judge([CHECK])
    assert len(FakeChat.requests) == 3


def test_a_server_error_then_an_answer_succeeds_after_a_retry(chat_server):
    FakeChat.replies = [(503, "busy"), '{"claims": []}']
    assert LLMJudge(chat_server, "m", max_retries=1).judge([CHECK]) == [[]]
    assert len(FakeChat.requests) == 2


def test_a_timeout_is_a_judge_error(chat_server):
    FakeChat.replies, FakeChat.delay = ['{"claims": []}'], 1.0
    with pytest.raises(JudgeError, match=r"timed out: no answer within 0.2 s \(after 0 retries\)"):
        LLMJudge(chat_server, "m", timeout=0.2, max_retries=0).judge([CHECK])


def test_a_refused_connection_is_a_judge_error():
    require_openai()
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(
        JudgeError, match=r"no connection: .*(refused|Connect).* \(after 0 retries\)"
    ) as caught:
        LLMJudge(url, "m", max_retries=0).judge([CHECK])
    assert url in str(caught.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"base_url": "127.0.0.1:8000/v1"}, "base_url must start with http"),
        ({"model": " "}, "model must name the judge model"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"max_retries": -1}, "max_retries must be 0 or more"),
        ({"max_tokens": 0}, "max_tokens must be 1 or more"),
    ],
)
def test_bad_judge_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        LLMJudge(**{"base_url": "http://127.0.0.1:1/v1", "model": "m", **arguments})


class StubCompletions:
    """``client.chat.completions`` of an OpenAI-like client that records its requests."""

    def __init__(self, contents: list[str | None]):
        self.contents, self.requests = contents, []  # type: list[str | None], list[dict[str, Any]]

    def create(self, **request: Any) -> SimpleNamespace:
        self.requests.append(request)
        message = SimpleNamespace(content=self.contents.pop(0))
        return SimpleNamespace(choices=[SimpleNamespace(message=message)])


def test_an_injected_openai_like_client_is_used():
    require_openai()
    completions = StubCompletions(['{"claims": ["a"]}', '{"verdicts": [{"verdict": false}]}'])
    client = SimpleNamespace(chat=SimpleNamespace(completions=completions))
    [[verdict]] = LLMJudge("http://judge.invalid/v1", "m", client=client).judge([CHECK])
    assert verdict.support == 0.0
    assert [r["model"] for r in completions.requests] == ["m", "m"]


class StubNLI:
    """Shape of a transformers sequence classifier: config.id2label and logits per pair."""

    config = SimpleNamespace(id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"})

    def __call__(self, **batch: torch.Tensor) -> SimpleNamespace:
        # entail when the hypothesis (second segment) is "Delhi", contradict otherwise
        logits = [[0.0, 0.0, 9.0] if "Delhi" in h else [9.0, 0.0, 0.0] for h in batch["hypotheses"]]
        return SimpleNamespace(logits=torch.tensor(logits))


def stub_tokenizer(premises: list[str], hypotheses: list[str], **kwargs: Any) -> dict[str, Any]:
    assert kwargs["truncation"] == "only_first"
    return {"hypotheses": hypotheses}


def test_nli_judge_uses_the_entailment_label_from_the_config():
    judge = NLIJudge(StubNLI(), stub_tokenizer)
    [verdicts] = judge.judge([ClaimCheck("q", "The office is in Delhi. It is in Mumbai.", "Office: Delhi.")])
    assert [round(v.support, 3) for v in verdicts] == [1.0, 0.0]
    assert [v.contradicted for v in verdicts] == [False, True]


def test_label_index_requires_an_entailment_label():
    assert label_index({"0": "entailment", "1": "not_entailment"}, "entail") == 0
    with pytest.raises(ValueError, match="entail"):
        label_index({0: "LABEL_0", 1: "LABEL_1"}, "entail")
