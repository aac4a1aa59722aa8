"""Database reads and writes of evaluation runs: cached generations, runs, per-row scores."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.base import utcnow
from evalgate.db.models import Candidate, Dataset, DatasetVersion, EvaluationRun, Generation, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.evaluation.aggregate import ScoreRecord
from evalgate.modeling.generation import Answer

TRAINED_STATUSES = ("trained",)
"""Candidates a sweep evaluation covers (diverged and failed ones have nothing worth shipping)."""


@dataclass(frozen=True)
class CandidateInfo:
    """What evaluating a candidate needs, detached from the session."""

    id: int
    name: str
    base_model: str
    adapter_uri: str
    adapter_hash: str
    learning_rate: float | None


@dataclass(frozen=True)
class RunKey:
    """Which model's answers on which dataset version, decoded how, an evaluation run scores."""

    candidate_id: int | None
    version_id: int
    fingerprint: str
    decoding: dict[str, Any]


@dataclass(frozen=True)
class StoredScore:
    """One per-row score to write to ``row_score``."""

    row_id: str
    cohort: str
    evaluator: str
    evaluator_version: str
    score: float | None
    passed: bool | None
    detail: Mapping[str, Any]


# ----------------------------------------------------------------------------------------- generations


def cached_generations(sessions: sessionmaker[Session], key: str) -> dict[str, Answer]:
    """Every cached answer under ``key``, by row id."""
    with session_scope(sessions) as session:
        found = session.execute(
            select(Generation.row_id, Generation.output, Generation.new_tokens).where(
                Generation.cache_key == key
            )
        ).all()
        return {row_id: Answer(output, new_tokens) for row_id, output, new_tokens in found}


def store_generations(sessions: sessionmaker[Session], key: str, answers: Mapping[str, Answer]) -> None:
    """Cache ``answers`` under ``key``; rows another writer cached meanwhile are kept as they are."""
    try:
        with session_scope(sessions) as session:
            present = set(session.scalars(select(Generation.row_id).where(Generation.cache_key == key)).all())
            session.add_all(
                Generation(cache_key=key, row_id=row_id, output=a.text, new_tokens=a.new_tokens)
                for row_id, a in answers.items()
                if row_id not in present
            )
    except IntegrityError:  # a concurrent run cached some of the rows first: store the rest one by one
        for row_id, answer in answers.items():
            try:
                with session_scope(sessions) as session:
                    session.add(
                        Generation(
                            cache_key=key, row_id=row_id, output=answer.text, new_tokens=answer.new_tokens
                        )
                    )
            except IntegrityError:
                continue


# ------------------------------------------------------------------------------------------------ runs


def dataset_version_id(sessions: sessionmaker[Session], name: str, number: int) -> int:
    """The id of ``name@v<number>``."""
    with session_scope(sessions) as session:
        found = session.scalar(
            select(DatasetVersion.id)
            .join(Dataset)
            .where(Dataset.name == name, DatasetVersion.number == number)
        )
        if found is None:
            raise LookupError(f"dataset version {name}@v{number} not found")
        return found


def finished_base_run(
    sessions: sessionmaker[Session],
    *,
    version_id: int,
    fingerprint: str,
    decoding: dict[str, Any],
    evaluator_versions: Mapping[str, str],
) -> tuple[int, dict[str, Any]] | None:
    """The newest finished base-model run with this model, dataset version and decoding, scored by
    exactly these evaluators at these versions: ``(id, summary)``, or None. Such a run is what a new
    one would store again, so it can stand for the base model in a later evaluation."""
    with session_scope(sessions) as session:
        runs = session.scalars(
            select(EvaluationRun)
            .where(
                EvaluationRun.candidate_id.is_(None),
                EvaluationRun.dataset_version_id == version_id,
                EvaluationRun.model_fingerprint == fingerprint,
                EvaluationRun.status == "finished",
            )
            .order_by(EvaluationRun.id.desc())
        )
        for run in runs:
            scored = {name: info.get("version") for name, info in run.summary.get("evaluators", {}).items()}
            if run.decoding == decoding and scored == dict(evaluator_versions):
                return run.id, dict(run.summary)
    return None


