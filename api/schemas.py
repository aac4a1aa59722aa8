"""Request and response bodies of the REST API (pydantic models, shown in the OpenAPI schema), and
the checks that keep input the database cannot store (NUL characters, NaN, ids past its integers)
from reaching it: such input is a 422 naming the parameter or field, never a 500."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalgate.data.store import VersionInfo, VersionRef
from evalgate.db.models import ApiToken, Candidate, EvaluationRun, GateDecision, Job
from evalgate.evaluation.options import EvaluationOptions, KnownEvaluationOptions
from evalgate.gate.policy import GatePolicy
from evalgate.gate.service import PromotionInfo, StoredDecision
from evalgate.service.views import DatasetVersionView, DiffView, JobView, TokenView
from evalgate.sweep.config import SweepConfig

MAX_ID = 2**31 - 1
"""Largest id the database can hold (id columns are 32-bit INTEGER on PostgreSQL): past it, a 422."""
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]


def unstorable(value: Any, where: str = "") -> str | None:
    """Why ``value`` (nested dicts, lists, tuples and dataclasses walked) cannot be stored, naming the
    place, or None.

    PostgreSQL text and JSONB refuse NUL characters, and JSON has no NaN or Infinity (Python's parser
    accepts them), so such input is refused up front with its location instead of failing in the
    database.
    """
    if is_dataclass(value) and not isinstance(value, type):
        value = shallow_fields(value)
    if isinstance(value, str):
        return f"{where or 'value'}: NUL character (\\u0000) not allowed" if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'value'}: {value} is not a JSON number (no NaN or Infinity)"
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            problem = unstorable(str(key), inner + " (key)") or unstorable(item, inner)
            if problem:
                return problem
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = unstorable(item, f"{where}[{index}]")
            if problem:
                return problem
    return None


def shallow_fields(instance: Any) -> dict[str, Any]:
    """A dataclass instance's fields by name, values as they are (``dataclasses.asdict`` deep-copies
    every nested dict and list: a decision's evidence on every answer)."""
    return {field.name: getattr(instance, field.name) for field in fields(instance)}


async def storable_parameters(request: Request) -> None:
    """422 for a path or query parameter holding a NUL character, naming it (a router dependency:
    PostgreSQL text cannot hold NUL, and these values reach queries as they are)."""
    given = [("path", name, str(value)) for name, value in request.path_params.items()]
    given += [("query", name, value) for name, value in request.query_params.multi_items()]
    for location, name, value in given:
        if "\x00" in name or "\x00" in value:
            message = "NUL character (\\u0000) not allowed"
            raise RequestValidationError([{"loc": (location, name), "msg": message, "type": "value_error"}])


STORABLE = Depends(storable_parameters)


def version_ref(text: str, loc: tuple[str, ...]) -> VersionRef:
    """``NAME[@vN]`` parsed; a malformed one (a version number the database cannot hold included) is a
    422 at ``loc``."""
    try:
        return VersionRef.parse(text)
    except ValueError as error:
        raise RequestValidationError([{"loc": loc, "msg": str(error), "type": "value_error"}]) from None


