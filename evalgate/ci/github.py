"""GitHub Actions glue of ``evalgate ci`` (the composite action ``action.yml`` at the repository root runs
it): publish a run's outputs to the workflow, and add the pinned datasets a standalone run needs.

    python -m evalgate.ci.github publish --config examples/ci.yaml --exit-code 1
    python -m evalgate.ci.github datasets "evalgate-suite datasets/suite/*.jsonl"

``publish`` reads ``result.json`` and ``summary.md`` from the run's outputs folder (``--outputs``, else
the config's ``outputs:``, else ``ci-report``), appends ``summary.md`` to the file named by
``$GITHUB_STEP_SUMMARY``, and appends to the file named by ``$GITHUB_OUTPUT``:

- ``verdict``: ``pass`` (a candidate is recommended, exit code 0), ``blocked`` (every candidate is
  blocked or none trained, exit code 1) or ``error`` (exit code 2, or no readable ``result.json``, or one
  whose ``exit_code`` differs from the run's: a stale file of an earlier run);
- ``recommended``: the recommended candidate's label (``lr=0.0003``), empty without one;
- ``exit-code``: the run's exit code (``--exit-code``; else the one in ``result.json``, else 2);
- ``outputs-folder``: the outputs folder.

It also prints one workflow annotation (``::notice`` on a pass, ``::error`` otherwise) and exits 0: the
action's last step exits with evalgate's own exit code. Without the environment variables (a run
outside GitHub Actions) the outputs are printed instead.

``datasets`` adds each line's files (``NAME FILE_OR_GLOB...``, globs expanded from the working
directory) as a version of dataset NAME in the configured store; identical content is the version
already stored, so a pinned ``NAME@vN`` is the same on every runner. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgate.ci.config import DEFAULT_OUTPUTS, CiConfig
from evalgate.ci.result import EXIT_ALL_BLOCKED, EXIT_ERROR, EXIT_RECOMMENDED

VERDICTS = {EXIT_RECOMMENDED: "pass", EXIT_ALL_BLOCKED: "blocked"}
"""Exit code -> verdict; every other exit code is ``error``."""


class DatasetSpecError(ValueError):
    """A ``datasets`` line names no file, or a pattern that matches none."""


@dataclass(frozen=True)
class Published:
    """What ``publish`` derived from a run's outputs."""

    verdict: str
    recommended: str
    exit_code: int
    folder: Path
    summary: str
    """The Markdown appended to the job summary."""
    message: str
    """The one-line annotation."""

    def outputs(self) -> dict[str, str]:
        """The step outputs, by name."""
        return {
            "verdict": self.verdict,
            "recommended": self.recommended,
            "exit-code": str(self.exit_code),
            "outputs-folder": str(self.folder),
        }


def outputs_folder(config: Path | None, outputs: Path | None) -> Path:
    """Where ``evalgate ci`` wrote its outputs: ``outputs`` when given, else the config's, else the
    default (as ``evalgate ci`` decides it, an unreadable config included)."""
    if outputs is not None:
        return outputs
    if config is None:
        return DEFAULT_OUTPUTS
    try:
        return CiConfig.from_yaml(config).outputs
    except Exception:  # evalgate ci wrote its error outputs to the default folder then
        return DEFAULT_OUTPUTS


def read_result(folder: Path) -> dict[str, Any] | None:
    """``result.json`` of ``folder`` as a mapping with an integer ``exit_code``; None when it is missing
    or not such a document."""
    try:
        data = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or type(data.get("exit_code")) is not int:
        return None
    return data


def published(folder: Path, exit_code: int | None) -> Published:
    """The verdict, recommendation, summary and annotation of the run whose outputs are in ``folder``
    and whose process exited with ``exit_code`` (None: unknown, ``result.json`` is believed)."""
    result = read_result(folder)
    if result is None or (exit_code is not None and exit_code != result["exit_code"]):
        code = EXIT_ERROR if exit_code is None else exit_code
        found = "no readable result.json" if result is None else "a result.json of another run"
        message = f"evalgate ci exited with code {code}, leaving {found} in {folder}/: see the job log"
        return Published("error", "", code, folder, f"## evalgate ci\n\n**Error**: {message}\n", message)
    code = result["exit_code"]
    verdict = VERDICTS.get(code, "error")
    recommended = str(result.get("recommended") or "")
    summary_file = folder / "summary.md"
    summary = summary_file.read_text(encoding="utf-8") if summary_file.is_file() else ""
    summary = summary or f"## evalgate ci\n\nNo summary.md in {folder}/ (verdict: {verdict}).\n"
    return Published(verdict, recommended, code, folder, summary, _message(verdict, recommended, result))


