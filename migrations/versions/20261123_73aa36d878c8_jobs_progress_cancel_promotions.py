"""jobs: progress, log tail, cancel, back-off; promotions; decision lookup index

Revision ID: 73aa36d878c8
Revises: 9b55aec319ae
Create Date: 2026-11-23 05:10:58.538398

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "73aa36d878c8"
down_revision: str | Sequence[str] | None = "9b55aec319ae"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OLD_JOB_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed')"
NEW_JOB_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')"


def upgrade() -> None:
    """Add the promotion table, job progress/cancel columns, a 'cancelled' job status, decided_by."""
    op.create_table(
        "promotion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("promoted_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidate.id"], name=op.f("fk_promotion_candidate_id_candidate")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["gate_decision.id"], name=op.f("fk_promotion_decision_id_gate_decision")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion")),
    )
    op.create_index(op.f("ix_promotion_base_model"), "promotion", ["base_model"], unique=False)
    with op.batch_alter_table("gate_decision") as batch:
        batch.add_column(sa.Column("decided_by", sa.String(length=200), nullable=False, server_default=""))
        batch.create_index(
            "ix_gate_decision_runs_policy", ["candidate_run_id", "baseline_run_id", "policy_hash"]
        )
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("progress", JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("log_tail", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("run_after", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(op.f("ck_job_status"), type_="check")
        batch.create_check_constraint("status", NEW_JOB_STATUSES)
    with op.batch_alter_table("job") as batch:
        for column in ("progress", "log_tail", "cancel_requested"):
            batch.alter_column(column, server_default=None)
    with op.batch_alter_table("gate_decision") as batch:
        batch.alter_column("decided_by", server_default=None)


def downgrade() -> None:
    """Remove them again (cancelled jobs become failed)."""
    op.execute("UPDATE job SET status = 'failed' WHERE status = 'cancelled'")
    with op.batch_alter_table("job") as batch:
        batch.drop_constraint(op.f("ck_job_status"), type_="check")
        batch.create_check_constraint("status", OLD_JOB_STATUSES)
        for column in ("run_after", "cancel_requested", "log_tail", "progress"):
            batch.drop_column(column)
    with op.batch_alter_table("gate_decision") as batch:
        batch.drop_index("ix_gate_decision_runs_policy")
        batch.drop_column("decided_by")
    op.drop_index(op.f("ix_promotion_base_model"), table_name="promotion")
    op.drop_table("promotion")
