"""A gated sweep's results files: results.csv with the gate's columns, best.yaml = the recommended trial.

    files = write_gated_analysis(sessions, sweep_id, sweep_root(settings, sweep_id))

Training writes ``results.csv``, ``best.yaml`` and ``hyperparameters.png`` as soon as the sweep ends
(``evalgate.sweep.analysis``); this rewrites them once its candidates are decided, from what the sweep
report shows (``evalgate.report.sweep.build_sweep_view``): each candidate's verdict, its target gain (the
policy's objective check) and its out-of-domain delta (the policy's first ood check), both oriented
(``+`` is better), and the recommended candidate as the best trial. Called by the CI job (``evalgate
ci``, ``evalgate demo``) and by ``evalgate gate --sweep``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.models import Sweep
from evalgate.db.session import session_scope
from evalgate.report.model import SweepView
from evalgate.report.sweep import build_sweep_view
from evalgate.sweep.analysis import AnalysisFiles, Gated, GateOutcome, write_analysis
from evalgate.sweep.records import candidate_rows


def write_gated_analysis(sessions: sessionmaker[Session], sweep_id: int, folder: Path) -> AnalysisFiles:
    """Rewrite the sweep's results files in ``folder`` with the gate's columns and recommendation;
    ``LookupError`` when there is no such sweep."""
    view = build_sweep_view(sessions, sweep_id, worst=0)
    with session_scope(sessions) as session:
        config = dict(session.get_one(Sweep, sweep_id).config)
    rows = candidate_rows(sessions, sweep_id)
    return write_analysis(rows, folder, config=config, gated=gated(view))


def gated(view: SweepView) -> Gated:
    """The gate's results as the sweep report shows them."""
    outcomes = {
        c.label: GateOutcome(
            c.verdict,
            c.objective.mean if c.objective else None,
            c.ood.mean if c.ood else None,
        )
        for c in view.candidates
    }
    why = ""
    if view.recommended is not None:
        why = (
            f"it passes every check of policy {view.policy_name or view.policy_hash or ''} and has the "
            f"largest {view.objective_check} gain of the candidates that pass"
        )
    return Gated(outcomes, view.recommended, view.objective_check, why)
