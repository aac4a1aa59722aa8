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
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evalgate.core.config_files import load_yaml

DEFAULT_MARGIN = 0.05
INCONCLUSIVE_CHOICES = ("block", "pass")


class PolicyError(ValueError):
    """A policy value is missing, unknown or out of range; the message names it."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise PolicyError(f"{key}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_number(value: Any, key: str, optional: bool = False) -> None:
    """A real number (YAML ``1e9`` is a string: write ``1.0e+9``), or None when ``optional``."""
    if value is None and optional:
        return
    is_number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    _require(is_number, key, f"must be a number, got {value!r}")


@dataclass(frozen=True)
class Check:
    """One evaluator x cohort comparison of candidate against baseline."""

    evaluator: str
    cohort: str
    margin: float | None = None
    """Absolute non-inferiority margin δ >= 0 (default DEFAULT_MARGIN unless relative_margin is set)."""
    relative_margin: float | None = None
    """δ as a share of the baseline's mean."""
    floor: float | None = None
    """Absolute bound on the candidate's mean (min if higher is better, else max)."""
    max_flips: int | None = None
    """Hard rule: most rows allowed to flip from pass to fail."""

    def __post_init__(self) -> None:
        key = f"checks[{self.evaluator}/{self.cohort}]"
        for name in ("evaluator", "cohort"):
            _require(isinstance(getattr(self, name), str), f"{key}.{name}", "must be a string")
        _require(bool(self.evaluator) and bool(self.cohort), key, "evaluator and cohort are required")
        for name in ("margin", "relative_margin", "floor"):
            _require_number(getattr(self, name), f"{key}.{name}", optional=True)
        _require(self.max_flips is None or _is_int(self.max_flips), f"{key}.max_flips", "must be an integer")
        _require(
            self.margin is None or self.relative_margin is None,
            key,
            "give margin or relative_margin, not both",
        )
        for name in ("margin", "relative_margin"):
            value = getattr(self, name)
            _require(value is None or (math.isfinite(value) and value >= 0), f"{key}.{name}", "must be >= 0")
        _require(self.max_flips is None or self.max_flips >= 0, f"{key}.max_flips", "must be >= 0")

    @property
    def label(self) -> str:
        """``evaluator/cohort``."""
        return f"{self.evaluator}/{self.cohort}"

    def delta(self, baseline_mean: float) -> float:
        """The margin δ in score units for this baseline."""
        if self.relative_margin is not None:
            return self.relative_margin * abs(baseline_mean)
        return DEFAULT_MARGIN if self.margin is None else self.margin


@dataclass(frozen=True)
class GatePolicy:
    """A validated gate policy."""

    checks: tuple[Check, ...]
    version: int = 1
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    inconclusive: str = "block"
    name: str = "default"
    objective: str | None = None
    """``evaluator/cohort`` whose gain ranks passing candidates (default: the first target check)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept with the policy (owner, ticket, ...)."""

    def __post_init__(self) -> None:
        _require(len(self.checks) > 0, "checks", "give at least one check")
        _require_number(self.confidence, "confidence")
        for name in ("resamples", "seed", "version"):
            _require(_is_int(getattr(self, name)), name, "must be an integer")
        labels = [check.label for check in self.checks]
        _require(len(set(labels)) == len(labels), "checks", "an evaluator/cohort pair is listed twice")
        _require(0.5 < self.confidence < 1, "confidence", "must be in (0.5, 1)")
        _require(self.resamples >= 100, "resamples", "must be >= 100")
        _require(
            self.inconclusive in INCONCLUSIVE_CHOICES,
            "inconclusive",
            f"must be one of {INCONCLUSIVE_CHOICES}",
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GatePolicy:
        """Build from plain data, rejecting unknown keys."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        _require(not unknown, "policy", f"unknown key(s) {unknown}")
        raw_checks = data.get("checks") or []
        _require(isinstance(raw_checks, list), "checks", "must be a list")
        check_keys = {item.name for item in fields(Check)}
        checks = []
        for index, raw in enumerate(raw_checks):
            _require(isinstance(raw, dict), f"checks[{index}]", "must be a mapping")
            extra_keys = sorted(set(raw) - check_keys)
            _require(not extra_keys, f"checks[{index}]", f"unknown key(s) {extra_keys}")
            checks.append(Check(**raw))
        return cls(**{**data, "checks": tuple(checks)})

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
