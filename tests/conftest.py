"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, settings and a store on it.

The PostgreSQL server is expected at 127.0.0.1:5432 (``EVALGATE_TEST_POSTGRES_URL`` overrides the
admin URL). Under CI (``CI=true``) a missing server fails the run instead of skipping its tests.

Hypothesis runs under the ``evalgate-ci`` profile when ``CI`` is set and ``evalgate-dev`` otherwise;
see ``register_hypothesis_profiles``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.database import DirectoryBasedExampleDatabase
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.base import Base
from evalgate.db.migrate import upgrade
from evalgate.db.session import engine_for

POSTGRES_ADMIN_URL = os.environ.get(
    "EVALGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
HYPOTHESIS_EXAMPLES = Path(__file__).resolve().parent.parent / ".hypothesis" / "examples"
"""Where failing examples are kept between runs outside CI (Hypothesis's usual place, made absolute so
it does not depend on the directory pytest is started from)."""


def register_hypothesis_profiles() -> str:
    """Register the two Hypothesis profiles and load the one for this run; its name.

    Both print a failing example's ``@reproduce_failure`` blob (``print_blob``), and neither times
    examples (``deadline=None``, the ``too_slow`` health check off): on a loaded 2-core machine wall
    time says nothing about the code under test.

    - ``evalgate-ci`` (when ``CI`` is set): ``derandomize=True``, so every run draws the same examples
      (seeded by a hash of the test) and a case that failed in CI fails again on a rerun, anywhere
      (``CI=1 pytest ...``). Hypothesis refuses an example database together with ``derandomize``
      (the examples come back anyway), so this profile keeps none.
    - ``evalgate-dev`` (otherwise): random examples, and every failing one saved under
      ``.hypothesis/examples`` and replayed first on the next run.
    """
    common = hypothesis_settings(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
    hypothesis_settings.register_profile("evalgate-ci", common, derandomize=True, database=None)
    hypothesis_settings.register_profile(
        "evalgate-dev",
        common,
        derandomize=False,
        database=DirectoryBasedExampleDatabase(str(HYPOTHESIS_EXAMPLES)),
    )
    name = "evalgate-ci" if os.environ.get("CI") else "evalgate-dev"
    hypothesis_settings.load_profile(name)
    return name


register_hypothesis_profiles()


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"evalgate_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        _postgres_unavailable(str(error).splitlines()[0])
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    engine_for(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine_for(url).begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'evalgate.db'}"
        upgrade(url)
        return url
    postgres: str = request.getfixturevalue("postgres_url")
    _truncate_all(postgres)
    return postgres


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings with ``home`` in a temporary folder and the parametrised database."""
    return Settings(home=tmp_path / "home", database_url=database_url)


@pytest.fixture
def store(settings: Settings) -> DatasetStore:
    """A dataset store on the parametrised database."""
    return DatasetStore.from_settings(settings)


@pytest.fixture
def write_jsonl(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write rows (dicts, or raw lines as str/bytes) to a JSONL file in tmp_path; returns its path."""
    import json

    def write(name: str, rows: list[object]) -> str:
        path = tmp_path / name
        with path.open("wb") as handle:
            for row in rows:
                if isinstance(row, bytes):
                    handle.write(row + b"\n")
                elif isinstance(row, str):
                    handle.write(row.encode() + b"\n")
                else:
                    handle.write(json.dumps(row).encode() + b"\n")
        return str(path)

    return write


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with an offline-trained tokenizer (seconds to train on)."""
    from tests.support.tiny_lm import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny") / "tiny-lm")


@pytest.fixture(scope="session")
def embedded_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded SmolLM2's safetensors cache, built once for the session (about 10 s)."""
    from evalgate.modeling.loading import ensure_embedded_cache

    return ensure_embedded_cache(tmp_path_factory.mktemp("smollm2") / "home")


@pytest.fixture
def settings_with_embedded_model(settings: Settings, embedded_model_cache: Path) -> Settings:
    """``settings`` whose home links to the session's embedded-model cache (built only once)."""
    from evalgate.modeling.loading import embedded_cache_dir

    link = embedded_cache_dir(settings.home)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(embedded_model_cache, target_is_directory=True)
    return settings
