"""Gate decisions from stored evaluation runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, DatasetVersion, GateDecision, Sweep
from evalgate.db.session import session_scope
from evalgate.gate.policy import Check, GatePolicy
from evalgate.gate.records import gate_sweep
from tests.support.scored_runs import add_run

POLICY = GatePolicy(
    checks=(Check("quality", "target"), Check("quality", "ood"), Check("ood_kl", "ood", margin=0.2)),
    objective="quality/target",
)
ROWS = 200


@pytest.fixture
def sweep_id(store: DatasetStore, write_jsonl) -> int:
    """A sweep with a base run and three candidates: barely moves, learns, forgets; plus a diverged one."""
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q"}])])
    rng = np.random.default_rng(0)
    target, ood = rng.uniform(0.0, 0.3, ROWS), rng.uniform(0.6, 1.0, ROWS)
    shapes = {1e-5: (0.01, 0.0, 0.01), 1e-4: (0.6, -0.005, 0.1), 1e-3: (0.7, -0.3, 0.9)}
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        sweep = Sweep(
            name="s",
            dataset_version_id=version.id,
            base_model="m",
            config={},
            config_hash="h",
            status="finished",
        )
        session.add(sweep)
        session.flush()
        base_id = add_run(
            session, version, None, {("quality", "target"): target, ("quality", "ood"): ood}, None
        )
        for rate, (gain, drift, kl) in [*shapes.items(), (1e-2, (None, None, None))]:
            status = "diverged" if gain is None else "trained"
            candidate = Candidate(
                sweep_id=sweep.id, name=f"lr={rate:g}", base_model="m", learning_rate=rate, status=status
            )
            session.add(candidate)
            session.flush()
            if gain is not None:
                scores = {("quality", "target"): target + gain, ("quality", "ood"): ood + drift,
                          ("ood_kl", "ood"): np.full(ROWS, kl)}  # fmt: skip
                add_run(session, version, candidate.id, scores, base_id)
        return sweep.id


def test_sweep_gate_recommends_the_rate_that_learns_without_forgetting(
    store: DatasetStore, sweep_id: int
) -> None:
    verdicts = gate_sweep(store.sessions, sweep_id, POLICY)

    assert verdicts.recommendation.recommended == "lr=0.0001"
    assert {label: d.verdict if d else None for label, (_, d) in verdicts.decisions.items()} == {
        "lr=1e-05": "pass",
        "lr=0.0001": "pass",
        "lr=0.001": "block",
        "lr=0.01": None,
    }
    assert "ood_kl/ood regress" in verdicts.recommendation.reasons["lr=0.001"]
    with session_scope(store.sessions) as session:
        stored = session.scalars(select(GateDecision).order_by(GateDecision.id)).all()
        assert [d.verdict for d in stored] == ["pass", "pass", "block"]
        assert all(d.policy_hash == POLICY.sha256 and d.evidence["checks"] for d in stored)


def test_every_gate_run_appends_decisions(store: DatasetStore, sweep_id: int) -> None:
    gate_sweep(store.sessions, sweep_id, POLICY)
    gate_sweep(store.sessions, sweep_id, POLICY)

    with session_scope(store.sessions) as session:
        assert session.scalar(select(func.count()).select_from(GateDecision)) == 6


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gate_command_exits_0_with_a_recommendation_and_1_when_all_blocked(
    sweep_id: int, database_url: str, tmp_path
) -> None:
    import os
    import subprocess
    import sys

    def run(margin: float) -> subprocess.CompletedProcess[str]:
        policy = tmp_path / f"policy-{margin}.yaml"
        policy.write_text(
            "objective: quality/target\nchecks:\n"
            f"  - {{evaluator: quality, cohort: target, margin: {margin}}}\n"
            f"  - {{evaluator: ood_kl, cohort: ood, margin: {margin}}}\n"
        )
        env = {
            **os.environ,
            "EVALGATE_DATABASE_URL": database_url,
            "EVALGATE_HOME": str(tmp_path),
            "COLUMNS": "200",
        }
        command = [
            sys.executable,
            "-m",
            "evalgate",
            "gate",
            "--sweep",
            str(sweep_id),
            "--policy",
            str(policy),
        ]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    lenient, strict = run(0.2), run(0.0)

    assert lenient.returncode == 0, lenient.stderr
    assert "recommended: lr=0.0001" in lenient.stdout
    assert strict.returncode == 1 and "no candidate passed the gate" in strict.stdout
