"""The weekly CI job's configuration (``evalgate ci CONFIG.yaml``): YAML into a validated, frozen object.

    dataset: evalgate-suite@v1       # required and pinned: NAME@vN (NAME or NAME@latest is refused)
    sweep: sweep.yaml                # a sweep YAML (relative to this file's folder) or an inline mapping;
                                     # its dataset is replaced by the pinned one
    # candidates:                    # ... or adapters trained elsewhere, instead of a sweep
    #   - {name: run-42, adapter: /adapters/run-42, learning_rate: 3.0e-4}
    # base_model: smollm2-135m-instruct   # with candidates: the model they were trained on
    policy: policy.yaml              # a gate policy YAML (relative to this file's folder) or a mapping
    evaluation:                      # evalgate.evaluation.options.EvaluationOptions
      evaluators: [json_validation, answer_accuracy, content_safety]   # default: all, plus ood_kl
      max_new_tokens: 96
      batch_size: 8
      device: auto                   # auto, cpu, cuda, cuda:N or mps
      precision: auto                # auto, fp32, bf16 or fp16
      seed: 0                        # seed of the bootstrap intervals
    promote: false                   # true: the recommended candidate becomes the new baseline
    outputs: ci-report               # folder of junit.xml, summary.md, report.html, result.json
                                     # (relative to the working directory)

Unknown keys and bad values are ``CiConfigError`` naming the key and its place (``sweep.`` and
``policy.`` prefix the keys of inline configs; a config read from its own file is named by its path).
A relative adapter folder is taken relative to this file's folder.
"""

from __future__ import annotations

import re
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    Strict,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from evalgate.core.config_files import CONFIG_FILE, ConfigProblem, Name, Number, load_yaml, validated
from evalgate.evaluation.options import EvaluationOptions, KnownEvaluationOptions, known_evaluators
from evalgate.gate.policy import GatePolicy, PolicyError
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL
from evalgate.sweep.config import ConfigError, SweepConfig

PINNED = re.compile(r"^([^@\s]+)@v?([1-9][0-9]*)$")
"""``NAME@vN`` (or ``NAME@N``): group 1 the name, group 2 the version (plain groups, so the pattern is
also a valid JSON Schema pattern)."""
DEFAULT_OUTPUTS = Path("ci-report")
DEFAULT_JOB_TIMEOUT = 6 * 3600.0
"""Seconds ``evalgate ci --server`` waits for one job (a GitHub-hosted job stops after 6 h anyway)."""


class CiConfigError(ValueError):
    """A CI configuration value is missing, unknown or out of range; the message names the key."""


def pinned_dataset(text: str) -> str:
    """``NAME@vN`` (``NAME@N`` accepted) normalised to ``NAME@vN``; anything unpinned is refused."""
    match = PINNED.match(text)
    if match is None:
        unpinned = "@" not in text or text.endswith("@latest")
        reason = (
            "must be pinned to a version (NAME@vN): weekly runs must compare like with like, and "
            "NAME or NAME@latest would silently move to the newest version"
            if unpinned
            else "expected NAME@vN with N >= 1"
        )
        raise ValueError(f"{text!r} {reason}")
    return f"{match[1]}@v{match[2]}"


def _folder(value: Any) -> Any:
    """A folder path: a non-empty string (or a ``Path``)."""
    if isinstance(value, Path) or (isinstance(value, str) and value):
        return value
    raise ValueError("must be a folder path")


def _or_a_file(schema: dict[str, Any]) -> None:
    """JSON Schema of a nested config the file may also give as the path of a YAML file of its own."""
    options = schema.pop("anyOf", None) or [{"$ref": schema.pop("$ref")}]
    path = {"type": "string", "description": "a YAML file, relative to this file's folder"}
    schema["anyOf"] = [path, *options]


PinnedDataset = Annotated[
    str, Strict(), AfterValidator(pinned_dataset), Field(json_schema_extra={"pattern": PINNED.pattern})
]
"""``NAME@vN``."""
Folder = Annotated[Path, BeforeValidator(_folder)]


@dataclass(frozen=True, config=CONFIG_FILE)
class CandidateSpec:
    """An adapter trained outside evalgate, registered and evaluated by the job."""

    name: Name
    """Name the candidate is registered under."""
    adapter: Name
    """Absolute path of the PEFT adapter folder (a relative one is resolved against the config's folder)."""
    learning_rate: Annotated[Number, Field(gt=0)] | None = None
    """The rate it was trained with (shown in the report)."""


@dataclass(frozen=True, config=CONFIG_FILE)
class MlflowOptions:
    """Where the job mirrors its sweep, decisions and promotion (``evalgate.tracking``); over the
    ``EVALGATE_MLFLOW_*`` settings."""

    tracking_uri: Annotated[str, Strict(), Field(min_length=1)]
    """The MLflow server (``http://mlflow:5000``) or store URI."""
    experiment: Name = "evalgate"
    """The experiment the runs go to."""


