"""Every error answer is an RFC 9457 problem document (``application/problem+json``) with a stable
``type`` per domain error, ``title``, ``status``, ``detail`` and ``instance``; 422s keep FastAPI's list in
``detail`` and add ``errors``; the clients that read ``detail`` (``evalgate.client``) still do; the
OpenAPI document shows the problem schema on the routes; every ``type`` can be followed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api import problems
from api.main import create_app
from api.routers import jobs
from evalgate.client import ApiError, Client
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.session import session_scope
from evalgate.service.handlers import SWEEP
from evalgate.service.jobs import enqueue
from tests.api.conftest import GateData, bearer
from tests.api.service import ServerPort
from tests.support.scored_runs import add_candidate

FIELDS = ("type", "title", "status", "detail", "instance")


def assert_problem(response: httpx.Response, status: int, slug: str, instance: str) -> dict[str, Any]:
    """``response`` is a problem document of type ``/problems/<slug>``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert set(FIELDS) <= body.keys(), body
    kind = problems.CATALOGUE[slug]
    assert (body["type"], body["title"], body["status"], body["instance"]) == (
        f"/problems/{slug}", kind.title, status, instance
    )  # fmt: skip
    return body


def decide(api: TestClient, token: str, candidate: int, baseline: object = "auto") -> httpx.Response:
    policy = {
        "objective": "quality/target",
        "checks": [{"evaluator": "quality", "cohort": "ood", "margin": 0.05}],
    }
    body = {"candidate_id": candidate, "policy": policy, "baseline": baseline}
    return api.post("/gate/decide", json=body, headers=bearer(token))


def test_an_unknown_id_is_a_not_found_problem(api: TestClient, tokens: dict[str, str]) -> None:
    for path in ("/jobs/77", "/candidates/77", "/evaluations/77", "/gate/decisions/77", "/sweeps/77"):
        body = assert_problem(api.get(path, headers=bearer(tokens["read"])), 404, "not-found", path)
        assert body["detail"].endswith("77 not found"), body
    assert_problem(api.get("/no/such/route"), 404, "not-found", "/no/such/route")


def test_a_422_keeps_the_location_list_in_detail_and_repeats_it_in_errors(
    api: TestClient, tokens: dict[str, str]
) -> None:
    response = api.post("/tokens", json={"name": "x", "scope": "root"}, headers=bearer(tokens["admin"]))

    body = assert_problem(response, 422, "validation-error", "/tokens")
    assert isinstance(body["detail"], list) and body["detail"][0]["loc"] == ["body", "scope"]
    assert body["detail"][0]["input"] == "root"  # the echo old clients may show
    assert body["errors"] == [{key: body["detail"][0][key] for key in ("loc", "msg", "type")}]


def test_the_domains_bad_input_is_a_422_with_its_location(api: TestClient, tokens: dict[str, str]) -> None:
    api.post("/tokens", json={"name": "twice", "scope": "read"}, headers=bearer(tokens["admin"]))

    again = api.post("/tokens", json={"name": "twice", "scope": "read"}, headers=bearer(tokens["admin"]))

    body = assert_problem(again, 422, "validation-error", "/tokens")
    assert body["errors"][0]["loc"] == ["body"] and "already exists" in body["errors"][0]["msg"]


