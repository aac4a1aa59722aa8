"""candidates are trials: hyperparameters, one per (sweep, name), status stopped

Revision ID: 5e0c2a7d41b9
Revises: 2d2bc039dac6
Create Date: 2026-12-07 07:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "5e0c2a7d41b9"
down_revision: str | Sequence[str] | None = "2d2bc039dac6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OLD_STATUSES = "status IN ('pending', 'training', 'trained', 'failed', 'diverged')"
NEW_STATUSES = "status IN ('pending', 'training', 'trained', 'failed', 'diverged', 'stopped')"


def upgrade() -> None:
    """Add candidate.hyperparameters (a sweep's existing candidates get their rate), make a candidate
    unique by (sweep, name) instead of (sweep, rate), and allow status 'stopped'."""
    with op.batch_alter_table("candidate") as batch:
        batch.add_column(sa.Column("hyperparameters", JSON, nullable=False, server_default="{}"))
        batch.drop_constraint(op.f("uq_candidate_sweep_id_learning_rate"), type_="unique")
        batch.create_unique_constraint(op.f("uq_candidate_sweep_id_name"), ["sweep_id", "name"])
        batch.drop_constraint(op.f("ck_candidate_status"), type_="check")
        batch.create_check_constraint("status", NEW_STATUSES)
    candidate = sa.table(
        "candidate",
        sa.column("id", sa.Integer),
        sa.column("learning_rate", sa.Float),
        sa.column("hyperparameters", JSON),
    )
    bind = op.get_bind()
    rated = bind.execute(
        sa.select(candidate.c.id, candidate.c.learning_rate).where(candidate.c.learning_rate.is_not(None))
    )
    for candidate_id, rate in rated.all():
        bind.execute(
            candidate.update()
            .where(candidate.c.id == candidate_id)
            .values(hyperparameters={"learning_rate": rate})
        )
    with op.batch_alter_table("candidate") as batch:
        batch.alter_column("hyperparameters", server_default=None)


def downgrade() -> None:
    """Back to one candidate per (sweep, rate); stopped candidates become failed."""
    op.execute("UPDATE candidate SET status = 'failed' WHERE status = 'stopped'")
    with op.batch_alter_table("candidate") as batch:
        batch.drop_constraint(op.f("ck_candidate_status"), type_="check")
        batch.create_check_constraint("status", OLD_STATUSES)
        batch.drop_constraint(op.f("uq_candidate_sweep_id_name"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_candidate_sweep_id_learning_rate"), ["sweep_id", "learning_rate"]
        )
        batch.drop_column("hyperparameters")
