"""Integrity: stored decisions and promotions cannot be changed, and tampered dataset files are refused.

    pytest tests/reliability/test_integrity.py

Append-only is checked at both layers on SQLite and PostgreSQL: the ORM guard (a loaded row changed
or deleted, an ``update()``/``delete()`` statement) and the database's row triggers (raw SQL that
bypasses the ORM). Dataset files are tampered four ways (a flipped byte, truncation, another valid
Parquet file copied over, deletion) and every way of loading a version must refuse them, naming the
file and both hashes.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.dataset_ops import diff_versions, export_version
from evalgate.data.store import DatasetStore, VersionInfo
from evalgate.data.store_files import DatasetIntegrityError
from evalgate.db.append_only import AppendOnlyError
from evalgate.db.migrate import alembic_config
from evalgate.db.models import DatasetVersion, GateDecision, Job, Promotion
from evalgate.db.session import engine_for, session_scope
from evalgate.gate.policy import Check, GatePolicy
from evalgate.service.api_tokens import create_token
from evalgate.service.jobs import enqueue
from tests.support.scored_runs import add_candidate, add_run

pytestmark = pytest.mark.reliability

POLICY = GatePolicy(checks=(Check("quality", "target"), Check("quality", "ood")), objective="quality/target")
RAW_CHANGES = {
    "gate_decision": (
        "UPDATE gate_decision SET verdict = 'block', evidence = '{}'",
        "DELETE FROM gate_decision",
    ),
    "promotion": ("UPDATE promotion SET candidate_id = candidate_id + 1", "DELETE FROM promotion"),
}
MODELS: dict[str, type[GateDecision] | type[Promotion]] = {
    "gate_decision": GateDecision,
    "promotion": Promotion,
}
BEFORE_TRIGGERS = "73aa36d878c8"
"""The revision before the append-only triggers."""

# ------------------------------------------------------------------------------------- append-only


@pytest.fixture
def promoted(store: DatasetStore, write_jsonl: Callable[..., str]) -> dict[str, int]:
    """A candidate decided (pass) by the gate service, then promoted; the ids by table."""
    from evalgate.gate.service import decide_candidate, promote

    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q"}])])
    rng = np.random.default_rng(3)
    target, ood = rng.uniform(0.0, 0.4, 200), rng.uniform(0.5, 1.0, 200)
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        base = add_run(session, version, None, {("quality", "target"): target, ("quality", "ood"): ood}, None)
        candidate = add_candidate(session, "good")
        scores = {("quality", "target"): target + 0.4, ("quality", "ood"): ood}
        add_run(session, version, candidate, scores, base)
    decision = decide_candidate(store.sessions, candidate, POLICY, decided_by="ci")
    promotion = promote(store.sessions, candidate, promoted_by="ci")
    assert decision.verdict == "pass"
    return {"gate_decision": decision.id, "promotion": promotion.id}


def _in_session(store: DatasetStore, action: Callable[[Session], object]) -> None:
    """Run ``action`` in a session that commits (and so flushes) at the end."""
    with session_scope(store.sessions) as session:
        action(session)


def _raw_sql(url: str, statement: str) -> None:
    """Run one SQL statement in its own transaction, bypassing the ORM."""
    with engine_for(url).begin() as connection:
        connection.execute(text(statement))


def _snapshot(store: DatasetStore, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, every column, in id order."""
    model = MODELS[table]
    with session_scope(store.sessions) as session:
        rows = session.execute(select(model.__table__).order_by(model.id)).mappings().all()
        return [dict(row) for row in rows]


@pytest.mark.parametrize("table", MODELS)
def test_changing_a_loaded_row_is_refused_at_flush_and_the_row_stays(
    store: DatasetStore, promoted: dict[str, int], table: str
) -> None:
    before = _snapshot(store, table)

    with (
        pytest.raises(
            AppendOnlyError, match=rf"{table} is append-only: row id {promoted[table]} cannot be updated"
        ),
        session_scope(store.sessions) as session,
    ):
        row = session.get_one(MODELS[table], promoted[table])
        if isinstance(row, GateDecision):
            row.verdict, row.evidence = "block", {"edited": True}
        else:
            row.promoted_by = "someone else"

    assert _snapshot(store, table) == before


@pytest.mark.parametrize("table", MODELS)
def test_deleting_a_loaded_row_is_refused_at_flush(
    store: DatasetStore, promoted: dict[str, int], table: str
) -> None:
    before = _snapshot(store, table)

    with pytest.raises(AppendOnlyError, match=rf"row id {promoted[table]} cannot be deleted"):
        _in_session(store, lambda session: session.delete(session.get_one(MODELS[table], promoted[table])))

    assert _snapshot(store, table) == before


