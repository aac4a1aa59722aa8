"""Queries that several layers ask, written once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from evalgate.db.models import EvaluationRun


def latest_finished_run(
    session: Session, candidate_id: int, dataset_version_id: int | None = None
) -> EvaluationRun | None:
    """The candidate's newest finished evaluation run (the highest id), on ``dataset_version_id`` when
    given; None when it has none. The run a candidate is decided on unless a decision names another."""
    query = select(EvaluationRun).where(
        EvaluationRun.candidate_id == candidate_id, EvaluationRun.status == "finished"
    )
    if dataset_version_id is not None:
        query = query.where(EvaluationRun.dataset_version_id == dataset_version_id)
    return session.scalars(query.order_by(EvaluationRun.id.desc()).limit(1)).first()
