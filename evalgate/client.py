"""Python client of the evalgate REST API, for training pipelines.

    from evalgate.client import Client

    gate = Client("http://evalgate:8000", token=os.environ["EVALGATE_TOKEN"])
    candidate = gate.register_candidate("run-42", base_model="smollm2-135m-instruct",
                                        adapter_uri="/artifacts/run-42/adapter", learning_rate=3e-4)
    job = gate.evaluate(candidate["id"], dataset="evalgate-suite@v1")
    gate.wait_for_job(job["id"], timeout=3600)
    decision = gate.decide(candidate["id"], policy=yaml.safe_load(open("policy.yaml")))
    if decision["verdict"] == "pass":
        gate.promote(candidate["id"])

Requests that get 429 or 503, or cannot connect, are retried (``retries`` times at most) after a wait
bounded by ``max_wait`` seconds: the server's ``Retry-After`` when it sent one, in either form of RFC 9110
(delta-seconds, or an HTTP-date read against the response's own ``Date``), plus up to ``backoff`` seconds
of jitter; otherwise exponential back-off with full jitter, a uniform draw from 0 to
``backoff * 2**(retry - 1)``, so clients that failed together do not retry together. Every POST carries
an ``Idempotency-Key`` (a new one per call, the same on each of its retries), so a POST that may have
reached the server (read timeout, dropped connection, an API restart) is resent like a GET: the server
answers a repeated key with the first answer (``api/idempotency.py``), so no second sweep, evaluation,
upload or promotion is made; while the first is still running it answers 409 ``idempotency-key-in-use``
with ``Retry-After``, which is waited out too.
Any other error status raises ``ApiError`` carrying the status and the server's detail.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

RETRY_STATUSES = (429, 503)
IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_IN_USE = "/idempotency-key-in-use"
"""The end of the problem ``type`` of a 409 whose key's first request is still running."""
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""The request never reached the server: always safe to repeat."""
MAYBE_SENT = (httpx.ReadError, httpx.WriteError, httpx.ReadTimeout, httpx.WriteTimeout,
              httpx.RemoteProtocolError)  # fmt: skip
"""The connection failed after (part of) the request went out: the server may have acted on it."""
FINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")
DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")
"""``Retry-After: 120`` (RFC 9110 allows whole seconds; a fraction is accepted too)."""


class ApiError(RuntimeError):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: Any, method: str, path: str):
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class JobFailed(RuntimeError):
    """A job ended failed or cancelled; ``job`` is its last state."""

    def __init__(self, job: dict[str, Any]):
        super().__init__(f"job {job['id']} ({job['kind']}) {job['status']}: {job.get('error')}")
        self.job = job


class Client:
    """A thin, retrying client; every method returns the API's JSON."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """``retries``: how often one request is retried; ``backoff``: the first back-off window in seconds
        (doubling with each retry); ``max_wait``: the longest wait before a retry, whatever
        ``Retry-After`` says; ``sleep``: how to wait (a test can record instead)."""
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- resources

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz")

    def upload_dataset(
        self, name: str, path: str | Path, *, cohort: str = "target", split: str = "eval"
    ) -> dict[str, Any]:
        """Upload one JSONL, CSV or Parquet file as a new version of ``name``."""
        file = Path(path)
        params = {"format": file.suffix.lstrip(".") or "jsonl", "cohort": cohort, "split": split,
                  "filename": file.stem}  # fmt: skip
        return self._request("POST", f"/datasets/{name}/versions", params=params, content=file.read_bytes())

    def register_candidate(
        self,
        name: str,
        *,
        base_model: str,
        adapter_uri: str,
        learning_rate: float | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Register an externally trained adapter (a folder inside the server's artifact roots)."""
        body = {"name": name, "base_model": base_model, "adapter_uri": adapter_uri,
                "learning_rate": learning_rate, "training": dict(training or {})}  # fmt: skip
        return self._request("POST", "/candidates", json=body)

    def submit_sweep(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Queue a sweep; returns its job."""
        return self._request("POST", "/sweeps", json={"config": dict(config)})

    def evaluate(
        self, candidate_id: int, dataset: str, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Queue the evaluation of a candidate (and the base model) on ``dataset``; returns its job."""
        body = {"candidate_id": candidate_id, "dataset": dataset, "options": dict(options or {})}
        return self._request("POST", "/evaluations", json=body)

    def evaluate_sweep(self, sweep_id: int, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Queue the evaluation of the base model and every trained candidate of a sweep, on the sweep's
        dataset version; returns its job (its result lists the runs)."""
        body = {"sweep_id": sweep_id, "options": dict(options or {})}
        return self._request("POST", "/evaluations", json=body)

    def evaluations(self, candidate_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Evaluation runs with their summaries, newest first (optionally of one candidate)."""
        params: dict[str, Any] = {"limit": limit}
        if candidate_id is not None:
            params["candidate_id"] = candidate_id
        return self._request("GET", "/evaluations", params=params)

    def dataset(self, ref: str) -> dict[str, Any]:
        """A dataset version's metadata (``NAME@vN``, or ``NAME`` for the latest); 404 when unknown."""
        return self._request("GET", f"/datasets/{ref}")

    def candidates(self, sweep_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Candidates, newest first (optionally of one sweep)."""
        params: dict[str, Any] = {"limit": limit}
        if sweep_id is not None:
            params["sweep_id"] = sweep_id
        return self._request("GET", "/candidates", params=params)

    def baseline(self, base_model: str) -> dict[str, Any] | None:
        """The promoted baseline of ``base_model`` (its promotion), None when it is the base model itself."""
        return self._request("GET", "/gate/baseline", params={"base_model": base_model})

    def decide(
        self, candidate_id: int, policy: Mapping[str, Any], baseline: str | int = "auto"
    ) -> dict[str, Any]:
        """The gate's decision for the candidate's latest evaluation, with its evidence."""
        body = {"candidate_id": candidate_id, "policy": dict(policy), "baseline": baseline}
        return self._request("POST", "/gate/decide", json=body)

    def decision(self, decision_id: int) -> dict[str, Any]:
        return self._request("GET", f"/gate/decisions/{decision_id}")

    def promote(self, candidate_id: int) -> dict[str, Any]:
        """Make the candidate the new baseline; ``ApiError`` 409 when its latest decision is not a pass."""
        return self._request("POST", f"/gate/candidates/{candidate_id}/promote")

    def job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: int) -> dict[str, Any]:
        return self._request("POST", f"/jobs/{job_id}/cancel")

    def wait_for_job(self, job_id: int, timeout: float = 3600.0, poll: float = 2.0) -> dict[str, Any]:
        """Poll until the job ends; return it when it succeeded, raise ``JobFailed`` or ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] == "succeeded":
                return job
            if job["status"] in FINAL_JOB_STATUSES:
                raise JobFailed(job)
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {job_id} still {job['status']} after {timeout:.0f}s: {job['progress']}"
                )
            self.sleep(poll)

    # --------------------------------------------------------------------------------------- transport

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send, retrying as the module docstring says (a POST with its own ``Idempotency-Key``)."""
        if method == "POST":
            kwargs["headers"] = {IDEMPOTENCY_HEADER: uuid.uuid4().hex, **(kwargs.get("headers") or {})}
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            retry=retry_if_exception(resendable) | retry_if_result(answered_later),
            wait=RetryWait(self.backoff, self.max_wait),
            sleep=self.sleep,
            retry_error_callback=_last_outcome,
        )
        response: httpx.Response = retrying(self.http.request, method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response), method, path)
        return response.json() if response.content else None


def resendable(error: BaseException) -> bool:
    """Whether a request that failed with ``error`` may be sent again: it never reached the server, or
    it may have and repeating it is harmless (a GET, or a POST under its idempotency key)."""
    return isinstance(error, NOT_SENT + MAYBE_SENT)


def answered_later(response: httpx.Response) -> bool:
    """A 429 or 503, or a 409 saying the same idempotency key's first request is still running."""
    if response.status_code in RETRY_STATUSES:
        return True
    if response.status_code != 409 or "json" not in response.headers.get("content-type", ""):
        return False
    body = response.json()
    return isinstance(body, dict) and str(body.get("type", "")).endswith(KEY_IN_USE)


class RetryWait:
    """Tenacity's wait before retry ``n``: ``Retry-After`` (plus up to ``backoff`` s of jitter) when the
    answer carried one, else full jitter, uniform in [0, ``backoff * 2**(n - 1)``]; never over
    ``max_wait``."""

    def __init__(self, backoff: float, max_wait: float):
        self.max_wait = max_wait
        self.backoff = backoff
        self.full_jitter = wait_random_exponential(multiplier=backoff, max=max_wait)

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        told = None if outcome is None or outcome.failed else retry_after(outcome.result())
        if told is None:
            return float(self.full_jitter(state))
        return min(self.max_wait, told + random.uniform(0.0, self.backoff))


def _last_outcome(state: RetryCallState) -> Any:
    """When the retries are spent: the last answer (an error status becomes ``ApiError``), or its error."""
    assert state.outcome is not None
    return state.outcome.result()


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds the server asked to wait (``Retry-After``, RFC 9110 section 10.2.3), None without a valid one.

    Delta-seconds are taken as they are; an HTTP-date is counted from the response's ``Date`` (the
    server's clock, so a skewed client clock does not matter), else from ``now`` (default: the clock);
    a date in the past means 0."""
    value = response.headers.get("Retry-After", "").strip()
    if DELTA_SECONDS.fullmatch(value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(response.headers.get("Date", "")) or now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def _http_date(value: str) -> datetime | None:
    """An HTTP-date (``Sun, 06 Nov 1994 08:49:37 GMT``; RFC 850 and asctime forms too) in UTC, or None."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail", response.text)
    except ValueError:
        return response.text
