"""Every list route pages with ``limit`` and an opaque ``cursor``: the body stays the bare list it always
was, the next page is in ``Link: <...>; rel="next"`` (absent on the last page), following the links
yields every item once in the route's order, rows added meanwhile do not shift the pages, and a
``limit`` over the maximum or a cursor the route never gave is a 422 naming it. Every 202 names its job
in ``Location``."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.pagination import decode_cursor, encode_cursor
from evalgate.client import Client
from evalgate.data.store import DatasetStore
from evalgate.db.models import DatasetVersion, EvaluationRun, Sweep
from evalgate.db.session import session_scope
from evalgate.gate.policy import GatePolicy
from evalgate.gate.service import decide_candidate
from evalgate.service.api_tokens import create_token
from evalgate.service.handlers import EVALUATE, SWEEP
from evalgate.service.jobs import enqueue
from tests.api.conftest import POLICY, GateData, bearer
from tests.support.scored_runs import add_candidate

LINK = re.compile(r'^<(/[^>]*)>; rel="next"$')


@dataclass(frozen=True)
class Listing:
    """A list route: its path (``{run}`` filled in by the test), the token scope it needs, its maximum
    ``limit``, and how to read an item's identity from the body."""

    path: str
    scope: str
    maximum: int
    identity: Callable[[dict[str, Any]], Any]


LISTINGS = {
    "jobs": Listing("/jobs", "read", 500, lambda item: item["id"]),
    "sweeps": Listing("/sweeps", "read", 1000, lambda item: item["id"]),
    "candidates": Listing("/candidates", "read", 1000, lambda item: item["id"]),
    "evaluations": Listing("/evaluations", "read", 500, lambda item: item["id"]),
    "decisions": Listing("/gate/decisions", "read", 1000, lambda item: item["id"]),
    "tokens": Listing("/tokens", "admin", 1000, lambda item: item["id"]),
    "datasets": Listing("/datasets", "read", 1000, lambda item: (item["name"], item["number"])),
    "scores": Listing(
        "/evaluations/{run}/scores", "read", 5000, lambda item: (item["evaluator"], item["row_id"])
    ),
}


@pytest.fixture
def listed(store: DatasetStore, gate_data: GateData, write_jsonl: Callable[..., str]) -> dict[str, Any]:
    """Several items behind every list route: jobs, sweeps, candidates, runs, decisions, tokens,
    dataset versions (two datasets) and a run's row scores; the run's id."""
    stricter = {**POLICY, "checks": [{**check, "margin": 0.01} for check in POLICY["checks"]]}  # type: ignore[dict-item]
    for policy in (GatePolicy.from_dict(POLICY), GatePolicy.from_dict(stricter)):
        for candidate in (gate_data.good, gate_data.forgets, gate_data.other_version):
            decide_candidate(store.sessions, candidate, policy, baseline="base", decided_by="test")
    for kind in (SWEEP, EVALUATE, SWEEP, EVALUATE, SWEEP):
        enqueue(store.sessions, kind, {})
    for i in range(3):
        store.add("another", [write_jsonl(f"another-{i}.jsonl", [{"id": f"x{i}", "question": "q"}])])
    for i in range(3):
        create_token(store.sessions, f"extra-{i}", "read")
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).first()
        assert version is not None
        for i in range(5):
            session.add(Sweep(name=f"sweep-{i}", dataset_version_id=version.id, base_model="m", config={},
                              config_hash=f"{i:064d}"))  # fmt: skip
        for i in range(2):
            add_candidate(session, f"spare-{i}")
    return {"run": gate_data.base_run_v1}


def walk(api: TestClient, first: str, headers: dict[str, str]) -> tuple[list[list[Any]], list[str]]:
    """Follow the ``Link`` headers from ``first``: each page's items, and each page's link (if any)."""
    pages, links, url = [], [], first
    while url:
        response = api.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)
        pages.append(response.json())
        link = response.headers.get("link")
        if link is None:
            break
        match = LINK.match(link)
        assert match, link
        links.append(match.group(1))
        url = match.group(1)
        assert len(pages) < 500, "the links never end"
    return pages, links


