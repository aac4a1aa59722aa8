"""Alembic environment: evalgate's models are the target; the URL comes from settings."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool

from evalgate.core.settings import get_settings
from evalgate.db import models  # noqa: F401  (registers the tables on Base.metadata)
from evalgate.db.base import Base
from evalgate.db.session import make_engine

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

OPTUNA_TABLES = frozenset(
    {
        "studies",
        "study_directions",
        "study_user_attributes",
        "study_system_attributes",
        "trials",
        "trial_user_attributes",
        "trial_system_attributes",
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_heartbeats",
        "version_info",
    }
)
"""Tables Optuna's RDB storage adds to the same database for the tpe sampler's studies
(``evalgate.sweep.tpe``): Optuna creates them itself, so migrations neither create nor drop them."""


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Leave Optuna's tables out of autogenerate and ``alembic check`` (every other table is compared,
    so a table dropped from the models still shows up as one to remove)."""
    return not (type_ == "table" and name in OPTUNA_TABLES)


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against the live database."""
    url = _database_url()
    engine = make_engine(url, poolclass=pool.NullPool)
    sqlite = url.startswith("sqlite")
    with engine.connect() as connection:
        if sqlite:
            _foreign_keys_off(connection)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)
    engine.dispose()


def _foreign_keys_off(connection: Connection) -> None:
    """SQLite rebuilds a table to alter it (batch mode: copy, drop, rename): with foreign keys on, the drop
    fails while other tables' rows refer to it. The pragma is ignored inside a transaction, so it is set
    and committed before the migrations' transaction begins (the connection is not reused afterwards)."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()


def _check_foreign_keys(connection: Connection) -> None:
    """Refuse (roll back) a migration that left a row referring to a missing one."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration left rows with broken foreign keys: {broken[:5]}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
