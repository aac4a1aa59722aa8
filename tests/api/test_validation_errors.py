"""Request-validation errors and body limits: FastAPI's 422 shape with an echo that always encodes, and
a 413 for a chunked body once it passes the limit, while chunked bodies under it still work."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.service.api_tokens import list_tokens
from tests.api.conftest import bearer


def strict_json(raw: bytes) -> object:
    """``raw`` parsed as strict JSON: UTF-8, and no NaN or Infinity literals."""

    def refuse(constant: str) -> object:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


@pytest.mark.parametrize(
    ("body", "field", "echoed"),
    [
        ('{"name": NaN, "scope": "read"}', "name", "NaN"),
        ('{"name": "t", "scope": -Infinity}', "scope", "-Infinity"),
        ('{"name": "t", "scope": 1e999}', "scope", "Infinity"),
        ('{"name": "a\\udc80b", "scope": "read"}', "name", "a\\udc80b"),
    ],
)
def test_input_json_cannot_carry_is_echoed_as_text_in_the_422(
    api: TestClient, tokens: dict[str, str], body: str, field: str, echoed: str
) -> None:
    headers = {**bearer(tokens["admin"]), "Content-Type": "application/json"}

    response = api.post("/tokens", content=body, headers=headers)

    assert response.status_code == 422
    detail = strict_json(response.content)["detail"]  # type: ignore[index]
    assert detail[0]["loc"] == ["body", field] and detail[0]["input"] == echoed
    assert {"msg", "type"} <= detail[0].keys()


def test_undecodable_bytes_in_a_body_that_is_not_json_are_a_422_on_the_body(
    api: TestClient, tokens: dict[str, str]
) -> None:
    headers = {**bearer(tokens["admin"]), "Content-Type": "text/plain"}

    response = api.post("/tokens", content=b"\xff\xfe", headers=headers)

    assert response.status_code == 422
    detail = strict_json(response.content)["detail"]  # type: ignore[index]
    assert detail[0]["loc"] == ["body"] and detail[0]["input"] == "\\xff\\xfe"


def chunks(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` as a generator, so the client sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_json_body_is_413_past_the_limit_and_accepted_under_it(
    settings: Settings, tokens: dict[str, str], store: DatasetStore
) -> None:
    small = TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 1000})))
    headers = {**bearer(tokens["admin"]), "Content-Type": "application/json"}
    padded = json.dumps({"name": "padded", "scope": "read"}).encode() + b" " * 2000
    fits = json.dumps({"name": "fits", "scope": "read"}).encode()

    refused = small.post("/tokens", content=chunks(padded, 100), headers=headers)
    accepted = small.post("/tokens", content=chunks(fits, 10), headers=headers)

    assert refused.status_code == 413 and "1000-byte limit" in refused.json()["detail"]
    assert accepted.status_code == 201
    names = {token.name for token in list_tokens(store.sessions)}
    assert "fits" in names and "padded" not in names
