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

Requests that get 429 or 503, or cannot connect, are retried with exponential back-off, honouring
``Retry-After``. A request that may have reached the server (read timeout, dropped connection) is
retried only when repeating it is harmless: a GET, and the two POSTs that are idempotent by design,
``decide`` (the same candidate run, baseline and policy return the stored decision) and
``register_candidate`` (the same registration returns the candidate it created). Other POSTs (a sweep,
an evaluation, an upload, a promotion) are not repeated blindly, as the first one may have landed.
Any other error status raises ``ApiError`` carrying the status and the server's detail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

RETRY_STATUSES = (429, 503)
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""The request never reached the server: always safe to repeat."""
MAYBE_SENT = (httpx.ReadError, httpx.WriteError, httpx.ReadTimeout, httpx.WriteTimeout,
              httpx.RemoteProtocolError)  # fmt: skip
"""The connection failed after (part of) the request went out: the server may have acted on it."""
FINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")


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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.backoff = backoff
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
        return self._request("POST", "/candidates", json=body, idempotent=True)

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
        return self._request("POST", "/gate/decide", json=body, idempotent=True)

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

    def _request(self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any) -> Any:
        """Send, retrying as the module docstring says; ``idempotent`` marks a POST safe to repeat."""
        repeatable = idempotent or method == "GET"
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except (*NOT_SENT, *MAYBE_SENT) as error:
                if attempt == self.retries or (isinstance(error, MAYBE_SENT) and not repeatable):
                    raise  # a POST that may have reached the server is not repeated blindly
                self.sleep(self.backoff * 2**attempt)
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                self.sleep(_retry_after(response) or self.backoff * 2**attempt)
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, _detail(response), method, path)
            return response.json() if response.content else None
        raise AssertionError("unreachable")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail", response.text)
    except ValueError:
        return response.text
