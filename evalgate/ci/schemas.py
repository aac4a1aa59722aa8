"""JSON Schemas of the three config files, published in ``docs/schemas/`` so editors can check and
complete the YAML (``# yaml-language-server: $schema=...``) and other tools can validate it:

    python -m evalgate.ci.schemas docs/schemas     # sweep.schema.json, policy.schema.json, ci.schema.json

The schemas are generated from the config dataclasses themselves (``SweepConfig``, ``GatePolicy``,
``CiConfig``), field descriptions from their attribute docstrings; the output is byte-for-byte the same
on every run, and ``tests/evalgate/ci/test_schemas.py`` fails when the committed files are stale.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from evalgate.ci.config import CiConfig
from evalgate.gate.policy import GatePolicy
from evalgate.sweep.config import SweepConfig

DIALECT = "https://json-schema.org/draft/2020-12/schema"
CONFIG_FILES: dict[str, tuple[type, str]] = {
    "sweep": (SweepConfig, "evalgate sweep config (evalgate sweep CONFIG.yaml)"),
    "policy": (GatePolicy, "evalgate gate policy (evalgate gate --policy POLICY.yaml)"),
    "ci": (CiConfig, "evalgate CI job (evalgate ci CONFIG.yaml)"),
}
"""File stem -> (the config's dataclass, the schema's title)."""


def config_schemas() -> dict[str, dict[str, Any]]:
    """File stem -> JSON Schema of that config file."""
    schemas = {}
    for stem, (kind, title) in CONFIG_FILES.items():
        generated = TypeAdapter(kind).json_schema(mode="validation")
        schemas[stem] = {"$schema": DIALECT, **generated, "title": title}
    _inline_sweep_needs_no_dataset(schemas["ci"])
    return schemas


def _inline_sweep_needs_no_dataset(schema: dict[str, Any]) -> None:
    """In a CI job the sweep's dataset is replaced by the job's pinned one, so an inline sweep may leave
    it out."""
    sweep = schema["$defs"]["SweepConfig"]
    sweep["required"] = [key for key in sweep.get("required", []) if key != "dataset"]
    if not sweep["required"]:
        del sweep["required"]


def schema_text(schema: dict[str, Any]) -> str:
    """The file's text: indented JSON (keys in the order the fields are declared), newline-terminated."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write ``<stem>.schema.json`` of every config file into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, schema in config_schemas().items():
        path = folder / f"{stem}.schema.json"
        path.write_text(schema_text(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m evalgate.ci.schemas [FOLDER]`` (default ``docs/schemas``)."""
    parser = argparse.ArgumentParser(description="Write the JSON Schemas of the config files.")
    parser.add_argument("folder", type=Path, nargs="?", default=Path("docs/schemas"))
    for path in write_schemas(parser.parse_args(argv).folder):
        print(path)


if __name__ == "__main__":
    main()
