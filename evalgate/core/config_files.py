"""Reading YAML configuration files (sweep configs, gate policies) with errors that name the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def load_yaml(path: Path, build: Callable[[dict[str, Any]], T], error: type[ValueError]) -> T:
    """Parse ``path`` as a YAML mapping and ``build`` an object from it; errors are ``error(path: ...)``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as problem:
        raise error(f"{path}: cannot read YAML: {problem}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of settings at the top level")
    try:
        return build(data)
    except (error, TypeError) as problem:
        raise error(f"{path}: {problem}") from None
