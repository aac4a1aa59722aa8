"""What README.md and docs/*.md promise about commands, routes and paths holds in the repository.

Every figure in the docs is meant to sit next to the command that prints it. These checks keep the
named commands runnable as written, without running them (the benchmarks take minutes and some need
a GPU): every ``python bench/NAME.py`` or ``python -m bench.NAME`` in a code span of the docs, or in a
bench script's usage lines, names a script that exists and parses, and every ``--flag`` it passes
before a bare ``--`` is declared by that script's ``add_argument`` calls (so is every option written
alone in a later code span of the same paragraph). Every ``make TARGET`` is a Makefile target; every
``METHOD /path`` is an operation of the API's OpenAPI schema. Last, no file in the repository names
an absolute path of one machine (shared data is read relative to the repository root instead).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPOSITORY_ROOT / "README.md", *sorted((REPOSITORY_ROOT / "docs").glob("*.md"))]
BENCH_DIR = REPOSITORY_ROOT / "bench"

FENCED_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
MULTI_BACKTICK_SPAN = re.compile(r"(`{2,})(.+?)\1", re.DOTALL)
"""A span fenced by two or more backticks (it may hold single ones); dropped before pairing the rest."""
INLINE_SPAN = re.compile(r"`([^`]+)`")
BENCH_COMMAND = re.compile(r"python3? (?:-m bench\.(?P<module>\w+)|bench/(?P<file>\w+)\.py)(?P<args>[^#]*)")
BENCH_PATH = re.compile(r"\bbench/(\w+)\.py\b")
FLAG = re.compile(r"--[a-z][\w-]*")
MAKE_TARGET = re.compile(r"\bmake ([a-z][\w-]*)")
ROUTE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$")
MACHINE_PATH = re.compile(r"(?<![\w.~$}/-])/(?:work|home|root|Users)/")
"""A home or work folder of one machine; a URL's path (``example.com/home/``) does not match."""


@dataclass(frozen=True)
class BenchCommand:
    """One bench invocation written in a document: where, which script, which flags."""

    source: str
    script: str
    flags: tuple[str, ...]
    text: str


def code_snippets(markdown: str) -> Iterator[str]:
    """Each line of the fenced code blocks, then each inline code span (whitespace collapsed)."""
    for block in FENCED_BLOCK.findall(markdown):
        yield from block.splitlines()
    prose = MULTI_BACKTICK_SPAN.sub("", FENCED_BLOCK.sub("", markdown))
    for span in INLINE_SPAN.findall(prose):
        yield " ".join(span.split())


def flags_before_separator(args: str) -> tuple[str, ...]:
    """The ``--flags`` in ``args`` up to a bare ``--`` (what follows goes to another program)."""
    flags: list[str] = []
    for token in args.split():
        if token == "--":
            break
        flags += FLAG.findall(token)
    return tuple(flags)


def commands_in(source: str, snippets: Iterator[str]) -> Iterator[BenchCommand]:
    """The bench commands in ``snippets``, attributed to ``source``."""
    for snippet in snippets:
        for match in BENCH_COMMAND.finditer(snippet):
            script = match["module"] or match["file"]
            flags = flags_before_separator(match["args"])
            yield BenchCommand(source, script, flags, match[0].strip())


