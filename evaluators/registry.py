"""The evaluator registry: one line per evaluator, ``@register`` on its class.

from evaluators import registry
evaluator = registry.create("json_validation")
"""

from __future__ import annotations

from typing import Any

from evaluators.base import Evaluator

_REGISTRY: dict[str, type[Evaluator]] = {}


class UnknownEvaluatorError(KeyError):
    """No evaluator registered under that name."""


def register(cls: type[Evaluator]) -> type[Evaluator]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    for attribute in ("name", "version", "higher_is_better", "threshold"):
        if not hasattr(cls, attribute):
            raise TypeError(f"evaluator {cls.__name__} must set {attribute}")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"evaluator name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Registered evaluator names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> type[Evaluator]:
    """The evaluator class registered as ``name``."""
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownEvaluatorError(f"unknown evaluator {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(name: str, **dependencies: Any) -> Evaluator:
    """An instance of ``name``, its models injected as keyword arguments."""
    return get(name)(**dependencies)


def _load_builtins() -> None:
    import evaluators.builtins  # noqa: F401  (each module registers itself on import)