@pytest.mark.parametrize("name", LISTINGS)
def test_following_the_links_yields_every_item_once_in_order(
    api: TestClient, tokens: dict[str, str], listed: dict[str, Any], name: str
) -> None:
    listing = LISTINGS[name]
    path, headers = listing.path.format(**listed), bearer(tokens[listing.scope])
    everything = api.get(f"{path}?limit={listing.maximum}", headers=headers)
    size = 250 if name == "scores" else 2

    pages, links = walk(api, f"{path}?limit={size}", headers)

    whole = [listing.identity(item) for item in everything.json()]
    paged = [listing.identity(item) for page in pages for item in page]
    assert "link" not in everything.headers and len(whole) >= 5, (name, whole)
    assert paged == whole, name  # same items, same order, none twice
    assert [len(page) for page in pages[:-1]] == [size] * (len(pages) - 1) and 1 <= len(pages[-1]) <= size
    assert len(links) == len(pages) - 1 and all(
        link.startswith(f"{path}?limit={size}&cursor=") for link in links
    )


def test_the_default_order_and_items_are_what_the_routes_always_returned(
    api: TestClient, tokens: dict[str, str], listed: dict[str, Any]
) -> None:
    read = bearer(tokens["read"])
    jobs = api.get("/jobs", headers=read).json()
    datasets = api.get("/datasets", headers=read).json()
    token_list = api.get("/tokens", headers=bearer(tokens["admin"])).json()

    assert [job["id"] for job in jobs] == sorted((job["id"] for job in jobs), reverse=True)
    assert {"id", "kind", "status", "progress", "log_tail"} <= jobs[0].keys()
    assert [(v["name"], v["number"]) for v in datasets] == [("another", n) for n in (1, 2, 3)] + [
        ("suite", 1),
        ("suite", 2),
    ]
    assert [t["id"] for t in token_list] == sorted(t["id"] for t in token_list)


def test_filters_stay_in_the_next_link(
    api: TestClient, tokens: dict[str, str], listed: dict[str, Any]
) -> None:
    headers = bearer(tokens["read"])

    pages, links = walk(api, "/jobs?status=queued&limit=2", headers)

    assert all(link.startswith("/jobs?status=queued&limit=2&cursor=") for link in links)
    assert sum(len(page) for page in pages) == 5 and all(
        job["status"] == "queued" for page in pages for job in page
    )


def test_rows_added_while_paging_do_not_shift_the_pages(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    made = [enqueue(store.sessions, SWEEP, {}) for _ in range(6)]
    headers = bearer(tokens["read"])
    first = api.get("/jobs?limit=3", headers=headers)
    enqueue(store.sessions, SWEEP, {})  # newer than every listed job: it belongs before page one

    second = api.get(LINK.match(first.headers["link"]).group(1), headers=headers)  # type: ignore[union-attr]

    assert [job["id"] for job in first.json() + second.json()] == made[::-1]
    assert "link" not in second.headers


@pytest.mark.parametrize("name", LISTINGS)
def test_a_limit_over_the_maximum_or_under_one_is_a_422_naming_limit(
    api: TestClient, tokens: dict[str, str], name: str
) -> None:
    listing = LISTINGS[name]
    path, headers = listing.path.format(run=1), bearer(tokens[listing.scope])

    for limit in (listing.maximum + 1, 0, -1):
        response = api.get(f"{path}?limit={limit}", headers=headers)
        assert response.status_code == 422, (name, limit, response.text)
        assert response.json()["errors"][0]["loc"] == ["query", "limit"], response.text
    assert api.get(f"{path}?limit={listing.maximum}", headers=headers).status_code in (200, 404)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    ["!!!", b64(b"not json"), b64(b"{}"), b64(b'["a"]'), b64(b"[1, 2]"), b64(b"[true]"), b64(b"[-1]"),
     b64(b"[99999999999999999999]"), b64(b"[1.5]"), b64(b"\xff\xfe"), "x" * 3000],
)  # fmt: skip
def test_a_cursor_the_route_never_gave_is_a_422_naming_cursor(
    api: TestClient, tokens: dict[str, str], cursor: str
) -> None:
    for path in ("/jobs", "/datasets"):
        response = api.get(path, params={"cursor": cursor}, headers=bearer(tokens["read"]))
        assert response.status_code == 422, (path, cursor, response.text)
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"], response.text


def test_a_cursor_is_opaque_text_that_round_trips() -> None:
    for key, kinds in [
        ((7,), (int,)),
        (("name with spaces/ü", 3), (str, int)),
        (("quality", "ood-1"), (str, str)),
    ]:
        cursor = encode_cursor(key)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor) and decode_cursor(cursor, kinds) == key


