"""The request bodies that carry a sweep config, a gate policy or evaluation options are the config
models themselves: OpenAPI shows their fields, and an unknown key or bad value is a 422 at its place."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from evalgate.data.store import DatasetStore
from evalgate.db.models import Job
from evalgate.db.session import session_scope
from evalgate.sweep.config import SweepConfig
from tests.api.conftest import bearer


def _body_schema(openapi: dict[str, Any], body: str, field: str) -> dict[str, Any]:
    """The schema of ``field`` of the request body ``body``, its ``$ref`` followed."""
    schemas = openapi["components"]["schemas"]
    reference = schemas[body]["properties"][field]["$ref"]
    return schemas[reference.rsplit("/", 1)[-1]]


@pytest.mark.parametrize(
    ("body", "field", "keys"),
    [
        ("SweepIn", "config", {"dataset", "learning_rates", "lora", "scheduler", "trainer"}),
        ("DecideIn", "policy", {"checks", "confidence", "inconclusive"}),
        ("EvaluationIn", "options", {"evaluators", "max_new_tokens", "cohort_max_new_tokens", "device"}),
    ],
)
def test_openapi_shows_the_fields_of_each_config_body(
    api: TestClient, body: str, field: str, keys: set[str]
) -> None:
    schema = _body_schema(api.get("/openapi.json").json(), body, field)

    assert keys <= set(schema["properties"]) and schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/sweeps", {"config": {"dataset": "d", "lr": [1e-3]}}, ["body", "config", "lr"]),
        ("/sweeps", {"config": {"dataset": "d", "lora": {"rank": 4}}}, ["body", "config", "lora", "rank"]),
        ("/gate/decide", {"candidate_id": 1, "policy": {"checks": [{"evaluator": "e", "cohort": "c",
                          "tolerance": 1}]}}, ["body", "policy", "checks", 0, "tolerance"]),
        ("/evaluations", {"sweep_id": 1, "options": {"beams": 2}}, ["body", "options", "beams"]),
    ],
)  # fmt: skip
def test_an_unknown_key_is_a_422_naming_it(
    api: TestClient, tokens: dict[str, str], path: str, body: dict[str, Any], loc: list[Any]
) -> None:
    response = api.post(path, json=body, headers=bearer(tokens["write"]))

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


def test_bad_values_are_422_at_their_place(api: TestClient, tokens: dict[str, str]) -> None:
    config = {"dataset": "suite@v1", "learning_rates": [1e-3, -1.0], "lora": {"r": 0}}
    sweep = api.post("/sweeps", json={"config": config}, headers=bearer(tokens["write"]))
    options = {"evaluators": ["json_validation", "nope"], "device": "tpu"}
    evaluation = api.post(
        "/evaluations", json={"sweep_id": 1, "options": options}, headers=bearer(tokens["write"])
    )

    assert sweep.status_code == 422 and evaluation.status_code == 422
    assert {tuple(e["loc"]) for e in sweep.json()["detail"]} == {
        ("body", "config", "learning_rates", 1),
        ("body", "config", "lora", "r"),
    }
    errors = {tuple(e["loc"]): e["msg"] for e in evaluation.json()["detail"]}
    assert "'tpu' is not one of auto, cpu, cuda, cuda:N, mps" in errors["body", "options", "device"]
    only_device = {"device": "auto", "evaluators": ["nope"]}
    unknown = api.post(
        "/evaluations", json={"sweep_id": 1, "options": only_device}, headers=bearer(tokens["write"])
    )
    assert unknown.status_code == 422
    assert "evaluators: unknown evaluator 'nope'" in unknown.json()["detail"][0]["msg"]


def test_a_valid_sweep_config_is_queued_as_its_validated_form(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, write_jsonl: Any
) -> None:
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q", "split": "train"}])])
    config = {"dataset": "suite@v1", "learning_rates": [1e-3, 1e-2], "lora": {"r": 4}}

    response = api.post("/sweeps", json={"config": config}, headers=bearer(tokens["write"]))

    assert response.status_code == 202, response.text
    with session_scope(store.sessions) as session:
        payload = session.scalars(select(Job.payload)).one()
    assert SweepConfig.from_dict(payload["config"]) == SweepConfig.from_dict(config)


def test_a_nul_character_inside_a_config_is_a_422_naming_its_key(
    api: TestClient, tokens: dict[str, str]
) -> None:
    config = {"dataset": "suite@v1", "lora": {"target_modules": ["q_proj", "v\x00proj"]}}

    response = api.post("/sweeps", json={"config": config}, headers=bearer(tokens["write"]))

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "config"] and "lora.target_modules[1]: NUL character" in error["msg"]