@dataclass(frozen=True, config=CONFIG_FILE)
class CiConfig:
    """One CI job: a pinned dataset, a sweep or external candidates, a policy, and where to report."""

    dataset: PinnedDataset
    """``NAME@vN``: pinned, so weekly runs compare like with like."""
    policy: Annotated[GatePolicy, Field(json_schema_extra=_or_a_file)]
    """The gate policy: a policy YAML (relative to this file's folder) or a mapping."""
    sweep: Annotated[SweepConfig | None, Field(json_schema_extra=_or_a_file)] = None
    """A sweep YAML (relative to this file's folder) or a mapping; its dataset is replaced by the
    pinned one. Give a sweep or candidates, not both."""
    candidates: tuple[CandidateSpec, ...] = ()
    """Adapters trained elsewhere, instead of a sweep."""
    base_model: Name = EMBEDDED_DEFAULT_MODEL
    """The base model of the candidates (a sweep names its own)."""
    evaluation: KnownEvaluationOptions = field(default_factory=EvaluationOptions)
    """How candidates and the base model are evaluated."""
    promote: StrictBool = False
    """true: the recommended candidate becomes the baseline the next run is compared with."""
    outputs: Folder = DEFAULT_OUTPUTS
    """Folder of junit.xml, summary.md, report.html and result.json (relative to the working directory)."""
    mlflow: MlflowOptions | None = None
    """Mirror the job into MLflow (default: the ``EVALGATE_MLFLOW_*`` settings, off when unset)."""

    @field_validator("candidates")
    @classmethod
    def _distinct_names(cls, candidates: tuple[CandidateSpec, ...]) -> tuple[CandidateSpec, ...]:
        names = [spec.name for spec in candidates]
        if len(set(names)) != len(names):
            raise ValueError("two candidates share a name")
        return candidates

    @model_validator(mode="after")
    def _sweep_or_candidates(self) -> CiConfig:
        if (self.sweep is not None) == bool(self.candidates):
            raise ConfigProblem(
                "sweep",
                "give exactly one of sweep (a sweep YAML or mapping) and candidates (adapters trained "
                "elsewhere)",
            )
        return self

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
        config = validated(cls, _with_files_read(data, folder), CiConfigError)
        _check_policy_is_evaluated(config)
        return config

    @classmethod
    def from_yaml(cls, path: Path) -> CiConfig:
        """Read and validate a YAML file; errors start with the file's path."""
        return load_yaml(path, lambda data: cls.from_dict(data, path.parent), CiConfigError)


def _with_files_read(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with the sweep and policy files it names read and validated (an error names the file),
    the pinned dataset put into the sweep, and relative adapter folders resolved against ``folder``."""
    data = dict(data)
    dataset = _required(data, "dataset", "is required (NAME@vN)")
    if not isinstance(dataset, str):
        raise CiConfigError(f"dataset: must be a string NAME@vN, got {dataset!r}")
    try:
        dataset = pinned_dataset(dataset)
    except ValueError as error:
        raise CiConfigError(f"dataset: {error}") from None
    if data.get("sweep") is not None:
        if "base_model" in data:
            raise CiConfigError("base_model: set it in the sweep config")
        data["sweep"] = _sweep(data["sweep"], dataset, folder)
    policy = _required(data, "policy", "is required (a gate policy YAML or mapping)")
    data["policy"] = _policy(policy, folder)
    if isinstance(data.get("candidates"), list):
        data["candidates"] = [_resolved_adapter(raw, folder) for raw in data["candidates"]]
    return data


def _required(data: dict[str, Any], key: str, message: str) -> Any:
    if data.get(key) is None:
        raise CiConfigError(f"{key}: {message}")
    return data[key]


def _sweep(value: Any, dataset: str, folder: Path) -> SweepConfig | dict[str, Any]:
    """The sweep file named by ``value``, validated, or the inline mapping (validated with the rest)."""
    if isinstance(value, dict):
        return {**value, "dataset": dataset}
    if not isinstance(value, str):
        raise CiConfigError("sweep: must be a path to a sweep YAML or a mapping")
    try:
        return load_yaml(
            folder / value, lambda raw: SweepConfig.from_dict({**raw, "dataset": dataset}), ConfigError
        )
    except ConfigError as error:
        raise CiConfigError(f"sweep: {error}") from None


def _policy(value: Any, folder: Path) -> GatePolicy | dict[str, Any]:
    """The policy file named by ``value``, validated, or the inline mapping (validated with the rest)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise CiConfigError("policy: must be a path to a policy YAML or a mapping")
    try:
        return GatePolicy.from_yaml(folder / value)
    except PolicyError as error:
        raise CiConfigError(f"policy: {error}") from None


def _resolved_adapter(raw: Any, folder: Path) -> Any:
    """A candidate entry with a relative adapter folder made absolute against ``folder`` (URLs kept)."""
    if not isinstance(raw, dict):
        return raw
    adapter = raw.get("adapter")
    if isinstance(adapter, str) and adapter and "://" not in adapter:
        return {**raw, "adapter": str((folder / Path(adapter).expanduser()).resolve())}
    return raw


def _check_policy_is_evaluated(config: CiConfig) -> None:
    """Every evaluator the policy checks must be one the evaluation runs (found now, not after training)."""
    names = config.evaluation.evaluators
    running = names if names is not None else known_evaluators()
    for index, check in enumerate(config.policy.checks):
        if check.evaluator not in running:
            raise CiConfigError(
                f"policy.checks[{index}].evaluator: {check.evaluator!r} ({check.label}) is not run by the "
                f"evaluation (evaluation.evaluators: {sorted(running)})"
            )
