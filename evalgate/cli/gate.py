"""``evalgate gate``: decide every evaluated candidate of a sweep and recommend one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.gate.policy import GatePolicy

console = Console()
EXIT_ALL_BLOCKED = 1


def gate(
    sweep: Annotated[int, typer.Option(help="Sweep whose evaluated candidates are decided.")],
    policy: Annotated[Path, typer.Option(help="Gate policy YAML (see examples/policy.yaml).")],
) -> None:
    """Decide each candidate against the base model, store the decisions, print the recommendation,
    and rewrite the sweep's results.csv and best.yaml with the gate's columns.

    Exits 0 when a candidate is recommended, 1 when every candidate is blocked.
    """
    from evalgate.db.session import session_factory
    from evalgate.gate.records import gate_sweep
    from evalgate.report.results import write_gated_analysis
    from evalgate.sweep.records import sweep_root

    rules = GatePolicy.from_yaml(policy)
    settings = ready_settings()
    sessions = session_factory(settings.resolved_database_url)
    verdicts = gate_sweep(sessions, sweep, rules)
    recommendation = verdicts.recommendation
    table = Table("candidate", "verdict", f"{recommendation.objective} gain", "why not recommended")
    for label, (_, decision) in verdicts.decisions.items():
        gain = recommendation.gains.get(label)
        table.add_row(
            label,
            decision.verdict if decision else "-",
            f"{gain:+.3f}" if gain is not None else "-",
            recommendation.reasons.get(label, "recommended"),
        )
    console.print(table)
    files = write_gated_analysis(sessions, sweep, sweep_root(settings, sweep))
    console.print(f"results: {files.results}", soft_wrap=True)
    if files.best is not None:
        console.print(f"best trial: {files.best}", soft_wrap=True)
    if recommendation.recommended is None:
        console.print("no candidate passed the gate")
        raise typer.Exit(EXIT_ALL_BLOCKED)
    console.print(f"recommended: [bold]{recommendation.recommended}[/]")
