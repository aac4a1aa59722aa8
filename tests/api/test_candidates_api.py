"""Registering external adapters: inside the allowed roots only (no traversal, no escaping symlinks)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from evalgate.core.settings import Settings
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
