"""Optional claim judges for faithfulness and hallucination_score: an NLI cross-encoder, an LLM judge.

    judge = NLIJudge.from_path("/models/nli-deberta-v3-base")          # local folder, offline
    judge = LLMJudge("http://127.0.0.1:8000/v1", "my-model", api_key="...")
    Faithfulness(judge=judge)

``NLIJudge``: support(c) = P(entailment | premise = evidence, hypothesis = claim); contradicted when
P(contradiction) is the largest of the labels. The label indices come from the model config.
``LLMJudge`` (ragas-style, two calls per row): the model lists the answer's claims, then gives each a
verdict 1 (supported by the evidence) or 0; support = verdict, and "contradicted": true flags a
contradiction. Works with any OpenAI-compatible ``/chat/completions`` endpoint (httpx).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluators import text
from evaluators.faithfulness import ClaimCheck, ClaimVerdict, answer_claims

CLAIMS_PROMPT = """Break the answer into short, self-contained factual claims.
Question: {question}
Answer: {answer}
Reply with a JSON list of strings only."""

VERDICTS_PROMPT = """For each claim, decide whether the context supports it.
Context: {evidence}
Claims (JSON): {claims}
Reply with a JSON list only, one object per claim, in order:
{{"claim": "...", "verdict": 1 if the context supports the claim else 0, "contradicted": true if the
context contradicts it else false, "reason": "one short sentence"}}"""


class JudgeError(RuntimeError):
    """A judge backend gave an answer that cannot be used (bad HTTP status, malformed reply)."""


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


class LLMJudge:
    """Claims, then verdicts, from a chat model on an OpenAI-compatible endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        client: Any = None,
    ):
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.client = client or httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def judge(self, checks: Sequence[ClaimCheck]) -> list[list[ClaimVerdict]]:
        """Two chat calls per check: list the claims, then judge them against the evidence."""
        return [self._judge_one(check) for check in checks]

    def _judge_one(self, check: ClaimCheck) -> list[ClaimVerdict]:
        claims = self._reply_list(CLAIMS_PROMPT.format(question=check.question, answer=check.answer))
        claims = [str(claim) for claim in claims if str(claim).strip()]
        if not claims:
            return []
        prompt = VERDICTS_PROMPT.format(evidence=check.evidence, claims=json.dumps(claims))
        verdicts = self._reply_list(prompt)
        if len(verdicts) != len(claims) or not all(isinstance(v, dict) for v in verdicts):
            raise JudgeError(f"expected {len(claims)} verdict objects, got {json.dumps(verdicts)[:200]}")
        return [
            ClaimVerdict(
                claim,
                1.0 if str(v.get("verdict")).strip() in {"1", "True", "true", "yes"} else 0.0,
                bool(v.get("contradicted", False)),
                str(v.get("reason", "")),
            )
            for claim, v in zip(claims, verdicts, strict=True)
        ]

    def _reply_list(self, prompt: str) -> list[Any]:
        content = self._chat(prompt)
        try:
            value = text.parse_json(content)
        except ValueError:
            raise JudgeError(f"the judge did not reply with JSON: {content[:200]!r}") from None
        if not isinstance(value, list):
            raise JudgeError(f"the judge replied with {type(value).__name__}, expected a JSON list")
        return value

    def _chat(self, prompt: str) -> str:
        body = {"model": self.model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
        response = self.client.post("/chat/completions", json=body)
        if response.status_code != 200:
            raise JudgeError(f"judge endpoint answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(f"unexpected chat completion body: {response.text[:200]}") from None
