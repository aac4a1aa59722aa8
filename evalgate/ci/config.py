"""The weekly CI job's configuration (``evalgate ci CONFIG.yaml``): YAML into a validated, frozen object.

    dataset: evalgate-suite@v1       # required and pinned: NAME@vN (NAME or NAME@latest is refused)
    sweep: sweep.yaml                # a sweep YAML (relative to this file's folder) or an inline mapping;
                                     # its dataset is replaced by the pinned one
    # candidates:                    # ... or adapters trained elsewhere, instead of a sweep
    #   - {name: run-42, adapter: /adapters/run-42, learning_rate: 3.0e-4}
    # base_model: smollm2-135m-instruct   # with candidates: the model they were trained on
    policy: policy.yaml              # a gate policy YAML (relative to this file's folder) or a mapping
    evaluation:                      # evalgate.evaluation.run.EvaluationOptions
      evaluators: [json_validation, answer_accuracy, content_safety]   # default: all, plus ood_kl
      max_new_tokens: 96
      batch_size: 8
      device: auto                   # auto, cpu, cuda, cuda:N or mps
      precision: auto                # auto, fp32, bf16 or fp16
      seed: 0                        # seed of the bootstrap intervals
    promote: false                   # true: the recommended candidate becomes the new baseline
    outputs: ci-report               # folder of junit.xml, summary.md, report.html, result.json
                                     # (relative to the working directory)

Unknown keys and bad values are ``CiConfigError`` naming the key (``sweep.`` and ``policy.`` prefix
the keys of the nested configs). A relative adapter folder is taken relative to this file's folder.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from evalgate.core.config_files import load_yaml
from evalgate.evaluation.pseudo_evaluators import PSEUDO_EVALUATORS
from evalgate.gate.policy import GatePolicy, PolicyError
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL
from evalgate.sweep.config import PRECISIONS, ConfigError, SweepConfig

"""Signals computed by the evaluation itself, not the registry (``evalgate.evaluation.forgetting.OOD_KL``)."""
PINNED = re.compile(r"^(?P<name>[^@\s]+)@v?(?P<number>[1-9][0-9]*)$")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")
DEFAULT_OUTPUTS = Path("ci-report")
DEFAULT_JOB_TIMEOUT = 6 * 3600.0
"""Seconds ``evalgate ci --server`` waits for one job (a GitHub-hosted job stops after 6 h anyway)."""
NESTED_KEY = re.compile(r"^[A-Za-z_][\w.]*(\[[^\]]*\])?[\w.]*: ")


class CiConfigError(ValueError):
    """A CI configuration value is missing, unknown or out of range; the message names the key."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise CiConfigError(f"{key}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reject_unknown(data: dict[str, Any], kind: type, prefix: str) -> None:
    known = sorted(item.name for item in fields(kind))
    unknown = sorted(set(data) - set(known))
    _require(
        not unknown,
        prefix or "config",
        f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known: {known}",
    )


def pinned_dataset(text: Any) -> str:
    """``NAME@vN`` (``NAME@N`` accepted) normalised to ``NAME@vN``; anything unpinned is refused."""
    _require(isinstance(text, str) and bool(text), "dataset", "is required (NAME@vN)")
    match = PINNED.match(text)
    if match is None:
        unpinned = "@" not in text or text.endswith("@latest")
        reason = (
            "must be pinned to a version (NAME@vN): weekly runs must compare like with like, and "
            "NAME or NAME@latest would silently move to the newest version"
            if unpinned
            else "expected NAME@vN with N >= 1"
        )
        raise CiConfigError(f"dataset: {text!r} {reason}")
    return f"{match['name']}@v{match['number']}"


@dataclass(frozen=True)
class CandidateSpec:
    """An adapter trained outside evalgate, registered and evaluated by the job."""

    name: str
    adapter: str
    """Absolute path of the PEFT adapter folder (a relative one is resolved against the config's folder)."""
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        key, rate = f"candidates[{self.name}]", self.learning_rate
        _require(isinstance(self.name, str) and bool(self.name), "candidates", "every entry needs a name")
        _require(isinstance(self.adapter, str) and bool(self.adapter), f"{key}.adapter", "is required")
        positive = (
            isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate) and rate > 0
        )
        _require(
            rate is None or positive, f"{key}.learning_rate", f"must be a finite number > 0, got {rate!r}"
        )


