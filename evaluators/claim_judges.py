"""Optional claim judges for faithfulness and hallucination_score: an NLI cross-encoder, an LLM judge.

    judge = NLIJudge.from_path("/models/nli-deberta-v3-base")          # local folder, offline
    judge = LLMJudge("http://127.0.0.1:8000/v1", "my-model", api_key="...")
    Faithfulness(judge=judge)

``NLIJudge``: support(c) = P(entailment | premise = evidence, hypothesis = claim); contradicted when
P(contradiction) is the largest of the labels. The label indices come from the model config.
``LLMJudge`` (ragas-style, two calls per row): the model lists the answer's claims
(``{"claims": [...]}``), then gives each a verdict 1 (supported by the evidence) or 0
(``{"verdicts": [...]}``); support = verdict, and "contradicted": true flags a contradiction. Works with
any OpenAI-compatible ``/chat/completions`` endpoint through the official ``openai`` SDK
(``pip install -e '.[judge]'``), imported only when an ``LLMJudge`` is built. JSON mode
(``response_format={"type": "json_object"}``) is asked for unless ``json_mode=False``; a bare JSON list
is accepted too, for servers without it. Every failure (timeout, refused connection, HTTP error after
the SDK's retries, malformed reply) raises ``JudgeError`` naming the endpoint, the model and the cause.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluators import text
from evaluators.faithfulness import ClaimCheck, ClaimVerdict, answer_claims

CLAIMS_PROMPT = """Break the answer into short, self-contained factual claims.
Question: {question}
Answer: {answer}
Reply with a JSON object only: {{"claims": ["first claim", "second claim"]}}"""

VERDICTS_PROMPT = """For each claim, decide whether the context supports it.
Context: {evidence}
Claims (JSON): {claims}
Reply with a JSON object only, {{"verdicts": [...]}}, holding one object per claim, in order:
{{"claim": "...", "verdict": 1 if the context supports the claim else 0, "contradicted": true if the
context contradicts it else false, "reason": "one short sentence"}}"""


class JudgeError(RuntimeError):
    """A judge backend gave no usable answer (timeout, no connection, HTTP error, malformed reply)."""


class NLIJudge:
    """Claims from ``answer_claims``, each scored by an NLI cross-encoder against the evidence."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = 512):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        entailment = label_index(model.config.id2label, "entail")
        assert entailment is not None  # required=True raises instead of returning None
        self.entailment: int = entailment
        self.contradiction = label_index(model.config.id2label, "contradict", required=False)

    @classmethod
    def from_path(cls, path: str | Path, device: str = "cpu") -> NLIJudge:
        """Load the cross-encoder and its tokenizer from a local folder."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(path)).to(device).eval()
        return cls(model, AutoTokenizer.from_pretrained(str(path)))

    def judge(self, checks: Sequence[ClaimCheck]) -> list[list[ClaimVerdict]]:
        """One verdict per claim of each check."""
        return [self._judge_one(check) for check in checks]

    def _judge_one(self, check: ClaimCheck) -> list[ClaimVerdict]:
        import torch

        claims = answer_claims(check.answer)
        if not claims:
            return []
        batch = self.tokenizer(
            [check.evidence] * len(claims),
            claims,
            padding=True,
            truncation="only_first",
            max_length=self.max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            probabilities = torch.softmax(self.model(**batch).logits.float(), dim=-1).tolist()
        return [self._verdict(claim, row) for claim, row in zip(claims, probabilities, strict=True)]

    def _verdict(self, claim: str, probabilities: list[float]) -> ClaimVerdict:
        top = max(range(len(probabilities)), key=probabilities.__getitem__)
        support = probabilities[self.entailment]
        reason = f"P(entailment) {support:.2f}"
        return ClaimVerdict(claim, float(support), top == self.contradiction, reason)


def label_index(id2label: dict[Any, str], prefix: str, *, required: bool = True) -> int | None:
    """Index of the label starting with ``prefix`` (case-insensitive) in a model's ``id2label``."""
    for index, label in id2label.items():
        if str(label).lower().startswith(prefix):
            return int(index)
    if required:
        raise ValueError(f"no label starting with {prefix!r} in the model's id2label {id2label}")
    return None


NO_API_KEY = "no-key"
"""The key sent when neither ``api_key`` nor ``OPENAI_API_KEY`` gives one (a local server checks none;
the SDK refuses to start without some key)."""
JUDGE_INSTALL_HINT = "pip install -e '.[judge]' (the openai SDK)"
RETRIED_STATUSES = frozenset({408, 409, 429})
"""HTTP statuses the SDK retries (with every 5xx) before the error reaches the judge."""
TRUE_VERDICTS = frozenset({"1", "1.0", "true", "yes", "supported"})
FALSE_VERDICTS = frozenset({"0", "0.0", "false", "no", "unsupported", "not supported"})


