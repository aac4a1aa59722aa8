"""HTML pages of the dashboard: sweep list, sweep view, worst-rows drill-down, dataset history, login.

Each page is a template under ``templates/`` extending ``dashboard.html.j2`` (the report's inline
stylesheet and a top bar; no script, no external URL). The sweep page shows the report's sections with
links. The templates are autoescaped: all user text is HTML-escaped.
"""

from __future__ import annotations

from evalgate.report.model import CandidateRows, DatasetHistory, DatasetRow, SweepRow, SweepView
from evalgate.report.templating import render


def index_page(sweeps: list[SweepRow], datasets: list[DatasetRow], user: str | None) -> str:
    """Sweeps (status, base model, dataset, candidates, recommended rate) and datasets with decisions."""
    return render("index.html.j2", title="evalgate dashboard", user=user, sweeps=sweeps, datasets=datasets)


def sweep_page(view: SweepView, user: str | None) -> str:
    """The sweep report with links to the drill-down and history pages."""
    return render("sweep_page.html.j2", title=f"Sweep {view.id}: {view.name}", user=user, view=view)


def rows_page(data: CandidateRows, user: str | None) -> str:
    """The worst rows of one candidate on one evaluator x cohort, with links to its other pairs."""
    title = f"{data.label}: worst rows on {data.evaluator}/{data.cohort}"
    return render("rows.html.j2", title=title, user=user, data=data)


def history_page(history: DatasetHistory, user: str | None) -> str:
    """One table per candidate series: each decision with its verdict per check; new regressions
    outlined."""
    return render("history.html.j2", title=f"Decision history: {history.name}", user=user, history=history)


def login_page(next_path: str, error: str | None = None) -> str:
    """The token form; posts to ``/login`` and returns to ``next_path``."""
    return render("login.html.j2", title="evalgate: log in", user=None, next_path=next_path, error=error)


def message_page(title: str, message: str, user: str | None) -> str:
    """A plain page with one message (not found, bad request)."""
    return render("message.html.j2", title=title, user=user, message=message)