@dataclass(frozen=True)
class EvaluationSettings:
    """How candidates and the base model are evaluated (the fields of ``EvaluationOptions``)."""

    evaluators: tuple[str, ...] | None = None
    """Evaluator names; None: every registered evaluator, plus ood_kl for candidates."""
    max_new_tokens: int = 96
    cohort_max_new_tokens: Mapping[str, int] = field(default_factory=dict)
    """Answer budgets of named cohorts, e.g. ``{ood: 24}``; other cohorts get ``max_new_tokens``."""
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    mixed_adapters: bool = True
    """Answer with the base model and every candidate in one batched pass (False: one per model)."""

    def __post_init__(self) -> None:
        _require(isinstance(self.mixed_adapters, bool), "evaluation.mixed_adapters", "must be true or false")
        for key, least in (("max_new_tokens", 1), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, key)
            _require(_is_int(value) and value >= least, f"evaluation.{key}", f"must be an integer >= {least}")
        _require(
            isinstance(self.cohort_max_new_tokens, Mapping),
            "evaluation.cohort_max_new_tokens",
            "must be a mapping of cohort name to token budget",
        )
        for cohort, budget in self.cohort_max_new_tokens.items():
            _require(
                _is_int(budget) and budget >= 1,
                f"evaluation.cohort_max_new_tokens.{cohort}",
                f"must be an integer >= 1, got {budget!r}",
            )
        device_ok = isinstance(self.device, str) and DEVICE.match(self.device) is not None
        _require(
            device_ok, "evaluation.device", f"{self.device!r} is not one of auto, cpu, cuda, cuda:N, mps"
        )
        _require(
            self.precision in PRECISIONS, "evaluation.precision", f"{self.precision!r} not in {PRECISIONS}"
        )
        if self.evaluators is not None:
            _require(len(self.evaluators) > 0, "evaluation.evaluators", "name at least one (or leave it out)")
            known = known_evaluators()
            for name in self.evaluators:
                _require(
                    name in known, "evaluation.evaluators", f"unknown evaluator {name!r}; known: {known}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The options as the REST API and ``EvaluationOptions`` take them."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["evaluators"] = list(self.evaluators) if self.evaluators is not None else None
        data["cohort_max_new_tokens"] = dict(self.cohort_max_new_tokens)
        return data


@dataclass(frozen=True)
class CiConfig:
    """One CI job: a pinned dataset, a sweep or external candidates, a policy, and where to report."""

    dataset: str
    policy: GatePolicy
    sweep: SweepConfig | None = None
    candidates: tuple[CandidateSpec, ...] = ()
    base_model: str = EMBEDDED_DEFAULT_MODEL
    """The base model of the candidates (a sweep names its own)."""
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    promote: bool = False
    outputs: Path = DEFAULT_OUTPUTS

    @property
    def model(self) -> str:
        """The base model every candidate is compared on."""
        return self.sweep.base_model if self.sweep is not None else self.base_model

    @property
    def title(self) -> str:
        """``<sweep name or "candidates"> on <dataset>``."""
        return f"{self.sweep.name if self.sweep else 'candidates'} on {self.dataset}"

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path = Path(".")) -> CiConfig:
        """Build from plain data (parsed YAML); ``folder`` anchors relative sweep, policy, adapter paths."""
        data = dict(data)
        _reject_unknown(data, cls, "")
        dataset = pinned_dataset(data.pop("dataset", None))
        has_sweep, has_candidates = data.get("sweep") is not None, bool(data.get("candidates"))
        _require(
            has_sweep != has_candidates,
            "sweep",
            "give exactly one of sweep (a sweep YAML or mapping) and candidates (adapters trained elsewhere)",
        )
        _require("policy" in data, "policy", "is required (a gate policy YAML or mapping)")
        if has_sweep:
            _require("base_model" not in data, "base_model", "set it in the sweep config")
            data["sweep"] = _sweep(data["sweep"], dataset, folder)
            data.pop("candidates", None)
        else:
            data["candidates"] = _candidates(data["candidates"], folder)
        policy = data["policy"] = _policy(data["policy"], folder)
        evaluation = data["evaluation"] = _evaluation(data.get("evaluation"))
        _require(isinstance(data.get("promote", False), bool), "promote", "must be true or false")
        _require(
            isinstance(data.get("base_model", "-"), str) and bool(data.get("base_model", "-")),
            "base_model",
            "must be a model name or folder",
        )
        outputs = data.get("outputs", str(DEFAULT_OUTPUTS))
        _require(isinstance(outputs, str) and bool(outputs), "outputs", "must be a folder path")
        data["outputs"] = Path(outputs)
        _check_policy_is_evaluated(policy, evaluation)
        return cls(dataset=dataset, **data)

    @classmethod
    def from_yaml(cls, path: Path) -> CiConfig:
        """Read and validate a YAML file; errors start with the file's path."""
        return load_yaml(path, lambda data: cls.from_dict(data, path.parent), CiConfigError)


