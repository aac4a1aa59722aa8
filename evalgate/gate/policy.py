"""Gate policy: which evaluator x cohort checks a candidate must pass, with margins and floors.

    evalgate gate --policy examples/policy.yaml ...

A policy is YAML, validated into frozen objects, and stored (with its sha256) in every decision::

    version: 1
    confidence: 0.95        # two-sided level of each check's interval (Holm-corrected across checks)
    resamples: 2000         # paired-bootstrap resamples
    seed: 0
    inconclusive: block     # block (fail closed) or pass
    checks:
      - {evaluator: json_validation, cohort: target, margin: 0.05, floor: 0.5}
      - {evaluator: answer_accuracy, cohort: ood, margin: 0.05}
      - {evaluator: content_safety, cohort: safety, margin: 0.05, max_flips: 2}

``margin`` is the non-inferiority margin δ in score units; ``relative_margin`` instead sets
δ = relative_margin x |baseline mean|. ``floor`` is an absolute bound on the candidate's mean (a minimum
for higher-is-better evaluators, a maximum otherwise). ``max_flips`` is a hard rule: at most that many
rows may go from passing (baseline) to failing (candidate).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, field_validator, model_validator
from pydantic.dataclasses import dataclass

from evalgate.core.config_files import CONFIG_FILE, Integer, Name, Number, load_yaml, validated

DEFAULT_MARGIN = 0.05
Margin = Annotated[Number, Field(ge=0)]
"""A margin: a finite number >= 0."""


class PolicyError(ValueError):
    """A policy value is missing, unknown or out of range; the message names it."""


@dataclass(frozen=True, config=CONFIG_FILE)
class Check:
    """One evaluator x cohort comparison of candidate against baseline."""

    evaluator: Name
    """Name of the evaluator whose per-row scores are compared."""
    cohort: Name
    """Cohort of the eval rows compared."""
    margin: Margin | None = None
    """Absolute non-inferiority margin δ >= 0 (0.05 when neither margin nor relative_margin is set)."""
    relative_margin: Margin | None = None
    """δ as a share of the baseline's mean."""
    floor: Number | None = None
    """Absolute bound on the candidate's mean (min if higher is better, else max)."""
    max_flips: Annotated[Integer, Field(ge=0)] | None = None
    """Hard rule: most rows allowed to flip from pass to fail."""

    @model_validator(mode="after")
    def _one_margin(self) -> Check:
        if self.margin is not None and self.relative_margin is not None:
            raise ValueError("give margin or relative_margin, not both")
        return self

    @property
    def label(self) -> str:
        """``evaluator/cohort``."""
        return f"{self.evaluator}/{self.cohort}"

    def delta(self, baseline_mean: float) -> float:
        """The margin δ in score units for this baseline."""
        if self.relative_margin is not None:
            return self.relative_margin * abs(baseline_mean)
        return DEFAULT_MARGIN if self.margin is None else self.margin


@dataclass(frozen=True, config=CONFIG_FILE)
class GatePolicy:
    """A validated gate policy."""

    checks: Annotated[tuple[Check, ...], Field(json_schema_extra={"minItems": 1})]
    """The evaluator x cohort checks a candidate must pass (each pair at most once)."""
    version: Integer = 1
    """The policy's own version number, kept with each decision."""
    confidence: Annotated[Number, Field(gt=0.5, lt=1)] = 0.95
    """Two-sided level of each check's interval (Holm-corrected across checks)."""
    resamples: Annotated[Integer, Field(ge=100)] = 2000
    """Paired-bootstrap resamples."""
    seed: Annotated[Integer, Field(ge=0)] = 0
    """Seed of the bootstrap."""
    inconclusive: Literal["block", "pass"] = "block"
    """What an inconclusive check does: block (fail closed) or pass."""
    name: Annotated[str, Strict()] = "default"
    """Label of the policy."""
    objective: Annotated[str, Strict()] | None = None
    """``evaluator/cohort`` whose gain ranks passing candidates (default: the first target check)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept with the policy (owner, ticket, ...)."""

    @field_validator("checks")
    @classmethod
    def _distinct_checks(cls, checks: tuple[Check, ...]) -> tuple[Check, ...]:
        if not checks:
            raise ValueError("give at least one check")
        labels = [check.label for check in checks]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"an evaluator/cohort pair is listed twice: {', '.join(repeated)}")
        return checks

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GatePolicy:
        """Build from plain data, rejecting unknown keys."""
        return validated(cls, data, PolicyError)

    @classmethod
    def from_yaml(cls, path: Path) -> GatePolicy:
        """Read and validate a YAML policy file."""
        return load_yaml(path, cls.from_dict, PolicyError)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as stored with each decision."""
        return asdict(self)

    @property
    def sha256(self) -> str:
        """Hash of the canonical policy."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
