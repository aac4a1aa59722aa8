import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch

from evaluators.base import ScoredRow
from evaluators.claim_judges import JudgeError, LLMJudge, NLIJudge, label_index
from evaluators.faithfulness import ClaimCheck, Faithfulness


class FakeChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that answers from a queue of replies."""

    replies: ClassVar[list[str]] = []
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        content = FakeChat.replies.pop(0)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_server() -> Iterator[str]:
    FakeChat.replies, FakeChat.requests = [], []
    server = HTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_llm_judge_asks_for_claims_then_verdicts(chat_server):
    FakeChat.replies = [
        '["Delhi is the head office.", "It opened in 1950."]',
        '```json\n[{"claim": "a", "verdict": 1, "reason": "stated"},'
        ' {"claim": "b", "verdict": 0, "contradicted": true, "reason": "1934"}]\n```',
    ]
    judge = LLMJudge(chat_server, "judge-model", api_key="secret")
    [result] = Faithfulness(judge=judge).score(
        [ScoredRow("r", "Where?", "Delhi, opened 1950.", context="Head office in Delhi since 1934.")]
    )
    assert result.score == 0.5
    assert result.detail["contradicted"] == 1
    assert [r["path"] for r in FakeChat.requests] == ["/v1/chat/completions"] * 2
    assert FakeChat.requests[0]["auth"] == "Bearer secret"
    assert FakeChat.requests[0]["model"] == "judge-model"
    assert "Head office in Delhi since 1934." in FakeChat.requests[1]["messages"][0]["content"]


def test_llm_judge_rejects_a_reply_that_is_not_json(chat_server):
    FakeChat.replies = ["Sure! The claims are: Delhi."]
    with pytest.raises(JudgeError, match="did not reply with JSON"):
        LLMJudge(chat_server, "m").judge([ClaimCheck("q", "Delhi.", "ctx")])


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