def known_evaluators() -> list[str]:
    """Registered evaluator names and the pseudo-evaluators the evaluation adds."""
    from evaluators import registry

    return sorted([*registry.names(), *PSEUDO_EVALUATORS])


def _sweep(value: Any, dataset: str, folder: Path) -> SweepConfig:
    if isinstance(value, str):
        path = folder / value
        try:
            return load_yaml(
                path, lambda raw: SweepConfig.from_dict({**raw, "dataset": dataset}), ConfigError
            )
        except ConfigError as error:
            raise CiConfigError(f"sweep: {error}") from None
    _require(isinstance(value, dict), "sweep", "must be a path to a sweep YAML or a mapping")
    try:
        return SweepConfig.from_dict({**value, "dataset": dataset})
    except ConfigError as error:
        raise CiConfigError(_nested("sweep", str(error))) from None


def _policy(value: Any, folder: Path) -> GatePolicy:
    if isinstance(value, str):
        try:
            return GatePolicy.from_yaml(folder / value)
        except PolicyError as error:
            raise CiConfigError(f"policy: {error}") from None
    _require(isinstance(value, dict), "policy", "must be a path to a policy YAML or a mapping")
    try:
        return GatePolicy.from_dict(value)
    except (PolicyError, TypeError) as error:
        raise CiConfigError(_nested("policy", str(error))) from None


def _nested(prefix: str, message: str) -> str:
    """``prefix.key: ...`` when an inline config's message starts with its key, else ``prefix: ...``."""
    if message.startswith(f"{prefix}: "):
        return message
    return f"{prefix}.{message}" if NESTED_KEY.match(message) else f"{prefix}: {message}"


def _candidates(value: Any, folder: Path) -> tuple[CandidateSpec, ...]:
    _require(isinstance(value, list), "candidates", "must be a list of {name, adapter, learning_rate}")
    specs = []
    for index, raw in enumerate(value):
        _require(isinstance(raw, dict), f"candidates[{index}]", "must be a mapping")
        _reject_unknown(raw, CandidateSpec, f"candidates[{index}].")
        adapter = raw.get("adapter")
        if isinstance(adapter, str) and adapter and "://" not in adapter:
            adapter = str((folder / Path(adapter).expanduser()).resolve())
        try:
            specs.append(CandidateSpec(**{**raw, "adapter": adapter}))
        except TypeError as error:
            raise CiConfigError(f"candidates[{index}]: {error}") from None
    names = [spec.name for spec in specs]
    _require(len(set(names)) == len(names), "candidates", "two candidates share a name")
    return tuple(specs)


def _evaluation(value: Any) -> EvaluationSettings:
    if value is None:
        return EvaluationSettings()
    _require(isinstance(value, dict), "evaluation", "must be a mapping")
    _reject_unknown(value, EvaluationSettings, "evaluation.")
    raw = dict(value)
    if raw.get("evaluators") is not None:
        _require(isinstance(raw["evaluators"], list), "evaluation.evaluators", "must be a list of names")
        raw["evaluators"] = tuple(raw["evaluators"])
    return EvaluationSettings(**raw)


def _check_policy_is_evaluated(policy: GatePolicy, evaluation: EvaluationSettings) -> None:
    """Every evaluator the policy checks must be one the evaluation runs (found now, not after training)."""
    running = evaluation.evaluators if evaluation.evaluators is not None else known_evaluators()
    for check in policy.checks:
        _require(
            check.evaluator in running,
            f"policy.checks[{check.label}]",
            f"evaluator {check.evaluator!r} is not run by the evaluation (evaluation.evaluators: "
            f"{sorted(running)})",
        )
