"""Import rules: the processes that never run a model never load torch.

The REST service, the CLI's entry point, the report and the HTTP client serve requests or print tables;
torch, transformers and peft cost seconds and hundreds of MB to import. Each module is imported in a
fresh interpreter and the heavy packages must be absent from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft")
LIGHT_MODULES = [
    "api.main",
    "evalgate.cli.main",
    "evalgate.report.sweep",
    "evalgate.client",
    "evalgate.gate.service",
]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_module_does_not_load_torch(module: str) -> None:
    script = f"import json, sys, {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert json.loads(result.stdout.strip().splitlines()[-1]) == [], f"{module} imports {result.stdout}"


def _calls_below_cli(name: str) -> list[str]:
    """``file:line`` of every call of a function or class named ``name`` in evalgate/ outside cli/."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "evalgate"
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                called = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if called == name:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


@pytest.mark.parametrize("name", ["Console", "Exit"])
def test_only_the_command_line_builds_a_console_or_exits(name: str) -> None:
    assert _calls_below_cli(name) == []
