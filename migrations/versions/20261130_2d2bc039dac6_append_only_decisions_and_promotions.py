"""append-only gate decisions and promotions: the database refuses UPDATE and DELETE

Revision ID: 2d2bc039dac6
Revises: 73aa36d878c8
Create Date: 2026-11-30 01:45:00.000000

A decision is evidence: once stored it never changes, and the promotion history (the newest row per
base model is its baseline) is only ever appended to. Row triggers enforce this for every client of
the database, not only for evalgate's ORM. TRUNCATE and DROP are not row operations and stay
possible for the database owner (test fixtures empty tables with TRUNCATE).

On SQLite, a later migration that rebuilds one of these tables (``batch_alter_table`` copies it to a
new table) drops its triggers with the old table and must create them again.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "2d2bc039dac6"
down_revision: str | Sequence[str] | None = "73aa36d878c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("gate_decision", "promotion")
FUNCTION = "evalgate_refuse_append_only_change"

# The message is joined with || rather than RAISE placeholders: `alembic upgrade --sql` doubles % signs.
POSTGRES_FUNCTION = f"""
CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' of row id ' || OLD.id || ' refused',
        ERRCODE = 'integrity_constraint_violation',
        HINT = 'store a new row instead of changing a stored one';
END
$$
"""


def upgrade() -> None:
    """Install BEFORE UPDATE and BEFORE DELETE row triggers that raise on both tables."""
    dialect = _dialect()
    if dialect == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
            )
        return
    for table in TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
            )


def downgrade() -> None:
    """Drop the triggers (and the PostgreSQL trigger function)."""
    if _dialect() == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
        return
    for table in TABLES:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")


def _dialect() -> str:
    """``postgresql`` or ``sqlite``; any other database is refused rather than left unguarded."""
    name = op.get_bind().dialect.name
    if name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"append-only triggers are written for PostgreSQL and SQLite, not {name}")
    return name