def store_run(
    sessions: sessionmaker[Session],
    run: RunKey,
    status: str,
    scores: Iterable[StoredScore],
    summarize: Callable[[int, list[ScoreRecord]], dict[str, Any]],
) -> tuple[int, dict[str, Any]]:
    """Write a whole evaluation run in one transaction: the run, its per-row scores and the summary
    ``summarize(run_id, records)`` makes of them; returns its id and summary.

    A run is never visible half-written: a worker killed while storing it leaves nothing, and one
    killed between runs leaves only complete, finished runs (which a retry takes up, see
    ``resumed_run``), never a ``running`` run nobody will finish.
    """
    with session_scope(sessions) as session:
        row = EvaluationRun(
            candidate_id=run.candidate_id,
            dataset_version_id=run.version_id,
            model_fingerprint=run.fingerprint,
            decoding=run.decoding,
            status=status,
            summary={},
            finished_at=utcnow(),
        )
        session.add(row)
        session.flush()
        session.add_all(
            RowScore(
                evaluation_run_id=row.id,
                row_id=s.row_id,
                cohort=s.cohort,
                evaluator=s.evaluator,
                evaluator_version=s.evaluator_version,
                score=s.score,
                passed=s.passed,
                detail=dict(s.detail),
            )
            for s in scores
        )
        session.flush()
        summary = summarize(row.id, _records(session, row.id))
        row.summary = summary
        return row.id, summary


def resumed_run(
    sessions: sessionmaker[Session], run: RunKey, resume_key: str
) -> tuple[int, dict[str, Any]] | None:
    """The finished run of this model, dataset version and decoding that an earlier attempt of the
    same evaluation (``resume_key``, e.g. its job) already stored: ``(id, summary)``, or None."""
    with session_scope(sessions) as session:
        found = session.scalars(
            select(EvaluationRun)
            .where(
                EvaluationRun.candidate_id.is_(None)
                if run.candidate_id is None
                else EvaluationRun.candidate_id == run.candidate_id,
                EvaluationRun.dataset_version_id == run.version_id,
                EvaluationRun.model_fingerprint == run.fingerprint,
                EvaluationRun.status == "finished",
            )
            .order_by(EvaluationRun.id)
        )
        for stored in found:
            if stored.decoding == run.decoding and stored.summary.get("resume_key") == resume_key:
                return stored.id, dict(stored.summary)
    return None


def run_records(sessions: sessionmaker[Session], run_id: int) -> list[ScoreRecord]:
    """The per-row scores of a run, for aggregation and pairing."""
    with session_scope(sessions) as session:
        return _records(session, run_id)


def _records(session: Session, run_id: int) -> list[ScoreRecord]:
    found = session.execute(
        select(RowScore.evaluator, RowScore.cohort, RowScore.row_id, RowScore.score, RowScore.passed)
        .where(RowScore.evaluation_run_id == run_id)
        .order_by(RowScore.evaluator, RowScore.row_id)
    ).all()
    return [ScoreRecord(*values) for values in found]


def run_summary(sessions: sessionmaker[Session], run_id: int) -> dict[str, Any]:
    """A run's stored fields as a plain dict."""
    with session_scope(sessions) as session:
        run = session.get_one(EvaluationRun, run_id)
        return {
            "id": run.id,
            "candidate_id": run.candidate_id,
            "dataset_version_id": run.dataset_version_id,
            "model_fingerprint": run.model_fingerprint,
            "decoding": run.decoding,
            "status": run.status,
            "summary": run.summary,
        }


# ------------------------------------------------------------------------------------------ candidates


def candidate_info(sessions: sessionmaker[Session], candidate_id: int) -> CandidateInfo:
    """A trained candidate's adapter; ``ValueError`` when it has none."""
    with session_scope(sessions) as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise ValueError(f"no candidate with id {candidate_id}")
        if not candidate.adapter_uri or not candidate.adapter_hash:
            raise ValueError(f"candidate {candidate_id} ({candidate.status}) has no trained adapter")
        return CandidateInfo(
            id=candidate.id,
            name=candidate.name,
            base_model=candidate.base_model,
            adapter_uri=candidate.adapter_uri,
            adapter_hash=candidate.adapter_hash,
            learning_rate=candidate.learning_rate,
        )


def sweep_candidates(sessions: sessionmaker[Session], sweep_id: int) -> tuple[str, str, list[int]]:
    """The sweep's dataset label (``name@vN``), base model, and trained candidates' ids by rate (then
    name); candidates that diverged, failed or were stopped early are not evaluated."""
    with session_scope(sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            raise ValueError(f"no sweep with id {sweep_id}")
        version = session.get_one(DatasetVersion, sweep.dataset_version_id)
        ids = session.scalars(
            select(Candidate.id)
            .where(Candidate.sweep_id == sweep_id, Candidate.status.in_(TRAINED_STATUSES))
            .order_by(Candidate.learning_rate, Candidate.name)
        ).all()
        return f"{version.dataset.name}@v{version.number}", sweep.base_model, list(ids)
