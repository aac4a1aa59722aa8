"""How an evaluation runs: one options model for ``evalgate evaluate``, the CI job's ``evaluation:``
section and the REST body of ``POST /evaluations``, with its defaults written once here.

Light on purpose (no torch): the REST service and config validation import it.

    EvaluationOptions.from_dict({"evaluators": ["json_validation"], "batch_size": 16})

Evaluator names are checked against the registry where options come from a user
(``KnownEvaluationOptions``, ``from_dict``); options built in-process may name evaluators that an
injected factory builds (``evalgate.evaluation.run.EvaluationHooks``).
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated, Any

from pydantic import AfterValidator, Field, Strict, StrictBool, field_validator
from pydantic.dataclasses import dataclass

from evalgate.core.config_files import CONFIG_FILE, ConfigProblem, Integer, Name, Precision, validated
from evalgate.evaluation.pseudo_evaluators import PSEUDO_EVALUATORS
from evalgate.modeling.decoding import DEFAULT_BATCH_SIZE, DEFAULT_MAX_NEW_TOKENS

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")
MAX_TOKENS = 4096
"""Largest answer budget."""
MAX_BATCH_SIZE = 1024
MAX_SEED = 2**32 - 1


class OptionsError(ValueError):
    """An evaluation option is unknown or out of range; the message names it."""


def _device(text: str) -> str:
    if DEVICE.match(text) is None:
        raise ValueError(f"{text!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return text


Device = Annotated[
    str, Strict(), AfterValidator(_device), Field(json_schema_extra={"pattern": DEVICE.pattern})
]
"""auto, cpu, cuda, cuda:N or mps."""
Budget = Annotated[Integer, Field(ge=1, le=MAX_TOKENS)]
"""Most new tokens per answer."""


@dataclass(frozen=True, config=CONFIG_FILE)
class EvaluationOptions:
    """How to evaluate: which evaluators, decoding, precision, and the bootstrap's seed."""

    evaluators: tuple[Name, ...] | None = None
    """Evaluator names; None: every registered evaluator (plus ood_kl for candidates)."""
    max_new_tokens: Budget = DEFAULT_MAX_NEW_TOKENS
    """Answer budget in tokens of cohorts not named in ``cohort_max_new_tokens``."""
    cohort_max_new_tokens: dict[str, Budget] = field(default_factory=dict)
    """Answer budgets of named cohorts, e.g. ``{ood: 24}``; other cohorts get ``max_new_tokens``."""
    batch_size: Annotated[Integer, Field(ge=1, le=MAX_BATCH_SIZE)] = DEFAULT_BATCH_SIZE
    """Rows per generation batch."""
    device: Device = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    precision: Precision = "auto"
    """auto (bf16 on a GPU that has it, else fp32: on a CPU generation is no faster in bf16), fp32, bf16,
    fp16."""
    seed: Annotated[Integer, Field(ge=0, le=MAX_SEED)] = 0
    """Seed of the bootstrap intervals (stored in the summary)."""
    mixed_adapters: StrictBool = True
    """Answer with the base model and every candidate in one batched pass
    (``evalgate.modeling.stacked_generation``) rather than one pass per model."""

    @field_validator("evaluators")
    @classmethod
    def _some_evaluators(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is not None and not names:
            raise ValueError("name at least one evaluator (or leave the key out: all of them)")
        return names

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationOptions:
        """Options from plain data (a request, a job's payload), evaluator names checked."""
        options = validated(cls, data, OptionsError)
        try:
            return require_known_evaluators(options)
        except ConfigProblem as problem:
            raise OptionsError(str(problem)) from None

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON data (as the REST API and ``from_dict`` take them)."""
        return {
            "evaluators": list(self.evaluators) if self.evaluators is not None else None,
            "max_new_tokens": self.max_new_tokens,
            "cohort_max_new_tokens": dict(self.cohort_max_new_tokens),
            "batch_size": self.batch_size,
            "device": self.device,
            "precision": self.precision,
            "seed": self.seed,
            "mixed_adapters": self.mixed_adapters,
        }


def known_evaluators() -> list[str]:
    """Registered evaluator names and the pseudo-evaluators the evaluation adds."""
    from evaluators import registry

    return sorted([*registry.names(), *PSEUDO_EVALUATORS])


def require_known_evaluators(options: EvaluationOptions) -> EvaluationOptions:
    """``options`` when every evaluator it names is registered (or a pseudo-evaluator)."""
    if options.evaluators is not None:
        known = known_evaluators()
        unknown = [name for name in options.evaluators if name not in known]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            raise ConfigProblem("evaluators", f"unknown evaluator {names}; known: {', '.join(known)}")
    return options


KnownEvaluationOptions = Annotated[EvaluationOptions, AfterValidator(require_known_evaluators)]
"""Options from a user: their evaluator names must be registered ones."""
