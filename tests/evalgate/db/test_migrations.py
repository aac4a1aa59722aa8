"""Migrations build the schema from empty, match the models exactly, and round-trip down and up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from evalgate.db.base import Base
from evalgate.db.migrate import (
    SchemaNotReadyError,
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
)
from evalgate.db.session import engine_for


def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    tables = set(inspect(engine_for(database_url)).get_table_names())

    assert {table.name for table in Base.metadata.sorted_tables} <= tables
    assert current_revision(database_url) == head_revision(database_url)


def test_models_and_migrations_agree(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises when autogenerate would find a difference


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")

    assert set(inspect(engine_for(url)).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert current_revision(url) == head_revision(url)


def test_embedded_sqlite_is_migrated_on_first_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'evalgate.db'}"

    ensure_schema(url)

    assert current_revision(url) == head_revision(url)


@pytest.mark.postgres
def test_unmigrated_postgres_is_refused_with_the_command_to_run(postgres_url: str) -> None:
    from sqlalchemy import text

    from tests.conftest import POSTGRES_ADMIN_URL, create_engine

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text('DROP DATABASE IF EXISTS "evalgate_unmigrated" WITH (FORCE)'))
        connection.execute(text('CREATE DATABASE "evalgate_unmigrated"'))
    url = postgres_url.rsplit("/", 1)[0] + "/evalgate_unmigrated"
    try:
        with pytest.raises(SchemaNotReadyError, match="run `evalgate db upgrade`"):
            ensure_schema(url)
    finally:
        engine_for(url).dispose()
        with admin.connect() as connection:
            connection.execute(text('DROP DATABASE "evalgate_unmigrated" WITH (FORCE)'))
        admin.dispose()
