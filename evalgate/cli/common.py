"""What every command shares: settings with a checked database schema, and the errors a user can fix."""

from __future__ import annotations

from evalgate.core.settings import Settings, get_settings
from evalgate.data.rows import DatasetInputError
from evalgate.data.store import DatasetNotFoundError
from evalgate.data.store_files import DatasetIntegrityError
from evalgate.db.migrate import SchemaNotReadyError, ensure_schema
from evalgate.gate.decide import GateRefusal
from evalgate.gate.policy import PolicyError
from evalgate.modeling.refs import ModelError
from evalgate.service.api_tokens import TokenError

USER_ERRORS = (
    DatasetInputError,
    DatasetNotFoundError,
    DatasetIntegrityError,
    SchemaNotReadyError,
    ModelError,
    PolicyError,
    GateRefusal,
    TokenError,
    ValueError,
)
EXIT_USER_ERROR = 2


def ready_settings() -> Settings:
    """Settings, with the database checked (and, for embedded SQLite, migrated) to the latest schema."""
    settings = get_settings()
    ensure_schema(settings.resolved_database_url)
    return settings