class LLMJudge:
    """Claims, then verdicts, from a chat model on an OpenAI-compatible endpoint (the ``openai`` SDK).

    ``base_url`` ends where ``/chat/completions`` is appended (``http://host:8000/v1``); ``timeout`` is
    in seconds per request, ``max_retries`` the SDK's own retries of timeouts, lost connections, 408,
    409, 429 and 5xx (exponential back-off) before ``JudgeError``. ``json_mode`` asks for
    ``response_format={"type": "json_object"}``; ``max_tokens`` caps each reply (the server's default
    when None). ``client``: an ``openai.OpenAI``-like object (``client.chat.completions.create``), built
    from the other arguments when None.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        json_mode: bool = True,
        max_tokens: int | None = None,
        client: Any = None,
    ):
        _check_arguments(base_url, model, timeout, max_retries, max_tokens)
        try:
            import openai
        except ImportError:
            raise ImportError(f"LLMJudge needs the openai SDK: {JUDGE_INSTALL_HINT}") from None
        self.openai: Any = openai
        self.base_url, self.model = base_url.rstrip("/"), model
        self.timeout, self.max_retries = float(timeout), max_retries
        self.json_mode, self.max_tokens = json_mode, max_tokens
        key = api_key or os.environ.get("OPENAI_API_KEY") or NO_API_KEY
        self.client: Any = client or openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=max_retries
        )

    @property
    def where(self) -> str:
        """The endpoint and model, as every ``JudgeError`` names them."""
        return f"LLM judge {self.model!r} at {self.base_url}"

    def judge(self, checks: Sequence[ClaimCheck]) -> list[list[ClaimVerdict]]:
        """Two chat calls per check: list the claims, then judge them against the evidence."""
        return [self._judge_one(check) for check in checks]

    def _judge_one(self, check: ClaimCheck) -> list[ClaimVerdict]:
        prompt = CLAIMS_PROMPT.format(question=check.question, answer=check.answer)
        claims = [str(claim) for claim in self._reply_items(prompt, "claims") if str(claim).strip()]
        if not claims:
            return []
        prompt = VERDICTS_PROMPT.format(evidence=check.evidence, claims=json.dumps(claims))
        verdicts = self._reply_items(prompt, "verdicts")
        if len(verdicts) != len(claims) or not all(isinstance(v, dict) for v in verdicts):
            raise JudgeError(
                f"{self.where}: expected {len(claims)} verdict objects, got {json.dumps(verdicts)[:200]}"
            )
        return [
            ClaimVerdict(
                claim,
                self._support(v.get("verdict")),
                str(v.get("contradicted", False)).strip().lower() in {"true", "1", "yes"},
                str(v.get("reason", "")),
            )
            for claim, v in zip(claims, verdicts, strict=True)
        ]

    def _support(self, verdict: Any) -> float:
        """1.0 for a verdict of 1 (true, yes, supported), 0.0 for 0 (false, no, unsupported)."""
        spelled = str(verdict).strip().lower()
        if spelled in TRUE_VERDICTS:
            return 1.0
        if spelled in FALSE_VERDICTS:
            return 0.0
        raise JudgeError(f"{self.where}: a verdict must be 1 or 0, got {verdict!r}")

    def _reply_items(self, prompt: str, key: str) -> list[Any]:
        """The list under ``key`` of the JSON object the judge replies with (or a bare JSON list)."""
        content = self._chat(prompt)
        try:
            value = text.parse_json(content)
        except ValueError:
            raise JudgeError(f"{self.where}: the judge did not reply with JSON: {content[:200]!r}") from None
        if isinstance(value, dict) and isinstance(value.get(key), list):
            return list(value[key])
        if isinstance(value, list):
            return value
        raise JudgeError(
            f"{self.where}: expected a JSON object with a {key!r} list (or a bare list), "
            f"got {content[:200]!r}"
        )

    def _chat(self, prompt: str) -> str:
        """The reply's text to one user message (temperature 0)."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
        }
        if self.json_mode:
            request["response_format"] = {"type": "json_object"}
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        try:
            completion = self.client.chat.completions.create(**request)
        except self.openai.OpenAIError as error:
            raise JudgeError(f"{self.where}: {self._cause(error)}") from error
        try:
            content = completion.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise JudgeError(f"{self.where}: the reply holds no message: {str(completion)[:200]}") from None
        if not isinstance(content, str) or not content.strip():
            raise JudgeError(f"{self.where}: the reply's message is empty ({content!r})")
        return content

    def _cause(self, error: Exception) -> str:
        """What went wrong, in words, for an ``openai`` SDK error (after the SDK's own retries)."""
        openai, retries = self.openai, f"{self.max_retries} retries"
        if isinstance(error, openai.APITimeoutError):
            return f"timed out: no answer within {self.timeout:g} s (after {retries})"
        if isinstance(error, openai.APIConnectionError):
            return f"no connection: {_root_cause(error)} (after {retries})"
        if isinstance(error, openai.APIStatusError):
            status = int(error.status_code)
            retried = f" (after {retries})" if status in RETRIED_STATUSES or status >= 500 else ""
            limited = "rate-limited, " if isinstance(error, openai.RateLimitError) else ""
            return f"{limited}HTTP {status}{retried}: {_body(error)}"
        return f"{type(error).__name__}: {error}"


def _check_arguments(
    base_url: str, model: str, timeout: float, max_retries: int, max_tokens: int | None
) -> None:
    """``ValueError`` naming the first bad constructor argument of ``LLMJudge``."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    if not model.strip():
        raise ValueError("model must name the judge model, got an empty string")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries!r}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be 1 or more (or None), got {max_tokens!r}")


def _root_cause(error: BaseException) -> str:
    """The innermost exception under ``error`` (the socket's refusal under the SDK's 'Connection error.')."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _body(error: Any) -> str:
    """The start of an HTTP error's response body (the server's own words), or the SDK's message."""
    body = str(getattr(getattr(error, "response", None), "text", "") or "").strip()
    return (body or str(error))[:300]
