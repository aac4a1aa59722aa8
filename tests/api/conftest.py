"""API fixtures: an app on the parametrised database, a token per scope, and scored runs to decide."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import DatasetVersion
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import create_token
from tests.support.scored_runs import add_candidate, add_run

ROWS = 300
POLICY = {
    "objective": "quality/target",
    "checks": [
        {"evaluator": "quality", "cohort": "target", "margin": 0.05},
        {"evaluator": "quality", "cohort": "ood", "margin": 0.05},
    ],
}


@pytest.fixture
def api(settings: Settings) -> TestClient:
    """A test client of the app on the parametrised database."""
    return TestClient(create_app(settings))


@pytest.fixture
def tokens(store: DatasetStore) -> dict[str, str]:
    """One token per scope: ``{"read": "eg_...", "write": ..., "admin": ...}``."""
    return {
        scope: create_token(store.sessions, f"{scope}-token", scope) for scope in ("read", "write", "admin")
    }


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def register(api: TestClient, token: str, location: str, **extra: object):  # type: ignore[no-untyped-def]
    """POST /candidates for the adapter at ``location`` as ``run-42`` on base model ``m`` (``extra``
    adds or overrides body fields); the response, whatever its status."""
    body = {"name": "run-42", "base_model": "m", "adapter_uri": location, **extra}
    return api.post("/candidates", json=body, headers=bearer(token))


@dataclass(frozen=True)
class GateData:
    """Ids of candidates with finished runs on suite@v1 (good, forgets) and suite@v2 (other)."""

    good: int
    forgets: int
    other_version: int
    base_run_v1: int
    base_run_v2: int


@pytest.fixture
def gate_data(store: DatasetStore, write_jsonl) -> GateData:  # type: ignore[no-untyped-def]
    """Base runs on two dataset versions; a candidate that learns, one that forgets, one on v2."""
    store.add("suite", [write_jsonl("v1.jsonl", [{"id": "a", "question": "q"}])])
    store.add("suite", [write_jsonl("v2.jsonl", [{"id": "b", "question": "q"}])])
    rng = np.random.default_rng(1)
    target, ood = rng.uniform(0.0, 0.4, ROWS), rng.uniform(0.5, 1.0, ROWS)
    base_scores = {("quality", "target"): target, ("quality", "ood"): ood}
    with session_scope(store.sessions) as session:
        v1, v2 = session.scalars(select(DatasetVersion).order_by(DatasetVersion.number)).all()
        base_v1 = add_run(session, v1, None, base_scores, None)
        base_v2 = add_run(session, v2, None, base_scores, None)
        ids = {}
        for name, version, base_id, (gain, drift) in [
            ("good", v1, base_v1, (0.4, 0.0)),
            ("forgets", v1, base_v1, (0.5, -0.3)),
            ("other", v2, base_v2, (0.4, 0.0)),
        ]:
            ids[name] = add_candidate(session, name)
            scores = {("quality", "target"): target + gain, ("quality", "ood"): ood + drift}
            add_run(session, version, ids[name], scores, base_id)
    return GateData(ids["good"], ids["forgets"], ids["other"], base_v1, base_v2)