def _message(verdict: str, recommended: str, result: Mapping[str, Any]) -> str:
    if verdict == "pass":
        return f"recommended {recommended}"
    if verdict == "blocked":
        return "every candidate is blocked (or none trained): no candidate is recommended"
    return f"evalgate ci failed: {result.get('error') or 'see the job log'}"


def append_outputs(path: Path, values: Mapping[str, str]) -> None:
    """Append ``values`` to a ``$GITHUB_OUTPUT`` file: ``name=value``, or a heredoc block with a fresh
    delimiter for a value holding a line break."""
    lines = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            delimiter = f"EVALGATE_{uuid.uuid4().hex}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}")
        else:
            lines.append(f"{name}={value}")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def append_summary(path: Path, markdown: str) -> None:
    """Append ``markdown`` to a ``$GITHUB_STEP_SUMMARY`` file, ending with a blank line."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip("\n") + "\n\n")


def annotation(verdict: str, message: str) -> str:
    """The workflow command that shows ``message`` as an annotation (``%``, CR and LF escaped)."""
    level = "notice" if verdict == "pass" else "error"
    text = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::{level} title=evalgate ci::{text}"


def publish(folder: Path, exit_code: int | None, environ: Mapping[str, str]) -> Published:
    """Write the run's summary and step outputs where ``environ`` names them (printed when it names
    none) and print its annotation."""
    found = published(folder, exit_code)
    summary_path, output_path = environ.get("GITHUB_STEP_SUMMARY"), environ.get("GITHUB_OUTPUT")
    if summary_path:
        append_summary(Path(summary_path), found.summary)
    if output_path:
        append_outputs(Path(output_path), found.outputs())
    else:
        print("\n".join(f"{name}={value}" for name, value in found.outputs().items()))
    print(annotation(found.verdict, found.message))
    return found


def dataset_files(line: str, cwd: Path) -> tuple[str, list[str]]:
    """``NAME FILE_OR_GLOB...`` -> (NAME, the files, each pattern expanded and sorted)."""
    name, *patterns = line.split()
    if not patterns:
        raise DatasetSpecError(f"{line!r}: expected NAME FILE_OR_GLOB...")
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, root_dir=cwd))
        if not matches:
            raise DatasetSpecError(f"{line!r}: {pattern} matches no file in {cwd}")
        files.extend(str(cwd / match) for match in matches)
    return name, files


def add_datasets(spec: str, cwd: Path) -> list[str]:
    """Add every line of ``spec`` (blank lines and ``#`` comments skipped) as a dataset version in the
    configured store; returns the versions' labels."""
    from evalgate.core.settings import get_settings
    from evalgate.data.store import DatasetStore
    from evalgate.db.migrate import ensure_schema

    lines = [line.strip() for line in spec.splitlines()]
    wanted = [dataset_files(line, cwd) for line in lines if line and not line.startswith("#")]
    if not wanted:
        return []
    settings = get_settings()
    ensure_schema(settings.resolved_database_url)
    store = DatasetStore.from_settings(settings)
    return [store.add(name, files).version.label for name, files in wanted]


def _path(text: str) -> Path | None:
    """A path argument; empty (an unset action input) is None."""
    return Path(text) if text else None


def _code(text: str) -> int | None:
    """An exit-code argument; empty is None."""
    return int(text) if text.strip() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evalgate.ci.github", description="GitHub Actions glue of evalgate ci."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    publish_command = commands.add_parser("publish", help="publish a run's outputs to the workflow")
    publish_command.add_argument("--config", type=_path, help="the CI job YAML the run read")
    publish_command.add_argument(
        "--outputs", type=_path, help="the outputs folder, when the run was given one (empty: none)"
    )
    publish_command.add_argument(
        "--exit-code", type=_code, help="the exit code of evalgate ci (empty: unknown)"
    )
    datasets_command = commands.add_parser("datasets", help="add the pinned datasets of a standalone run")
    datasets_command.add_argument("spec", help="lines of NAME FILE_OR_GLOB...")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "publish":
        publish(outputs_folder(args.config, args.outputs), args.exit_code, os.environ)
        return 0
    from evalgate.data.store_files import DatasetIntegrityError
    from evalgate.db.migrate import SchemaNotReadyError

    try:
        for label in add_datasets(args.spec, Path.cwd()):
            print(f"dataset {label}")
    except (ValueError, OSError, DatasetIntegrityError, SchemaNotReadyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
