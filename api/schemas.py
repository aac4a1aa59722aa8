"""Request and response bodies of the REST API (pydantic models, shown in the OpenAPI schema)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evalgate.db.models import Candidate, EvaluationRun, Job
from evalgate.gate_service import PromotionInfo, StoredDecision
from evalgate.store import VersionInfo


class Strict(BaseModel):
    """Request bodies reject unknown fields, so a typo is a 422 instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------- datasets


class VersionOut(BaseModel):
    name: str
    number: int
    label: str
    content_hash: str
    row_count: int
    counts: dict[str, dict[str, int]]
    created_at: datetime
    created: bool | None = None
    """On upload: False when identical content was already stored (that version is returned)."""

    @classmethod
    def of(cls, info: VersionInfo, created: bool | None = None) -> VersionOut:
        return cls(
            name=info.name,
            number=info.number,
            label=info.label,
            content_hash=info.content_hash,
            row_count=info.row_count,
            counts=info.counts,
            created_at=info.created_at,
            created=created,
        )


class DiffOut(BaseModel):
    old: str
    new: str
    added: list[str]
    removed: list[str]
    changed: dict[str, list[str]]
    unchanged: int


# ------------------------------------------------------------------------------------------------ jobs


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    attempts: int
    max_attempts: int
    progress: dict[str, Any]
    log_tail: str
    error: str | None
    result: dict[str, Any] | None
    locked_by: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(**{name: getattr(job, name) for name in cls.model_fields})


class SweepIn(Strict):
    config: dict[str, Any] = Field(description="A sweep config, as in examples/sweep.yaml.")


# ------------------------------------------------------------------------------------------ candidates


class CandidateIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    base_model: str = Field(min_length=1, description="The base model the adapter was trained on.")
    adapter_uri: str = Field(min_length=1, description="Absolute path of the PEFT adapter folder.")
    learning_rate: float | None = Field(default=None, gt=0)
    training: dict[str, Any] = Field(
        default_factory=dict, description="Training metadata; `loss_curve` (numbers) is diagnosed."
    )


class CandidateOut(BaseModel):
    id: int
    name: str
    sweep_id: int | None
    base_model: str
    learning_rate: float | None
    adapter_uri: str | None
    adapter_hash: str | None
    status: str
    diagnosis: str | None
    training: dict[str, Any]
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, candidate: Candidate) -> CandidateOut:
        return cls(**{name: getattr(candidate, name) for name in cls.model_fields})


# ----------------------------------------------------------------------------------------- evaluations


class EvaluationOptionsIn(Strict):
    evaluators: list[str] | None = None
    max_new_tokens: int = Field(default=96, ge=1, le=4096)
    batch_size: int = Field(default=8, ge=1, le=1024)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 0
    mixed_adapters: bool = True


class EvaluationIn(Strict):
    candidate_id: int | None = Field(
        default=None, description="Evaluate this candidate (and the base model)."
    )
    dataset: str | None = Field(default=None, description="NAME@vN; required with candidate_id.")
    sweep_id: int | None = Field(default=None, description="Or: every trained candidate of this sweep.")
    options: EvaluationOptionsIn = Field(default_factory=EvaluationOptionsIn)


class EvaluationOut(BaseModel):
    id: int
    candidate_id: int | None
    dataset_version_id: int
    status: str
    model_fingerprint: str
    decoding: dict[str, Any]
    summary: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, run: EvaluationRun) -> EvaluationOut:
        return cls(**{name: getattr(run, name) for name in cls.model_fields})


# ------------------------------------------------------------------------------------------------ gate


class DecideIn(Strict):
    candidate_id: int
    policy: dict[str, Any] = Field(description="A gate policy, as in examples/policy.yaml.")
    baseline: Literal["auto", "base", "promoted"] | int = Field(
        default="auto",
        description="auto: the last promoted candidate of the same base model, else the base model; "
        "or an evaluation run id.",
    )


class DecisionOut(BaseModel):
    id: int
    candidate_id: int
    candidate_run_id: int
    baseline_run_id: int
    verdict: str
    policy_hash: str
    evidence: dict[str, Any]
    decided_by: str
    created_at: datetime
    reused: bool

    @classmethod
    def of(cls, decision: StoredDecision) -> DecisionOut:
        return cls(**asdict(decision))


class PromotionOut(BaseModel):
    id: int
    base_model: str
    candidate_id: int
    decision_id: int
    promoted_by: str
    created_at: datetime

    @classmethod
    def of(cls, promotion: PromotionInfo) -> PromotionOut:
        return cls(**asdict(promotion))


# ---------------------------------------------------------------------------------------------- tokens


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["read", "write", "admin"]


class TokenCreated(BaseModel):
    name: str
    scope: str
    token: str = Field(description="Shown once; only its sha256 is stored.")


class TokenOut(BaseModel):
    id: int
    name: str
    scope: str
    created_at: datetime
    revoked: bool
