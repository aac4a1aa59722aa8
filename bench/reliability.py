"""The reliability figures: faults injected / survived, requests under load / lost, bad inputs / 5xx.

    python bench/reliability.py                      # run every reliability-marked test, then print
    python bench/reliability.py -- -k restart        # extra pytest arguments after ``--``
    python bench/reliability.py --figures out.jsonl  # print the figures of an earlier run (no pytest)

Runs ``pytest -m reliability tests`` with ``EVALGATE_FIGURES_FILE`` pointing at a fresh file, so each
reliability test appends what it injected, sent or generated (``tests/reliability/figures.py``); then
prints those counts per test and in total, with the machine they were measured on. The figures come
from whichever tests recorded them: nothing here names a test.

Exit status: 0 only when pytest passed, something was recorded, no accepted request was lost, no
generated input got a 5xx and every injected fault was survived; otherwise 1 (or pytest's own
status, when pytest failed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.reliability.figures import FIGURES_ENV, KINDS  # noqa: E402  (needs the repository root)

TITLES = {"fault": ("Faults", "injected", "survived"), "load": ("Load", "requests", "lost"),
          "bad_input": ("Bad input", "generated", "5xx")}  # fmt: skip


def run_pytest(figures: Path, extra: list[str]) -> int:
    """``pytest -m reliability tests`` (plus ``extra``) recording into ``figures``; its exit status."""
    env = {**os.environ, FIGURES_ENV: str(figures)}
    command = [sys.executable, "-m", "pytest", "-m", "reliability", "tests", *extra]
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=REPO_ROOT, env=env).returncode


def load_figures(path: Path) -> dict[str, dict[str, dict[str, int]]]:
    """The figures file summed by kind and name: ``{kind: {name: {counter: n}}}``."""
    totals: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    if not path.exists():
        return {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        entry = json.loads(line)
        kind = entry.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{path}:{number}: unknown kind {kind!r} (expected one of {sorted(KINDS)})")
        for counter in KINDS[kind]:
            totals[kind][entry["name"]][counter] += int(entry[counter])
    return totals


def table(figures: dict[str, dict[str, dict[str, int]]]) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Printable lines per kind and name, and each kind's totals."""
    lines, totals = [], {}
    for kind, (first, second) in KINDS.items():
        title, first_label, second_label = TITLES[kind]
        rows = figures.get(kind, {})
        total = (sum(row[first] for row in rows.values()), sum(row[second] for row in rows.values()))
        totals[kind] = total
        lines.append(f"\n{title}: {first_label} / {second_label}")
        for name in sorted(rows):
            lines.append(f"  {rows[name][first]:>8} / {rows[name][second]:<8} {name}")
        lines.append(f"  {total[0]:>8} / {total[1]:<8} total" if rows else "  (none recorded)")
    return lines, totals


def problems(totals: dict[str, tuple[int, int]]) -> list[str]:
    """Why the figures fail the requirement (lost requests, 5xx, faults not survived, nothing at all)."""
    found = []
    if not any(first for first, _ in totals.values()):
        found.append("no figures were recorded")
    if totals["fault"][1] < totals["fault"][0]:
        found.append(f"{totals['fault'][0] - totals['fault'][1]} fault(s) not survived")
    if totals["load"][1] > 0:
        found.append(f"{totals['load'][1]} accepted request(s) lost")
    if totals["bad_input"][1] > 0:
        found.append(f"{totals['bad_input'][1]} generated input(s) answered 5xx")
    return found


def machine_line() -> str:
    """The machine, as the other benchmarks print it (imported late: it loads torch)."""
    from bench.common import machine

    return machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=Path, help="print this figures file instead of running pytest")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    status = 0
    with tempfile.TemporaryDirectory(prefix="evalgate-figures-") as folder:
        figures_file = args.figures or Path(folder) / "figures.jsonl"
        if args.figures is None:
            status = run_pytest(figures_file, args.pytest_args)
        figures = load_figures(figures_file)
    lines, totals = table(figures)
    print(f"\nReliability figures on {machine_line()}", *lines, sep="\n")
    failed = problems(totals) + ([f"pytest exited {status}"] if status else [])
    verdict = "FAILED: " + "; ".join(failed) if failed else "OK: nothing lost, no 5xx, every fault survived"
    print(f"\n{verdict}")
    return status or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
