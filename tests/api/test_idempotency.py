"""Idempotency keys on the real app (SQLite and PostgreSQL): a POST sent again with its key gets the first
answer and creates nothing more; a key reused for another request, or while its first request runs, is
refused; answers a retry may change are not kept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc, func, select, update

from api import idempotency
from api.idempotency import ABANDONED_AFTER, HEADER, REPLAYED
from evalgate.data.store import DatasetStore
from evalgate.db.base import utcnow
from evalgate.db.models import ApiToken, IdempotencyKey, Job
from evalgate.db.session import session_scope
from tests.api.conftest import bearer


def _count(store: DatasetStore, model: type) -> int:
    with session_scope(store.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _keyed(token: str, key: str) -> dict[str, str]:
    return {**bearer(token), HEADER: key}


def test_a_retried_sweep_gets_the_first_job_and_no_second_one(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, write_jsonl
) -> None:
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q", "split": "train"}])])
    body = {"config": {"dataset": "suite@v1", "learning_rates": [1e-3]}}

    first = api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "sweep-1"))
    again = api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "sweep-1"))
    other = api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "sweep-2"))

    assert first.status_code == again.status_code == 202 and other.status_code == 202
    assert (
        again.json() == first.json() and again.headers[REPLAYED] == "true" and REPLAYED not in first.headers
    )
    assert other.json()["id"] != first.json()["id"]
    assert _count(store, Job) == 2


def test_a_retried_token_creation_returns_the_same_secret_once_stored(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    before = _count(store, ApiToken)
    body = {"name": "ci-bot", "scope": "write"}

    answers = [api.post("/tokens", json=body, headers=_keyed(tokens["admin"], "tok")) for _ in range(3)]

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["token"] for a in answers}) == 1
    assert _count(store, ApiToken) == before + 1


def test_a_key_reused_for_another_body_is_a_422_naming_the_header(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    api.post("/tokens", json={"name": "a", "scope": "read"}, headers=_keyed(tokens["admin"], "k"))

    reused = api.post("/tokens", json={"name": "b", "scope": "read"}, headers=_keyed(tokens["admin"], "k"))

    assert reused.status_code == 422
    (error,) = reused.json()["detail"]
    assert error["loc"] == ["header", HEADER] and "another request" in error["msg"]
    with session_scope(store.sessions) as session:
        assert session.scalar(select(ApiToken).where(ApiToken.name == "b")) is None


def test_keys_are_scoped_by_the_credential(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    api.post("/tokens", json={"name": "x", "scope": "read"}, headers=_keyed(tokens["admin"], "same"))
    other_admin = api.post(
        "/tokens", json={"name": "admin-2", "scope": "admin"}, headers=_keyed(tokens["admin"], "k2")
    ).json()["token"]

    mine = api.post("/tokens", json={"name": "y", "scope": "read"}, headers=_keyed(other_admin, "same"))

    assert mine.status_code == 201 and REPLAYED not in mine.headers


def test_a_key_held_by_a_running_request_is_a_409_until_it_is_abandoned(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    body = {"name": "slow", "scope": "read"}
    first = api.post("/tokens", json=body, headers=_keyed(tokens["admin"], "held"))
    with session_scope(store.sessions) as session:  # as if the first request were still running
        session.execute(
            update(IdempotencyKey).values(status="pending", response_status=None, heartbeat_at=utcnow())
        )
        session.execute(
            update(ApiToken).where(ApiToken.name == "slow").values(name="slow-first")
        )  # the retry that takes over creates it again

    running = api.post("/tokens", json=body, headers=_keyed(tokens["admin"], "held"))
    with session_scope(store.sessions) as session:
        stale = utcnow() - ABANDONED_AFTER - timedelta(seconds=1)
        session.execute(update(IdempotencyKey).values(heartbeat_at=stale))
    taken_over = api.post("/tokens", json=body, headers=_keyed(tokens["admin"], "held"))

    assert first.status_code == 201
    assert running.status_code == 409 and running.json()["type"] == "/problems/idempotency-key-in-use"
    assert 14 <= int(running.headers["Retry-After"]) <= ABANDONED_AFTER.total_seconds()  # when it goes stale
    assert taken_over.status_code == 201 and REPLAYED not in taken_over.headers


def test_answers_a_retry_may_change_are_not_kept(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    refused = api.post("/tokens", json={"name": "n", "scope": "read"}, headers=_keyed(tokens["write"], "k"))

    assert refused.status_code == 403
    assert _count(store, IdempotencyKey) == 0


def test_a_malformed_key_is_a_422_and_nothing_runs(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    before = _count(store, ApiToken)

    answer = api.post(
        "/tokens", json={"name": "m", "scope": "read"}, headers=_keyed(tokens["admin"], "x" * 256)
    )

    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["header", HEADER]
    assert _count(store, ApiToken) == before


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_request_that_dies_before_its_answer_is_kept_leaves_no_work_behind(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, write_jsonl, monkeypatch
) -> None:
    """The route's job and the key's answer commit together: a process that dies between the route and
    the stored answer leaves neither, so the retry that takes the key over creates the only job."""
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q", "split": "train"}])])
    body = {"config": {"dataset": "suite@v1", "learning_rates": [1e-3]}}
    keep_answer = idempotency.keep_answer

    class Died(Exception):
        """The API process died before the answer was kept."""

    def dies(*args: object) -> None:
        raise Died

    monkeypatch.setattr(idempotency, "keep_answer", dies)
    with pytest.raises(Died):
        api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "dies"))
    monkeypatch.setattr(idempotency, "keep_answer", keep_answer)
    with session_scope(store.sessions) as session:  # its hold goes stale, as a dead process's does
        stale = utcnow() - ABANDONED_AFTER - timedelta(seconds=1)
        session.execute(update(IdempotencyKey).values(heartbeat_at=stale))
    retried = api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "dies"))
    again = api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "dies"))

    assert retried.status_code == 202 and REPLAYED not in retried.headers
    assert again.json() == retried.json() and again.headers[REPLAYED] == "true"
    with session_scope(store.sessions) as session:
        assert session.scalars(select(Job.id)).all() == [retried.json()["id"]]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_commit_the_database_never_acknowledged_is_a_503_and_the_retry_does_the_work_once(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, write_jsonl, monkeypatch
) -> None:
    """The answer is held back until the work and the answer are committed: a database that goes away
    at that commit gets the client a 503, never a 202 for a job that does not exist."""
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q", "split": "train"}])])
    body = {"config": {"dataset": "suite@v1", "learning_rates": [1e-3]}}
    keep_answer = idempotency.keep_answer

    def connection_lost(*args: object) -> None:
        raise exc.DisconnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr(idempotency, "keep_answer", connection_lost)
    lost = api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "lost"))
    monkeypatch.setattr(idempotency, "keep_answer", keep_answer)
    with session_scope(store.sessions) as session:
        jobs_after_the_503 = _count(store, Job)
        stale = utcnow() - ABANDONED_AFTER - timedelta(seconds=1)
        session.execute(update(IdempotencyKey).values(heartbeat_at=stale))
    retried = api.post("/sweeps", json=body, headers=_keyed(tokens["write"], "lost"))

    assert lost.status_code == 503 and lost.json()["status"] == 503
    assert jobs_after_the_503 == 0
    assert retried.status_code == 202 and _count(store, Job) == 1