def bench_docstring_lines(script: Path) -> Iterator[str]:
    """The lines of a bench script's module docstring (its usage examples)."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    yield from docstring.splitlines()


def all_bench_commands() -> list[BenchCommand]:
    """Every bench command in README.md, docs/*.md and the bench scripts' docstrings."""
    commands: list[BenchCommand] = []
    for document in DOCUMENTS:
        name = str(document.relative_to(REPOSITORY_ROOT))
        commands += commands_in(name, code_snippets(document.read_text(encoding="utf-8")))
    for script in sorted(BENCH_DIR.glob("*.py")):
        name = str(script.relative_to(REPOSITORY_ROOT))
        commands += commands_in(name, bench_docstring_lines(script))
    return commands


def declared_flags(script: Path) -> set[str]:
    """The option strings of every ``add_argument`` call in ``script`` (parsed, not imported)."""
    declared: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"), filename=str(script))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            declared |= {
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-")
            }
    return declared


BENCH_COMMANDS = all_bench_commands()


def test_the_docs_name_the_benchmarks_their_figures_come_from() -> None:
    named = {command.script for command in BENCH_COMMANDS if not command.source.startswith("bench/")}

    expected = {
        "api_speed",
        "answer_relevancy_pairs",
        "evaluator_throughput",
        "faithfulness_halueval",
        "fused_training_speed",
        "gate_calibration",
        "multi_adapter_generation",
        "reliability",
        "sweep_and_evaluate",
    }
    assert expected <= named, f"no command in README.md or docs/ names bench/{sorted(expected - named)}"


@pytest.mark.parametrize("command", BENCH_COMMANDS, ids=lambda c: f"{c.source}: {c.text}")
def test_a_named_bench_command_runs_as_written(command: BenchCommand) -> None:
    script = BENCH_DIR / f"{command.script}.py"
    assert script.is_file(), f"{command.source}: `{command.text}` names {script}, which does not exist"

    unknown = sorted(set(command.flags) - declared_flags(script) - {"--help"})
    assert not unknown, (
        f"{command.source}: `{command.text}` passes {unknown}, which {script.name} does not declare"
    )


def flag_spans_after_bench_commands(markdown: str) -> Iterator[tuple[str, str]]:
    """(script, span) for each inline span that starts with ``--`` and follows a bench command in
    the same paragraph: such a span gives more options of that command (``... --part binary`` and
    ``--part continuous``)."""
    prose = MULTI_BACKTICK_SPAN.sub("", FENCED_BLOCK.sub("", markdown))
    for paragraph in re.split(r"\n\s*\n", prose):
        script = None
        for span in INLINE_SPAN.findall(paragraph):
            text = " ".join(span.split())
            if match := BENCH_COMMAND.search(text):
                script = match["module"] or match["file"]
            elif script and text.startswith("--"):
                yield script, text


def test_options_written_beside_a_bench_command_belong_to_it() -> None:
    found = [
        (document.name, script, span)
        for document in DOCUMENTS
        for script, span in flag_spans_after_bench_commands(document.read_text(encoding="utf-8"))
    ]
    unknown = [
        f"{name}: `{span}` after bench/{script}.py"
        for name, script, span in found
        if set(flags_before_separator(span)) - declared_flags(BENCH_DIR / f"{script}.py")
    ]

    assert found, "no option span found beside a bench command: the pattern no longer matches them"
    assert not unknown, unknown


def test_every_bench_script_the_docs_mention_exists() -> None:
    missing = [
        f"{document.name}: bench/{name}.py"
        for document in DOCUMENTS
        for name in BENCH_PATH.findall(document.read_text(encoding="utf-8"))
        if not (BENCH_DIR / f"{name}.py").is_file()
    ]
    assert not missing, missing


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (REPOSITORY_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    named = {
        (document.name, target)
        for document in DOCUMENTS
        for snippet in code_snippets(document.read_text(encoding="utf-8"))
        for target in MAKE_TARGET.findall(snippet)
    }

    assert named, "no `make TARGET` found in the docs: the pattern no longer matches them"
    assert not [f"{name}: make {target}" for name, target in sorted(named) if target not in targets]


def route_variants(written: str) -> set[str]:
    """``/a[/{id}]?q=1`` -> {``/a``, ``/a/{}``}: optional parts both ways, no query, parameters unnamed."""
    path = written.split("?", 1)[0]
    optional = re.search(r"\[([^\]]*)\]", path)
    if optional:
        without = path[: optional.start()] + path[optional.end() :]
        with_part = path[: optional.start()] + optional[1] + path[optional.end() :]
        return route_variants(without) | route_variants(with_part)
    return {re.sub(r"\{[^}]*\}", "{}", path)}


def test_every_route_the_docs_name_is_served(tmp_path: Path) -> None:
    from api.main import create_app
    from evalgate.core.settings import Settings

    schema = create_app(Settings(home=tmp_path)).openapi()
    served = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, operations in schema["paths"].items()
        for method in operations
    }
    named = {
        (document.name, match[1], variant)
        for document in DOCUMENTS
        for snippet in code_snippets(document.read_text(encoding="utf-8"))
        if (match := ROUTE.match(snippet))
        for variant in route_variants(match[2])
    }

    assert len(named) >= 10, "few `METHOD /path` spans found in the docs: the pattern no longer matches them"
    missing = sorted(
        f"{name}: {method} {path}" for name, method, path in named if (method, path) not in served
    )
    assert not missing, f"routes the docs name that the API does not serve: {missing}"


def repository_files() -> list[Path]:
    """Tracked files and untracked ones git does not ignore (what a commit of the tree would hold)."""
    if shutil.which("git") is None or not (REPOSITORY_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPOSITORY_ROOT / name for name in listing.split("\0") if name]


def test_no_file_names_an_absolute_path_of_one_machine() -> None:
    found = []
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the working tree
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(REPOSITORY_ROOT)}:{number}: {line.strip()}")

    assert not found, (
        "absolute machine paths (read shared data relative to the repository root):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("line", "matches"),
    [
        ("DEFAULT = Path('/" + "work/shared/data/x.jsonl')", True),
        ("see /" + "home/someone/file", True),
        ("cd /" + "root/.cache", True),
        ("https://example.com/home/page", False),
        ("../shared/data/halueval_qa_dev.jsonl", False),
        ("~/.evalgate/home/", False),
    ],
)
def test_the_machine_path_pattern(line: str, matches: bool) -> None:
    assert bool(MACHINE_PATH.search(line)) is matches