def test_gate_conflicts_name_their_own_type(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    write = tokens["write"]
    mismatch = decide(api, write, gate_data.other_version, baseline=gate_data.base_run_v1)
    no_promotion = decide(api, write, gate_data.good, baseline="promoted")
    blocked = decide(api, write, gate_data.forgets)
    promote = api.post(f"/gate/candidates/{gate_data.forgets}/promote", headers=bearer(write))

    body = assert_problem(mismatch, 409, "dataset-version-mismatch", "/gate/decide")
    assert body["detail"].startswith("different dataset versions")
    assert_problem(no_promotion, 409, "not-comparable", "/gate/decide")
    assert blocked.json()["verdict"] == "block"
    path = f"/gate/candidates/{gate_data.forgets}/promote"
    assert "quality/ood" in assert_problem(promote, 409, "promotion-refused", path)["detail"]


def test_cancelling_a_finished_job_is_a_job_finished_problem(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    job = enqueue(store.sessions, SWEEP, {"config": {}})
    first = api.post(f"/jobs/{job}/cancel", headers=bearer(tokens["write"]))

    again = api.post(f"/jobs/{job}/cancel", headers=bearer(tokens["write"]))

    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    body = assert_problem(again, 409, "job-finished", f"/jobs/{job}/cancel")
    assert body["detail"] == f"job {job} already cancelled"


def test_evaluating_a_candidate_without_an_adapter_is_a_candidate_not_trained_problem(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, write_jsonl: Callable[..., str]
) -> None:
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q"}])])
    with session_scope(store.sessions) as session:
        candidate = add_candidate(session, "never-trained")  # trained status, but no adapter stored

    response = api.post(
        "/evaluations",
        json={"candidate_id": candidate, "dataset": "suite@v1"},
        headers=bearer(tokens["write"]),
    )

    assert_problem(response, 409, "candidate-not-trained", "/evaluations")


def test_a_tampered_dataset_is_a_dataset_tampered_problem(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, write_jsonl: Callable[..., str]
) -> None:
    info = store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q"}])]).version
    (Path(info.storage_uri) / info.files["eval"]["path"]).unlink()

    response = api.get("/datasets/suite/diff?old=1&new=1", headers=bearer(tokens["read"]))

    assert (
        "dataset file missing"
        in assert_problem(response, 409, "dataset-tampered", "/datasets/suite/diff")["detail"]
    )


def chunks(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_bodies_over_the_limit_are_payload_too_large_problems(
    settings: Settings, tokens: dict[str, str]
) -> None:
    small = TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 100})))
    headers = {**bearer(tokens["write"]), "Content-Type": "application/json"}
    declared = small.post("/candidates", content=b"{" + b" " * 200 + b"}", headers=headers)
    streamed = small.post("/candidates", content=chunks(b" " * 300, 50), headers=headers)
    uploaded = small.post("/datasets/big/versions", content=chunks(b"x" * 300, 50), headers=headers)

    assert (
        "over the 100-byte limit"
        in assert_problem(declared, 413, "payload-too-large", "/candidates")["detail"]
    )
    assert "100-byte limit" in assert_problem(streamed, 413, "payload-too-large", "/candidates")["detail"]
    assert_problem(uploaded, 413, "payload-too-large", "/datasets/big/versions")
    assert declared.headers["x-request-id"] and streamed.headers["x-request-id"]


def test_authentication_and_scope_errors_are_problems_with_their_headers(
    api: TestClient, tokens: dict[str, str]
) -> None:
    missing = api.get("/jobs")
    unknown = api.get("/jobs", headers=bearer("eg_unknown"))
    too_low = api.get("/tokens", headers=bearer(tokens["read"]))

    assert_problem(missing, 401, "unauthorized", "/jobs")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert assert_problem(unknown, 401, "unauthorized", "/jobs")["detail"] == "unknown or revoked token"
    assert "needs admin" in assert_problem(too_low, 403, "forbidden", "/tokens")["detail"]


def test_the_rate_limit_is_a_rate_limited_problem_with_retry_after(
    settings: Settings, tokens: dict[str, str]
) -> None:
    limited = TestClient(
        create_app(settings.model_copy(update={"rate_limit_per_second": 0.01, "rate_limit_burst": 1}))
    )
    first = limited.get("/jobs", headers=bearer(tokens["read"]))

    over = limited.get("/jobs", headers=bearer(tokens["read"]))

    assert first.status_code == 200
    assert "rate limit exceeded" in assert_problem(over, 429, "rate-limited", "/jobs")["detail"]
    assert int(over.headers["retry-after"]) >= 1


def test_an_unreachable_database_is_a_database_unavailable_problem(tmp_path: Path) -> None:
    with ServerPort() as refusing:
        url = f"postgresql+psycopg://evalgate@127.0.0.1:{refusing.number}/evalgate"
        response = TestClient(create_app(Settings(home=tmp_path, database_url=url))).get(
            "/jobs", headers=bearer("eg_any")
        )

    assert_problem(response, 503, "database-unavailable", "/jobs")
    assert response.headers["retry-after"] == "2"


