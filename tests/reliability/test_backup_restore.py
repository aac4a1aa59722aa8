"""Backup and restore as docs/operations.md describes it: ``pg_dump -Fc`` plus an archive of the
artifact root, restored with ``pg_restore`` into a new database; nothing decided is lost or changed.

    pytest tests/reliability/test_backup_restore.py

The database is filled through the real code (a dataset version stored with its files, scored
evaluation runs, decisions by the gate service under two policies, a promotion), dumped with the
real PostgreSQL client binaries, and restored. Every row of every table, the Alembic revision, the
append-only triggers, the dataset files' hashes and the gate service's reading of the decisions must
come back identical.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.base import Base
from evalgate.db.migrate import current_revision, ensure_schema, head_revision
from evalgate.db.models import DatasetVersion
from evalgate.db.session import engine_for, session_factory, session_scope
from evalgate.gate.policy import Check, GatePolicy
from tests.conftest import POSTGRES_ADMIN_URL
from tests.support.scored_runs import add_candidate, add_run

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

ROWS = 200
POLICIES = (
    GatePolicy(checks=(Check("quality", "target"), Check("quality", "ood")), objective="quality/target"),
    GatePolicy(checks=(Check("quality", "ood", margin=0.2),), objective="quality/target"),
)
SHAPES = {"learns": (0.4, 0.0), "forgets": (0.5, -0.3), "flat": (0.0, 0.0)}
"""Candidate name -> (gain on target, drift on ood) over the base model's scores."""


def _client_binary(name: str) -> str:
    """``pg_dump`` / ``pg_restore`` of the server's major version (Debian installs them per version)."""
    with create_engine(POSTGRES_ADMIN_URL).connect() as connection:
        major = int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    for candidate in (Path(f"/usr/lib/postgresql/{major}/bin/{name}"), shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(f"{name} not found (install postgresql-client-{major})")


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as a libpq connection string for the command-line tools."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def empty_database(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (no migrations run), dropped afterwards."""
    name = f"evalgate_restored_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    yield url
    engine_for(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fill(store: DatasetStore, write_jsonl: Callable[..., str]) -> None:
    """A dataset version, scored runs of three candidates, six decisions, one promotion."""
    from evalgate.gate.service import decide_candidate, promote

    rows = [
        {"id": f"r{i}", "question": f"question {i}", "cohort": ("target", "ood")[i % 2]} for i in range(8)
    ]
    store.add("suite", [write_jsonl("suite.jsonl", rows)])
    rng = np.random.default_rng(7)
    target, ood = rng.uniform(0.0, 0.4, ROWS), rng.uniform(0.5, 1.0, ROWS)
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        base = add_run(session, version, None, {("quality", "target"): target, ("quality", "ood"): ood}, None)
        candidates = []
        for name, (gain, drift) in SHAPES.items():
            candidates.append(add_candidate(session, name))
            scores = {("quality", "target"): target + gain, ("quality", "ood"): ood + drift}
            add_run(session, version, candidates[-1], scores, base)
    for policy in POLICIES:
        for candidate in candidates:
            decide_candidate(store.sessions, candidate, policy, decided_by=f"ci-{policy.sha256[:8]}")
    promote(store.sessions, candidates[0], promoted_by="release-manager")


def _tables(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every evalgate table, every column, ordered by primary key."""
    with engine_for(url).connect() as connection:
        return {
            table.name: [
                dict(row)
                for row in connection.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            ]
            for table in Base.metadata.sorted_tables
        }


def _dump_and_archive(settings: Settings, backup: Path) -> None:
    """The backup: database first (a consistent snapshot), then the artifact root."""
    dump = [_client_binary("pg_dump"), "--format=custom", f"--file={backup / 'evalgate.dump'}"]
    subprocess.run([*dump, _libpq(settings.resolved_database_url)], check=True, timeout=120)
    artifacts = Path(settings.resolved_artifact_root)
    archive = ["tar", "-C", str(artifacts.parent), "-czf", str(backup / "artifacts.tar.gz"), artifacts.name]
    subprocess.run(archive, check=True, timeout=120)


def _restore(settings: Settings, backup: Path, target_url: str) -> None:
    """The restore: artifact root back in place first, then the database into ``target_url``."""
    artifacts = Path(settings.resolved_artifact_root)
    subprocess.run(["tar", "-C", str(artifacts.parent), "-xzf", str(backup / "artifacts.tar.gz")], check=True)
    restore = [_client_binary("pg_restore"), "--exit-on-error", "--single-transaction", "--no-owner"]
    subprocess.run([*restore, f"--dbname={_libpq(target_url)}", str(backup / "evalgate.dump")], check=True)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_dump_restored_into_a_new_database_keeps_every_decision_and_its_guarantees(
    store: DatasetStore,
    settings: Settings,
    write_jsonl: Callable[..., str],
    empty_database: str,
    tmp_path: Path,
) -> None:
    from evalgate.gate.service import current_baseline, decide_candidate, list_decisions

    _fill(store, write_jsonl)
    source = settings.resolved_database_url
    before = _tables(source)
    decisions_before = list_decisions(store.sessions)
    _dump_and_archive(settings, tmp_path)
    shutil.rmtree(settings.resolved_artifact_root)  # the disk is lost too
    assert len(store.verify()) == 1  # without its files, the check reports the one stored split missing

    _restore(settings, tmp_path, empty_database)

    after = _tables(empty_database)
    assert len(before["gate_decision"]) == 6 and len(before["promotion"]) == 1
    assert after["gate_decision"] == before["gate_decision"]  # every column, evidence JSON included
    assert after == before
    assert current_revision(empty_database) == current_revision(source) == head_revision(source)
    ensure_schema(empty_database)  # the service would start on it without a migration
    store_after = DatasetStore.from_settings(Settings(home=settings.home, database_url=empty_database))
    assert store_after.verify() == [] and store_after.load("suite@v1")["eval"].num_rows == 8
    sessions = session_factory(empty_database)
    assert list_decisions(sessions) == decisions_before
    assert current_baseline(sessions, "m") == current_baseline(store.sessions, "m")
    again = decide_candidate(sessions, decisions_before[-1].candidate_id, POLICIES[0], baseline="base")
    assert again.reused and again.id in {d.id for d in decisions_before}
    for statement in ("UPDATE gate_decision SET verdict = 'pass'", "DELETE FROM promotion"):
        with pytest.raises(IntegrityError, match="is append-only"), engine_for(empty_database).begin() as db:
            db.execute(text(statement))
    assert _tables(empty_database) == before