@pytest.mark.parametrize("table", MODELS)
def test_orm_update_and_delete_statements_are_refused(
    store: DatasetStore, promoted: dict[str, int], table: str
) -> None:
    model, before = MODELS[table], _snapshot(store, table)

    with pytest.raises(AppendOnlyError, match=f"{table} is append-only: UPDATE statements are refused"):
        _in_session(store, lambda session: session.execute(update(model).values(created_at=model.created_at)))
    with pytest.raises(AppendOnlyError, match=f"{table} is append-only: DELETE statements are refused"):
        _in_session(store, lambda session: session.execute(delete(model)))

    assert _snapshot(store, table) == before


@pytest.mark.parametrize("table", MODELS)
@pytest.mark.parametrize("operation", ["UPDATE", "DELETE"])
def test_raw_sql_that_bypasses_the_orm_is_refused_by_the_database(
    store: DatasetStore, promoted: dict[str, int], table: str, operation: str
) -> None:
    statement = RAW_CHANGES[table][operation == "DELETE"]
    before = _snapshot(store, table)

    with pytest.raises(IntegrityError, match=f"{table} is append-only: {operation}"):
        _raw_sql(store.settings.resolved_database_url, statement)

    assert _snapshot(store, table) == before and len(before) == 1


def test_the_triggers_come_and_go_with_their_migration(store: DatasetStore, promoted: dict[str, int]) -> None:
    url = store.settings.resolved_database_url
    config = alembic_config(url)
    command.downgrade(config, BEFORE_TRIGGERS)
    try:
        _raw_sql(url, "UPDATE promotion SET promoted_by = 'downgraded'")  # no triggers: it goes through
    finally:
        command.upgrade(config, "head")

    with pytest.raises(IntegrityError, match="promotion is append-only"):
        _raw_sql(url, "UPDATE promotion SET promoted_by = 'upgraded'")
    assert [row["promoted_by"] for row in _snapshot(store, "promotion")] == ["downgraded"]


# ----------------------------------------------------------------------------------- dataset files


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _replace_with_other_parquet(path: Path) -> None:
    """Copy another stored version's file (valid Parquet, same schema, other rows) over this one."""
    (decoy,) = path.parents[2].glob("decoy/*/eval.parquet")
    path.write_bytes(decoy.read_bytes())


TAMPERINGS: dict[str, Callable[[Path], None]] = {
    "flip-one-byte": _flip_byte,
    "truncate": _truncate,
    "replace-with-other-valid-parquet": _replace_with_other_parquet,
    "delete": Path.unlink,
}


def _rows(prefix: str, count: int = 6) -> list[dict[str, object]]:
    cohorts = ("target", "ood")
    return [
        {"id": f"{prefix}{i}", "question": f"{prefix} question {i}", "reference": f"answer {i}",
         "cohort": cohorts[i % 2], "split": "train" if i % 3 == 0 else "eval"}
        for i in range(count)
    ]  # fmt: skip


def _tamper(store: DatasetStore, write_jsonl: Callable[..., str], how: str) -> tuple[VersionInfo, str]:
    """Store ``suite@v1`` (and a decoy dataset), tamper suite's eval file; returns (version, the
    ``match`` pattern the refusal must satisfy: file name, recorded hash and, if any, the new hash)."""
    info = store.add("suite", [write_jsonl("suite.jsonl", _rows("s"))]).version
    store.add("decoy", [write_jsonl("decoy.jsonl", _rows("d"))])
    entry = info.files["eval"]
    path = Path(info.storage_uri) / entry["path"]
    TAMPERINGS[how](path)
    where, recorded = re.escape(str(path)), entry["sha256"]
    if how == "delete":
        return info, rf"dataset file missing: {where} \(recorded sha256 {recorded}\)"
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    return (
        info,
        f"dataset file {where} was modified after it was stored: sha256 {actual} != recorded {recorded}",
    )


@pytest.mark.parametrize("how", TAMPERINGS)
def test_every_kind_of_tampering_is_refused_naming_the_file_and_both_hashes(
    store: DatasetStore, write_jsonl: Callable[..., str], how: str
) -> None:
    info, refusal = _tamper(store, write_jsonl, how)

    with pytest.raises(DatasetIntegrityError, match=refusal):
        store.load(info.label)
    assert store.load("decoy@v1")["eval"].num_rows == 4  # the other dataset still loads
    (problem,) = store.verify()
    assert problem.startswith("suite@v1 eval: dataset file")


def _training_rows(store: DatasetStore, _settings: Settings, label: str, _tmp: Path) -> object:
    from evalgate.sweep.run import train_rows  # the training and self-replay input

    return train_rows(store, store.get(label), self_replay=("ood",))


