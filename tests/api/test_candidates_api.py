"""Registering external adapters: inside the allowed roots only (no traversal, no escaping symlinks);
a sweep's candidates with their trial's hyperparameters and, when halving stopped one, why."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate
from evalgate.db.session import session_scope
from tests.api.conftest import bearer, register
from tests.support.adapters import make_adapter


def test_an_adapter_inside_the_artifact_root_is_registered(
    api: TestClient, tokens: dict[str, str], settings: Settings
) -> None:
    adapter = make_adapter(Path(settings.resolved_artifact_root) / "pipeline" / "run-42")

    response = register(
        api, tokens["write"], str(adapter), learning_rate=3e-4, training={"loss_curve": [2.0, 1.5, 1.1, 0.9]}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "trained" and body["sweep_id"] is None and len(body["adapter_hash"]) == 64
    assert body["diagnosis"] == "healthy" and body["learning_rate"] == 3e-4
    assert body["hyperparameters"] == {} and body["halted"] is None
    fetched = api.get(f"/candidates/{body['id']}", headers=bearer(tokens["read"])).json()
    assert fetched == body


def test_locations_outside_the_roots_are_refused_with_422(
    api: TestClient, tokens: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    root = Path(settings.resolved_artifact_root)
    outside = make_adapter(tmp_path / "elsewhere")
    (root / "links").mkdir(parents=True)
    (root / "links" / "escape").symlink_to(outside)
    make_adapter(root / "ok")

    cases = {
        "traversal": str(root / "ok" / ".." / ".." / ".." / "elsewhere"),
        "symlink": str(root / "links" / "escape"),
        "outside": str(outside),
        "relative": "ok",
        "remote": "s3://bucket/adapter",
    }
    for case, location in cases.items():
        response = register(api, tokens["write"], location)
        assert response.status_code == 422, case
        assert response.json()["detail"][0]["loc"][:2] == ["body", "adapter_uri"], case
    missing_config = register(api, tokens["write"], str(root))
    assert missing_config.status_code == 422 and "adapter_config.json" in missing_config.text


def test_a_bad_learning_rate_or_loss_curve_is_422(
    api: TestClient, tokens: dict[str, str], settings: Settings
) -> None:
    adapter = make_adapter(Path(settings.resolved_artifact_root) / "a")

    negative = register(api, tokens["write"], str(adapter), learning_rate=-1)

    assert negative.status_code == 422 and negative.json()["detail"][0]["loc"] == ["body", "learning_rate"]
    assert api.get("/candidates/999", headers=bearer(tokens["read"])).status_code == 404


HALTED = "stopped early at rung 2 (step 16): validation loss 1.9000, not among the best 1 of 2"


def test_a_candidate_carries_its_hyperparameters_and_a_stopped_ones_reason(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    hyperparameters = {"learning_rate": 1e-3, "scheduler": "cosine", "lora_r": 4, "lora_alpha": 8}
    with session_scope(store.sessions) as session:
        rows = [
            Candidate(name=name, base_model="m", learning_rate=1e-3, hyperparameters=hyperparameters,
                      status=status, training={"halted": halted, "loss": [2.0, 1.9]})
            for name, status, halted in [("stopped", "stopped", HALTED), ("trained", "trained", "")]
        ]  # fmt: skip
        session.add_all(rows)
        session.flush()
        stopped_id, trained_id = (row.id for row in rows)

    stopped = api.get(f"/candidates/{stopped_id}", headers=bearer(tokens["read"])).json()
    trained = api.get(f"/candidates/{trained_id}", headers=bearer(tokens["read"])).json()
    listed = api.get("/candidates", headers=bearer(tokens["read"])).json()

    assert stopped["status"] == "stopped" and stopped["halted"] == HALTED
    assert stopped["hyperparameters"] == hyperparameters and stopped["name"] == "stopped"
    assert trained["halted"] is None and trained["hyperparameters"] == hyperparameters
    assert [c["halted"] for c in listed] == [None, HALTED]  # newest first
    schema = api.get("/openapi.json").json()["components"]["schemas"]["CandidateOut"]
    for field in ("name", "hyperparameters", "halted", "status"):
        assert schema["properties"][field]["description"], field
    assert "successive halving" in schema["properties"]["halted"]["description"]
    assert set(schema["required"]) >= {"name", "hyperparameters", "halted"}