class Strict(BaseModel):
    """Request bodies reject unknown fields, so a typo is a 422 instead of being ignored, and values
    the database cannot store (``unstorable``), so those are a 422 naming the place, not a 500."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = unstorable(value)
        if problem:
            raise ValueError(problem)
        return value


# ------------------------------------------------------------------------------------------- datasets


class VersionOut(DatasetVersionView):
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


class DiffOut(DiffView):
    pass


# ------------------------------------------------------------------------------------------------ jobs


class JobOut(JobView):
    pass

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(**{name: getattr(job, name) for name in cls.model_fields})


class SweepIn(Strict):
    config: SweepConfig = Field(description="A sweep config, as in examples/sweep.yaml.")


# ------------------------------------------------------------------------------------------ candidates


class CandidateIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    base_model: str = Field(min_length=1, description="The base model the adapter was trained on.")
    adapter_uri: str = Field(min_length=1, description="Absolute path of the PEFT adapter folder.")
    learning_rate: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    training: dict[str, Any] = Field(
        default_factory=dict, description="Training metadata; `loss_curve` (numbers) is diagnosed."
    )

    @field_validator("training", mode="after")
    @classmethod
    def _loss_curve_is_numbers(cls, training: dict[str, Any]) -> dict[str, Any]:
        curve = training.get("loss_curve")
        if curve is not None and not (
            isinstance(curve, list)
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in curve)
        ):
            raise ValueError("loss_curve must be a list of numbers")
        return training


class CandidateOut(BaseModel):
    id: int
    name: str = Field(
        description="A sweep's candidate: its trial's label, naming the rate and every searched "
        "hyperparameter (`lr=0.0003 cosine r=4`); a registered one: the name it was registered with."
    )
    sweep_id: int | None
    base_model: str
    learning_rate: float | None
    hyperparameters: dict[str, Any] = Field(
        description="The trial's learning_rate, scheduler, warmup_steps, warmup_ratio, final_fraction, "
        "lora_r and lora_alpha; empty for a registered candidate."
    )
    adapter_uri: str | None
    adapter_hash: str | None
    status: str = Field(
        description="pending, training, trained, failed, diverged, or stopped (halted early by "
        "successive halving, not evaluated)."
    )
    halted: str | None = Field(
        description="Why successive halving stopped it (rung, step, validation loss); null unless "
        "status is stopped."
    )
    diagnosis: str | None
    training: dict[str, Any]
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, candidate: Candidate) -> CandidateOut:
        stored = {name: getattr(candidate, name) for name in cls.model_fields if name != "halted"}
        return cls(**stored, halted=halted_reason(candidate.status, candidate.training))


def halted_reason(status: str, training: dict[str, Any] | None) -> str | None:
    """Why successive halving stopped a candidate (``training["halted"]``); None unless ``status`` is
    stopped."""
    if status != "stopped":
        return None
    return str((training or {}).get("halted") or "") or None


# ----------------------------------------------------------------------------------------- evaluations


class EvaluationIn(Strict):
    candidate_id: BodyId | None = Field(
        default=None, description="Evaluate this candidate (and the base model)."
    )
    dataset: str | None = Field(default=None, description="NAME@vN; required with candidate_id.")
    sweep_id: BodyId | None = Field(default=None, description="Or: every trained candidate of this sweep.")
    options: KnownEvaluationOptions = Field(
        default_factory=EvaluationOptions, description="How to evaluate, as the CI job's `evaluation:`."
    )

    @model_validator(mode="after")
    def _one_target(self) -> EvaluationIn:
        if (self.candidate_id is None) == (self.sweep_id is None):
            raise ValueError("give candidate_id (with dataset) or sweep_id, not both")
        if self.candidate_id is not None and self.dataset is None:
            raise ValueError("dataset (NAME@vN) is required with candidate_id")
        return self


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
    candidate_id: BodyId
    policy: GatePolicy = Field(description="A gate policy, as in examples/policy.yaml.")
    baseline: Literal["auto", "base", "promoted"] | BodyId = Field(
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
        return cls(**shallow_fields(decision))

    @classmethod
    def of_row(cls, row: GateDecision) -> DecisionOut:
        """A stored decision as listed (``reused`` is false: listing decides nothing)."""
        return cls(
            **{name: getattr(row, name) for name in cls.model_fields if name != "reused"}, reused=False
        )


class PromotionOut(BaseModel):
    id: int
    base_model: str
    candidate_id: int
    decision_id: int
    promoted_by: str
    created_at: datetime

    @classmethod
    def of(cls, promotion: PromotionInfo) -> PromotionOut:
        return cls(**shallow_fields(promotion))


# ---------------------------------------------------------------------------------------------- tokens


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["read", "write", "admin"]


class TokenCreated(BaseModel):
    name: str
    scope: str
    token: str = Field(description="Shown once; only its sha256 is stored.")


class TokenOut(TokenView):
    @classmethod
    def of_row(cls, row: ApiToken) -> TokenOut:
        """A stored token, without its hash: its one scope, and whether it is revoked."""
        return cls(
            id=row.id, name=row.name, scope=row.scopes[0], created_at=row.created_at,
            revoked=row.revoked_at is not None,
        )  # fmt: skip
