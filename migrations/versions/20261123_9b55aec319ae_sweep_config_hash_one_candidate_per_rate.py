"""sweep config hash, one candidate per rate

Revision ID: 9b55aec319ae
Revises: 92a73a63bb46
Create Date: 2026-11-23 02:36:32.514361

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "9b55aec319ae"
down_revision: str | Sequence[str] | None = "92a73a63bb46"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add sweep.config_hash (existing sweeps get "") and one candidate per (sweep, rate)."""
    with op.batch_alter_table("candidate") as batch:
        batch.create_unique_constraint(
            op.f("uq_candidate_sweep_id_learning_rate"), ["sweep_id", "learning_rate"]
        )
    with op.batch_alter_table("sweep") as batch:
        batch.add_column(sa.Column("config_hash", sa.String(length=64), nullable=False, server_default=""))
        batch.create_index(op.f("ix_sweep_config_hash"), ["config_hash"], unique=False)
    with op.batch_alter_table("sweep") as batch:
        batch.alter_column("config_hash", server_default=None)


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("sweep") as batch:
        batch.drop_index(op.f("ix_sweep_config_hash"))
        batch.drop_column("config_hash")
    with op.batch_alter_table("candidate") as batch:
        batch.drop_constraint(op.f("uq_candidate_sweep_id_learning_rate"), type_="unique")
