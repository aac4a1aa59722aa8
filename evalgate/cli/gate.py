"""``evalgate gate``: decide every evaluated candidate of a sweep and recommend one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.cli.json_output import (
    GateCandidate,
    GateJson,
    GatePolicyJson,
    JsonOption,
    emit,
    gate_check,
    stdout_to_stderr,
)
from evalgate.gate.policy import GatePolicy

if TYPE_CHECKING:
    from evalgate.gate.records import SweepVerdicts
    from evalgate.sweep.analysis import AnalysisFiles

console = Console()
EXIT_ALL_BLOCKED = 1


def gate(
    sweep: Annotated[int, typer.Option(help="Sweep whose evaluated candidates are decided.")],
    policy: Annotated[Path, typer.Option(help="Gate policy YAML (see examples/policy.yaml).")],
    as_json: JsonOption = False,
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
    with stdout_to_stderr(as_json):
        verdicts = gate_sweep(sessions, sweep, rules)
        files = write_gated_analysis(sessions, sweep, sweep_root(settings, sweep))
    recommendation = verdicts.recommendation
    exit_code = EXIT_ALL_BLOCKED if recommendation.recommended is None else 0
    if as_json:
        emit(gate_json(sweep, rules, verdicts, files, exit_code))
        raise typer.Exit(exit_code)
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
    console.print(f"results: {files.results}", soft_wrap=True)
    if files.best is not None:
        console.print(f"best trial: {files.best}", soft_wrap=True)
    if recommendation.recommended is None:
        console.print("no candidate passed the gate")
        raise typer.Exit(EXIT_ALL_BLOCKED)
    console.print(f"recommended: [bold]{recommendation.recommended}[/]")


def gate_json(
    sweep: int, policy: GatePolicy, verdicts: SweepVerdicts, files: AnalysisFiles, exit_code: int
) -> GateJson:
    """The ``--json`` document of a gated sweep."""
    recommendation = verdicts.recommendation
    blocks = policy.inconclusive == "block"
    candidates = [
        GateCandidate(
            label=label,
            candidate_id=candidate_id,
            verdict=decision.verdict if decision else None,
            gain=recommendation.gains.get(label),
            why_not_recommended=recommendation.reasons.get(label),
            checks=[
                gate_check({**c.evidence, "check": c.check, "verdict": c.verdict, "reason": c.reason}, blocks)
                for c in (decision.checks if decision else [])
            ],
        )
        for label, (candidate_id, decision) in verdicts.decisions.items()
    ]
    chosen = next((c for c in candidates if c.label == recommendation.recommended), None)
    return GateJson(
        sweep_id=sweep,
        exit_code=exit_code,
        recommended=chosen.label if chosen else None,
        recommended_candidate_id=chosen.candidate_id if chosen else None,
        objective=recommendation.objective,
        policy=GatePolicyJson(name=policy.name, sha256=policy.sha256, inconclusive=policy.inconclusive),
        results=str(files.results),
        best=str(files.best) if files.best is not None else None,
        candidates=candidates,
    )