def test_a_wrong_method_is_a_method_not_allowed_problem(api: TestClient, tokens: dict[str, str]) -> None:
    response = api.delete("/jobs", headers=bearer(tokens["admin"]))

    assert_problem(response, 405, "method-not-allowed", "/jobs")
    assert "GET" in response.headers["allow"]


def test_a_bug_is_an_internal_error_problem_that_shows_nothing_of_it(
    settings: Settings, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(jobs, "request_cancel", broken)
    client = TestClient(create_app(settings), raise_server_exceptions=False)

    response = client.post("/jobs/1/cancel", headers={**bearer(tokens["write"]), "X-Request-ID": "bug-42"})

    body = assert_problem(response, 500, "internal-error", "/jobs/1/cancel")
    assert "secret internals" not in response.text and "RuntimeError" not in response.text
    assert response.headers["x-request-id"] == "bug-42" and "X-Request-ID" in body["detail"]


def test_the_dashboards_redirect_to_login_is_not_a_problem(api: TestClient) -> None:
    response = api.get("/", headers={"Accept": "text/html"}, follow_redirects=False)

    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_every_problem_type_can_be_followed_without_a_token(api: TestClient) -> None:
    for slug, kind in problems.CATALOGUE.items():
        answer = api.get(kind.uri)
        assert answer.status_code == 200, slug
        assert answer.json() == {"type": kind.uri, "title": kind.title, "status": kind.status,
                                 "description": kind.description}  # fmt: skip
    assert_problem(api.get("/problems/no-such-type"), 404, "not-found", "/problems/no-such-type")


def test_the_openapi_document_shows_the_problem_schema_on_every_error_answer(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    errors = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and path != "/healthz":  # /healthz's 503: its own body, as before
                    assert list(answer["content"]) == ["application/problem+json"], (method, path, status)
                    assert answer["content"]["application/problem+json"]["schema"]["$ref"].endswith(
                        "/ProblemDetail"
                    )
                    errors += 1
    components = schema["components"]["schemas"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= components["ProblemDetail"][
        "properties"
    ].keys()
    assert "HTTPValidationError" not in components and "HTTPValidationError" not in json.dumps(schema)
    token_routes = [op for ops in schema["paths"].values() for op in ops.values() if op.get("security")]
    assert all({"401", "403", "429", "503"} <= op["responses"].keys() for op in token_routes)
    assert schema["paths"]["/healthz"]["get"]["responses"]["503"]["content"]["application/json"]
    assert "409" in schema["paths"]["/gate/candidates/{candidate_id}/promote"]["post"]["responses"]
    assert errors > 100


def client_of(api: TestClient, token: str) -> Client:
    """``evalgate.client.Client`` talking to the in-process app (its transport hands each request on)."""

    def forward(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, str(request.url), headers=dict(request.headers), content=request.content
        )
        return httpx.Response(
            answer.status_code, headers=answer.headers.multi_items(), content=answer.content
        )

    return Client("http://testserver", token, transport=httpx.MockTransport(forward), retries=0)


def test_the_python_client_still_reads_detail_from_problems(
    api: TestClient, tokens: dict[str, str], gate_data: GateData
) -> None:
    with client_of(api, tokens["write"]) as client:
        decision = client.decide(gate_data.forgets, {"objective": "quality/target",
                                                      "checks": [{"evaluator": "quality", "cohort": "ood",
                                                                  "margin": 0.05}]})  # fmt: skip
        with pytest.raises(ApiError) as refused:
            client.promote(gate_data.forgets)
        with pytest.raises(ApiError) as missing:
            client.job(99)
        with pytest.raises(ApiError) as invalid:
            client.evaluate(gate_data.good, dataset="not a ref@@")

    assert decision["verdict"] == "block"
    assert (
        refused.value.status == 409 and "quality/ood" in refused.value.detail
    )  # examples/pipeline.py prints it
    assert missing.value.status == 404 and missing.value.detail == "job 99 not found"
    assert invalid.value.status == 422 and invalid.value.detail[0]["loc"] == ["body", "dataset"]
