"""The tables of the whole flow, in the order a candidate travels through them.

dataset -> dataset_version -> sweep -> candidate -> evaluation_run (generation, row_score)
-> gate_decision -> promotion; plus job (durable work queue) and api_token (REST access).
Each arrow is a foreign key. Tables are created by Alembic migrations (``migrations/``), never by
``create_all`` outside tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalgate.db.append_only import guard
from evalgate.db.base import Base, CreatedAtMixin, JsonType, utcnow

HASH_LEN = 64
"""Length of a hex sha256 digest."""


def _status_check(*allowed: str) -> CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in allowed)
    return CheckConstraint(f"status IN ({quoted})", name="status")


class Dataset(CreatedAtMixin, Base):
    """A named evaluation set; its content lives in immutable versions."""

    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.number"
    )


class DatasetVersion(CreatedAtMixin, Base):
    """One immutable version (v1, v2, ...) of a dataset, identified by its content hash."""

    __tablename__ = "dataset_version"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number"),
        UniqueConstraint("dataset_id", "content_hash"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    """sha256 over the canonical rows (sorted by id); equal content gives an equal hash."""
    storage_uri: Mapped[str] = mapped_column(Text)
    """Folder (local path or fsspec URL) holding one Parquet file per split."""
    row_count: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """Rows per cohort and split: ``{cohort: {split: n}}``."""
    files: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """Per split: ``{split: {"path": ..., "sha256": ..., "rows": n}}``; verified on every load."""
    sources: Mapped[list[Any]] = mapped_column(JsonType)
    """The imported input files: ``[{"name": ..., "sha256": ..., "rows": n}]``."""

    dataset: Mapped[Dataset] = relationship(back_populates="versions")

    @property
    def label(self) -> str:
        """``name@vN``."""
        return f"{self.dataset.name}@v{self.number}"


class Sweep(CreatedAtMixin, Base):
    """One learning-rate sweep of a base model on a dataset version's train split."""

    __tablename__ = "sweep"
    __table_args__ = (_status_check("pending", "running", "finished", "failed", "interrupted"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"))
    base_model: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    config_hash: Mapped[str] = mapped_column(String(HASH_LEN), index=True)
    """sha256 of the canonical config; re-running the same config resumes this sweep."""
    status: Mapped[str] = mapped_column(String(20), default="pending")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    candidates: Mapped[list[Candidate]] = relationship(back_populates="sweep")


class Candidate(CreatedAtMixin, Base):
    """A LoRA adapter: trained by a sweep for one trial (a rate, or a point of its search space), or
    registered from outside (no sweep). ``stopped``: halted early by successive halving, not evaluated."""

    __tablename__ = "candidate"
    __table_args__ = (
        _status_check("pending", "training", "trained", "failed", "diverged", "stopped"),
        UniqueConstraint("sweep_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweep.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    base_model: Mapped[str] = mapped_column(Text)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """The trial's rate, schedule, warmup, final fraction, LoRA rank and alpha (empty when registered)."""
    adapter_uri: Mapped[str | None] = mapped_column(Text)
    adapter_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    diagnosis: Mapped[str | None] = mapped_column(String(20))
    """Loss-curve diagnosis: healthy, flat, oscillating or diverged."""
    training: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """Loss and rate curves, wall time, tokens/s."""
    error: Mapped[str | None] = mapped_column(Text)

    sweep: Mapped[Sweep | None] = relationship(back_populates="candidates")


class EvaluationRun(CreatedAtMixin, Base):
    """Generations and per-row scores of one model (base when ``candidate_id`` is null)."""

    __tablename__ = "evaluation_run"
    __table_args__ = (_status_check("pending", "running", "finished", "failed"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidate.id"), index=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"))
    model_fingerprint: Mapped[str] = mapped_column(String(HASH_LEN))
    decoding: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    summary: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """Aggregates per evaluator x cohort: mean, interval, fail rate."""
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Generation(Base):
    """A cached model answer, keyed by (model, dataset version, decoding settings) and row."""

    __tablename__ = "generation"
    __table_args__ = (UniqueConstraint("cache_key", "row_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(HASH_LEN))
    """sha256 of model fingerprint + dataset content hash + decoding settings."""
    row_id: Mapped[str] = mapped_column(String(200))
    output: Mapped[str] = mapped_column(Text)
    new_tokens: Mapped[int] = mapped_column(Integer)


class RowScore(Base):
    """One evaluator's score of one row in one evaluation run."""

    __tablename__ = "row_score"
    __table_args__ = (UniqueConstraint("evaluation_run_id", "evaluator", "row_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_run_id: Mapped[int] = mapped_column(ForeignKey("evaluation_run.id", ondelete="CASCADE"))
    row_id: Mapped[str] = mapped_column(String(200))
    cohort: Mapped[str] = mapped_column(String(100))
    evaluator: Mapped[str] = mapped_column(String(100))
    evaluator_version: Mapped[str] = mapped_column(String(50))
    score: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class GateDecision(CreatedAtMixin, Base):
    """A candidate's verdict against its baseline, with its evidence. Append-only."""

    __tablename__ = "gate_decision"
    __table_args__ = (
        CheckConstraint("verdict IN ('pass', 'block')", name="verdict"),
        Index("ix_gate_decision_runs_policy", "candidate_run_id", "baseline_run_id", "policy_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id"), index=True)
    baseline_run_id: Mapped[int] = mapped_column(ForeignKey("evaluation_run.id"))
    candidate_run_id: Mapped[int] = mapped_column(ForeignKey("evaluation_run.id"))
    policy: Mapped[dict[str, Any]] = mapped_column(JsonType)
    policy_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    verdict: Mapped[str] = mapped_column(String(20))
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JsonType)


class Promotion(CreatedAtMixin, Base):
    """A candidate made the baseline of its base model; the newest promotion per base model wins.
    Append-only: the rows are the history of baselines."""

    __tablename__ = "promotion"

    id: Mapped[int] = mapped_column(primary_key=True)
    base_model: Mapped[str] = mapped_column(Text, index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id"))
    decision_id: Mapped[int] = mapped_column(ForeignKey("gate_decision.id"))
    """The passing decision that allowed the promotion."""
    promoted_by: Mapped[str] = mapped_column(String(200), default="")


guard(GateDecision, Promotion)  # the database refuses changes too (row triggers, see migrations)


JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class Job(CreatedAtMixin, Base):
    """A durable unit of background work, claimed by one worker at a time."""

    __tablename__ = "job"
    __table_args__ = (
        _status_check(*JOB_STATUSES),
        Index("ix_job_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """The handler's latest progress report, e.g. ``{"step": 3, "total": 8, "message": ...}``."""
    log_tail: Mapped[str] = mapped_column(Text, default="")
    """The last lines the handler logged (bounded)."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    run_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Not claimed before this time (retry back-off)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ApiToken(CreatedAtMixin, Base):
    """A REST API token; only its sha256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(HASH_LEN), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JsonType)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(CreatedAtMixin, Base):
    """The answer to a POST sent with an ``Idempotency-Key`` header, kept so that a retry of it gets the
    same answer instead of doing the work twice (``api/idempotency.py``). ``scope`` is the sha256 of the
    request's credential, so one client's keys never answer another's requests."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("scope", "key"), _status_check("pending", "done"))

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(HASH_LEN))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    """sha256 of the method, path, query and body: a key reused for another request is refused."""
    status: Mapped[str] = mapped_column(String(20), default="pending")
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    """Renewed while the request holding the key runs: a stale one means its process died."""
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    response_body: Mapped[str | None] = mapped_column(Text)
