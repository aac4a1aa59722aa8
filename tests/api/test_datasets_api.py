"""Dataset uploads over REST: new versions, dedup, bad rows (422, nothing kept), size limits (413)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from tests.api.conftest import bearer

ROWS = [{"id": f"r{i}", "question": f"What is {i}?", "reference": str(i)} for i in range(5)]


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def upload(api: TestClient, token: str, body: bytes, **params: str):  # type: ignore[no-untyped-def]
    return api.post("/datasets/qa/versions", content=body, params=params, headers=bearer(token))


def test_upload_list_get_and_diff(api: TestClient, tokens: dict[str, str]) -> None:
    first = upload(api, tokens["write"], jsonl(ROWS), cohort="ood")
    same = upload(api, tokens["write"], jsonl(ROWS), cohort="ood")
    second = upload(api, tokens["write"], jsonl([*ROWS[1:], {"id": "new", "question": "q"}]), cohort="ood")
    read = bearer(tokens["read"])

    assert first.status_code == 201, first.text
    assert first.json()["label"] == "qa@v1" and first.json()["counts"] == {"ood": {"eval": 5}}
    assert same.json()["created"] is False and same.json()["number"] == 1
    assert second.json()["label"] == "qa@v2"
    assert [v["label"] for v in api.get("/datasets?name=qa", headers=read).json()] == ["qa@v1", "qa@v2"]
    assert api.get("/datasets/qa", headers=read).json()["number"] == 2
    diff = api.get("/datasets/qa/diff?old=1&new=2", headers=read).json()
    assert diff["added"] == ["new"] and diff["removed"] == ["r0"] and diff["unchanged"] == 4


def test_a_bad_row_is_422_naming_line_and_field_and_keeps_nothing(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    body = jsonl(ROWS[:2]) + b'{"id": "r9", "context": "no question"}\n'

    response = upload(api, tokens["write"], body, filename="batch")

    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "batch.jsonl" in message and "line 3" in message and "'question'" in message
    assert store.versions() == []


def test_unknown_dataset_is_404_and_a_bad_version_is_422(api: TestClient, tokens: dict[str, str]) -> None:
    read = bearer(tokens["read"])

    assert api.get("/datasets/missing", headers=read).status_code == 404
    assert api.get("/datasets/missing@v0", headers=read).status_code == 422


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_oversized_uploads_are_413_declared_or_streamed(
    settings: Settings, tokens: dict[str, str], store: DatasetStore
) -> None:
    small = TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 1000})))
    big = jsonl([{"id": f"r{i}", "question": "x" * 50} for i in range(40)])

    declared = upload(small, tokens["write"], big)
    streamed = small.post(
        "/datasets/qa/versions",
        content=(big[i : i + 100] for i in range(0, len(big), 100)),
        headers=bearer(tokens["write"]),
    )

    assert declared.status_code == 413 and "1000-byte limit" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert store.versions() == []


def test_csv_and_parquet_bodies_are_read_by_format(
    api: TestClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv = b"id,question,cohort\nc1,hello,safety\n"
    pq.write_table(pa.table({"id": ["p1"], "question": ["hi"]}), tmp_path / "rows.parquet")

    from_csv = upload(api, tokens["write"], csv, format="csv")
    from_parquet = api.post(
        "/datasets/other/versions",
        content=(tmp_path / "rows.parquet").read_bytes(),
        params={"format": "parquet"},
        headers=bearer(tokens["write"]),
    )

    assert from_csv.json()["counts"] == {"safety": {"eval": 1}}
    assert from_parquet.status_code == 201 and from_parquet.json()["row_count"] == 1