def _evaluation(store: DatasetStore, settings: Settings, label: str, _tmp: Path) -> object:
    from evalgate.evaluation.run import evaluate_model

    return evaluate_model("base-model-never-loaded", label, settings)


LOADERS: dict[str, Callable[[DatasetStore, Settings, str, Path], object]] = {
    "store.rows": lambda store, _s, label, _t: store.rows(label),
    "datasets-diff": lambda store, _s, label, _t: diff_versions(store, "decoy@v1", label),
    "datasets-export": lambda store, _s, label, tmp: export_version(store, label, tmp / "out.jsonl"),
    "training-rows": _training_rows,
    "evaluation": _evaluation,
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", TAMPERINGS)
@pytest.mark.parametrize("loader", LOADERS)
def test_every_load_path_refuses_a_tampered_file(
    store: DatasetStore,
    settings: Settings,
    write_jsonl: Callable[..., str],
    tmp_path: Path,
    loader: str,
    how: str,
) -> None:
    info, refusal = _tamper(store, write_jsonl, how)

    with pytest.raises(DatasetIntegrityError, match=refusal):
        LOADERS[loader](store, settings, info.label, tmp_path)
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("how", ["flip-one-byte", "delete"])
def test_the_api_answers_409_naming_the_file_and_hashes_for_a_tampered_version(
    store: DatasetStore, settings: Settings, write_jsonl: Callable[..., str], how: str
) -> None:
    _, refusal = _tamper(store, write_jsonl, how)
    token = create_token(store.sessions, "reader", "read")

    response = TestClient(create_app(settings)).get(
        "/datasets/suite/diff?old=1&new=1", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 409, response.text
    assert re.search(refusal, response.json()["detail"]), response.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_queued_evaluation_and_sweep_jobs_fail_with_the_integrity_error(
    store: DatasetStore, settings: Settings, write_jsonl: Callable[..., str]
) -> None:
    from evalgate.service.handlers import handlers
    from evalgate.service.worker import Worker

    info, refusal = _tamper(store, write_jsonl, "replace-with-other-valid-parquet")
    with session_scope(store.sessions) as session:
        candidate = add_candidate(session, "c", adapter_uri="/adapters/c", adapter_hash="0" * 64)
    sweep = {"name": "w", "dataset": info.label, "base_model": "m", "learning_rates": [1e-3]}
    jobs = [
        enqueue(
            store.sessions, "evaluate", {"candidate_id": candidate, "dataset": info.label}, max_attempts=1
        ),
        enqueue(store.sessions, "sweep", {"config": sweep}, max_attempts=1),
    ]

    assert Worker(store.sessions, handlers(settings)).run(once=True) == 2
    with session_scope(store.sessions) as session:
        ended = [session.get_one(Job, job_id) for job_id in jobs]
        assert [job.status for job in ended] == ["failed", "failed"]
        for job in ended:
            assert re.search(f"DatasetIntegrityError: {refusal}", job.error or ""), job.error


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_ci_job_exits_2_naming_the_tampered_file(
    store: DatasetStore, settings: Settings, write_jsonl: Callable[..., str], tmp_path: Path
) -> None:
    info, refusal = _tamper(store, write_jsonl, "truncate")
    sweep = {"base_model": "m", "learning_rates": [1e-3], "self_replay": ["ood"]}
    checks = [{"evaluator": "exact_match", "cohort": "target", "margin": 0.05}]
    config = tmp_path / "ci.yaml"
    config.write_text(yaml.safe_dump({"dataset": info.label, "sweep": sweep, "policy": {"checks": checks}}))
    env = {**os.environ, "EVALGATE_HOME": str(settings.home),
           "EVALGATE_DATABASE_URL": settings.resolved_database_url, "COLUMNS": "400"}  # fmt: skip

    done = subprocess.run(
        [sys.executable, "-m", "evalgate", "ci", str(config), "--no-progress"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and re.search(refusal, done.stderr), done.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_dashboard_leaves_out_prompts_of_a_tampered_file(
    store: DatasetStore, write_jsonl: Callable[..., str]
) -> None:
    from evalgate.report.rows import PromptSource

    info, _ = _tamper(store, write_jsonl, "replace-with-other-valid-parquet")
    with session_scope(store.sessions) as session:
        version_id = session.scalars(
            select(DatasetVersion.id).where(DatasetVersion.content_hash == info.content_hash)
        ).one()
        prompts = PromptSource(session).prompts(version_id, ["s0", "s1", "s2", "d1", "d2"])

    # eval (tampered: it now holds decoy rows d1, d2, ...) is left out; train (intact) still answers s0
    assert prompts == {"s0": "s question 0"}
