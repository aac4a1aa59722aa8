"""Finished evaluation runs with chosen per-row scores, written straight to the database.

Gate, selection and API tests decide from stored scores; these helpers store them without a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from evalgate.db.models import Candidate, DatasetVersion, EvaluationRun, RowScore

EVALUATORS = {
    "quality": {"version": "1", "higher_is_better": True},
    "ood_kl": {"version": "1", "higher_is_better": False},
}


def add_run(
    session: Session,
    version: DatasetVersion,
    candidate_id: int | None,
    scores: Mapping[tuple[str, str], Sequence[float]],
    baseline_id: int | None,
) -> int:
    """A finished run of ``candidate_id`` (None: the base model) with row ``{cohort}-{i}`` scored."""
    summary: dict[str, object] = {"dataset_hash": version.content_hash, "evaluators": EVALUATORS}
    if baseline_id is not None:
        summary["baseline_run_id"] = baseline_id
    run = EvaluationRun(
        candidate_id=candidate_id,
        dataset_version_id=version.id,
        model_fingerprint="f" * 64,
        decoding={},
        status="finished",
        summary=summary,
    )
    session.add(run)
    session.flush()
    for (evaluator, cohort), values in scores.items():
        session.add_all(
            RowScore(evaluation_run_id=run.id, row_id=f"{cohort}-{i}", cohort=cohort, evaluator=evaluator,
                     evaluator_version="1", score=float(v), passed=bool(v >= 0.5), detail={})
            for i, v in enumerate(values)
        )  # fmt: skip
    return run.id


def add_candidate(session: Session, name: str, base_model: str = "m", **fields: object) -> int:
    """A trained candidate row (no sweep unless ``sweep_id`` is given)."""
    candidate = Candidate(name=name, base_model=base_model, status="trained", **fields)
    session.add(candidate)
    session.flush()
    return candidate.id
