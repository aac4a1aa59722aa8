"""Registering a candidate is safe to repeat: an identical registration returns the first candidate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient

from evalgate.core.settings import Settings
from tests.api.conftest import bearer, register
from tests.support.adapters import make_adapter


def test_an_identical_registration_returns_the_candidate_already_registered(
    api: TestClient, tokens: dict[str, str], settings: Settings
) -> None:
    adapter = str(make_adapter(Path(settings.resolved_artifact_root) / "run-42"))
    training = {"loss_curve": [2.0, 1.5, 1.1, 0.9]}

    first = register(api, tokens["write"], adapter, learning_rate=3e-4, training=training)
    again = register(api, tokens["write"], adapter, learning_rate=3e-4, training=training)
    listed = api.get("/candidates", headers=bearer(tokens["read"])).json()

    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json() == first.json()
    assert [candidate["id"] for candidate in listed] == [first.json()["id"]]


def test_a_registration_that_differs_in_anything_is_a_new_candidate(
    api: TestClient, tokens: dict[str, str], settings: Settings
) -> None:
    root = Path(settings.resolved_artifact_root)
    adapter = make_adapter(root / "run-42")
    other = make_adapter(root / "run-43")
    first = register(api, tokens["write"], str(adapter), learning_rate=3e-4).json()

    variants = {
        "rate": register(api, tokens["write"], str(adapter), learning_rate=1e-4),
        "training": register(api, tokens["write"], str(adapter), learning_rate=3e-4, training={"steps": 9}),
        "name": register(api, tokens["write"], str(adapter), learning_rate=3e-4, name="run-44"),
        "folder": register(api, tokens["write"], str(other), learning_rate=3e-4),
    }
    (adapter / "adapter_model.safetensors").write_bytes(b"\1" * 16)  # retrained in place: new content
    variants["content"] = register(api, tokens["write"], str(adapter), learning_rate=3e-4)

    assert {case: r.status_code for case, r in variants.items()} == dict.fromkeys(variants, 201)
    ids = {first["id"], *(r.json()["id"] for r in variants.values())}
    assert len(ids) == 1 + len(variants)


def test_identical_registrations_sent_at_once_make_one_candidate(
    api: TestClient, tokens: dict[str, str], settings: Settings
) -> None:
    adapter = str(make_adapter(Path(settings.resolved_artifact_root) / "run-42"))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: register(api, tokens["write"], adapter), range(16)))

    assert sorted(r.status_code for r in answers) == [200] * 15 + [201]
    assert len({r.json()["id"] for r in answers}) == 1