def test_scores_keep_offset_for_older_clients_but_not_with_a_cursor(
    api: TestClient, tokens: dict[str, str], listed: dict[str, Any]
) -> None:
    path, headers = f"/evaluations/{listed['run']}/scores", bearer(tokens["read"])
    whole = api.get(f"{path}?limit=20", headers=headers).json()

    skipped = api.get(f"{path}?offset=5&limit=5", headers=headers)
    following = api.get(LINK.match(skipped.headers["link"]).group(1), headers=headers)  # type: ignore[union-attr]
    both = api.get(f"{path}?offset=5&cursor={encode_cursor(['quality', 'ood-1'])}", headers=headers)

    assert skipped.json() == whole[5:10] and following.json() == whole[10:15]
    assert "offset" not in skipped.headers["link"]
    assert both.status_code == 422 and both.json()["errors"][0]["loc"] == ["query", "offset"]


def test_every_202_names_its_job_in_location(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, write_jsonl: Callable[..., str]
) -> None:
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q", "split": "train"}])])
    with session_scope(store.sessions) as session:
        candidate = add_candidate(session, "trained", adapter_uri="/adapters/a", adapter_hash="a" * 64)
    write = bearer(tokens["write"])
    sweep = api.post(
        "/sweeps", json={"config": {"dataset": "suite@v1", "learning_rates": [1e-3]}}, headers=write
    )
    evaluation = api.post(
        "/evaluations", json={"candidate_id": candidate, "dataset": "suite@v1"}, headers=write
    )

    for answer in (sweep, evaluation):
        assert answer.status_code == 202, answer.text
        assert answer.headers["location"] == f"/jobs/{answer.json()['id']}"
        followed = api.get(answer.headers["location"], headers=bearer(tokens["read"]))
        assert followed.status_code == 200 and followed.json() == answer.json()


def test_created_candidates_and_dataset_versions_name_their_url(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    adapter = store.artifact_root + "/adapters/run-1"
    Path(adapter).mkdir(parents=True)
    (Path(adapter) / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    write = bearer(tokens["write"])
    body = {"name": "run-1", "base_model": "m", "adapter_uri": adapter}
    created = api.post("/candidates", json=body, headers=write)
    repeated = api.post("/candidates", json=body, headers=write)
    uploaded = api.post("/datasets/my-set/versions", content=b'{"id": "a", "question": "q"}\n', headers=write)

    assert created.status_code == 201 and created.headers["location"] == f"/candidates/{created.json()['id']}"
    assert repeated.status_code == 200 and "location" not in repeated.headers
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.headers["location"] == "/datasets/my-set@v1"
    followed = api.get(uploaded.headers["location"], headers=bearer(tokens["read"]))
    assert followed.status_code == 200 and followed.json()["label"] == "my-set@v1"


def test_the_openapi_document_names_limit_cursor_and_link_on_every_list_route(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]

    for listing in LISTINGS.values():
        operation = paths[listing.path.replace("{run}", "{run_id}")]["get"]
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert parameters["limit"]["schema"]["maximum"] == listing.maximum, listing.path
        assert f"at most {listing.maximum}" in parameters["limit"]["description"]
        assert "cursor" in parameters and "Link" in operation["responses"]["200"]["headers"]
    for path in ("/sweeps", "/evaluations"):
        assert "Location" in paths[path]["post"]["responses"]["202"]["headers"]


def test_the_python_client_reads_the_pages_it_always_read(
    api: TestClient, tokens: dict[str, str], listed: dict[str, Any]
) -> None:
    def forward(request: httpx.Request) -> httpx.Response:
        answer = api.request(request.method, str(request.url), headers=dict(request.headers))
        return httpx.Response(
            answer.status_code, headers=answer.headers.multi_items(), content=answer.content
        )

    with Client(
        "http://testserver", tokens["read"], transport=httpx.MockTransport(forward), retries=0
    ) as client:
        candidates = client.candidates()  # limit=1000, the route's maximum
        runs = client.evaluations(limit=500)

    with session_scope(api.app.state.evalgate.sessions) as session:  # type: ignore[attr-defined]
        assert len(runs) == len(session.scalars(select(EvaluationRun.id)).all())
    assert len(candidates) == 5 and [c["id"] for c in candidates] == sorted(
        (c["id"] for c in candidates), reverse=True
    )
