"""HTML pages of the dashboard: sweep list, sweep view, worst-rows drill-down, dataset history, login.

The sweep page is ``report_html.sweep_sections`` with links; every page uses ``report_html.page`` (the
same inline stylesheet, no script, no external URL). All user text is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from evalgate.report.html import history_url, page, rows_url, sweep_sections, verdict_badge, worst_rows_table
from evalgate.report.model import (
    CandidateRows,
    DatasetHistory,
    DatasetRow,
    HistoryCheck,
    HistoryEntry,
    SweepRow,
    SweepView,
    verdict_tone,
)


def nav(user: str | None) -> str:
    """The top bar: home link and, when logged in, the token's name and a logout button."""
    who = ""
    if user is not None:
        who = (
            f'<form method="post" action="/logout"><span>{escape(user)}</span> '
            '<button type="submit">Log out</button></form>'
        )
    return (
        f'<header class="top"><a href="/"><strong>evalgate</strong></a><a href="/">sweeps</a>{who}</header>'
    )


def index_page(sweeps: list[SweepRow], datasets: list[DatasetRow], user: str | None) -> str:
    """Sweeps (status, base model, dataset, candidates, recommended rate) and datasets with decisions."""
    sweep_rows = "".join(
        f'<tr><td><a href="/sweeps/{s.id}">{s.id} · {escape(s.name)}</a></td><td>{escape(s.status)}</td>'
        f"<td>{escape(s.base_model)}</td><td>{escape(s.dataset)}</td><td class=num>{s.candidates}</td>"
        f"<td>{_recommended(s.recommended)}</td><td>{_date(s.created_at)}</td></tr>"
        for s in sweeps
    )
    dataset_rows = "".join(
        f'<tr><td><a href="{history_url(d.name)}">{escape(d.name)}</a></td><td class=num>{d.versions}</td>'
        f"<td class=num>{d.decisions}</td><td class=num>{d.passes}</td><td>{_date(d.latest)}</td></tr>"
        for d in datasets
    )
    body = (
        "<h1>Sweeps</h1><section><table><tr><th>sweep</th><th>status</th><th>base model</th><th>dataset</th>"
        "<th>candidates</th><th>recommended</th><th>created</th></tr>"
        f"{sweep_rows or _none(7)}</table></section>"
        "<h1>Datasets</h1><section><table><tr><th>dataset</th><th>versions</th><th>decisions</th><th>passed</th>"
        f"<th>latest decision</th></tr>{dataset_rows or _none(5)}</table></section>"
    )
    return page("evalgate dashboard", body, nav=nav(user))


def sweep_page(view: SweepView, user: str | None) -> str:
    """The sweep report with links to the drill-down and history pages."""
    title = f"Sweep {view.id}: {view.name}"
    return page(title, f"<h1>{escape(title)}</h1>" + sweep_sections(view, links=True), nav=nav(user))


def rows_page(data: CandidateRows, user: str | None) -> str:
    """The worst rows of one candidate on one evaluator x cohort, with links to its other pairs."""
    title = f"{data.label}: worst rows on {data.evaluator}/{data.cohort}"
    back = f'<a href="/sweeps/{data.sweep_id}">back to sweep {data.sweep_id}</a>' if data.sweep_id else ""
    others = " · ".join(
        f'<a href="{escape(rows_url(data.candidate_id, e, c))}">{escape(e)}/{escape(c)}</a>'
        for e, c in data.available
    )
    if data.run_id is None:
        summary = "This candidate has no finished evaluation run."
    else:
        summary = (
            f"Run {data.run_id} against baseline run {data.baseline_run_id}: {data.worse} of {data.paired} "
            f"paired rows got worse; the {len(data.rows)} worst are shown (oriented Δ, + = better)."
        )
    body = (
        f"<h1>{escape(title)}</h1><p>{back}</p><p class=muted>{escape(summary)}</p>"
        f"<p class=small>Other checks: {others or '-'}</p><section>{worst_rows_table(data.rows)}</section>"
    )
    return page(title, body, nav=nav(user))


def history_page(history: DatasetHistory, user: str | None) -> str:
    """One table per candidate series: each decision with its verdict per check; new regressions
    outlined."""
    legend = (
        '<p class="muted small">One table per candidate (same base model and name across weekly sweeps), '
        'oldest first. <span class="regress outlined">Outlined</span> cells passed in the previous decision '
        "and block now (a new regression); other changes say what the check was before.</p>"
    )
    tables = "".join(_series(name, entries, history.labels) for name, entries in history.series.items())
    title = f"Decision history: {history.name}"
    body = (
        f"<h1>{escape(title)}</h1>{legend}{tables or '<p class=muted>No decision on this dataset yet.</p>'}"
    )
    return page(title, body, nav=nav(user))


def login_page(next_path: str, error: str | None = None) -> str:
    """The token form; posts to ``/login`` and returns to ``next_path``."""
    message = f'<p class="regress" role="alert">{escape(error)}</p>' if error else ""
    body = (
        f'<h1>Log in</h1><section>{message}<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label for="token">API token (<code>evalgate tokens create NAME --scope read</code>)</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required> '
        '<button type="submit">Log in</button></form></section>'
    )
    return page("evalgate: log in", body, nav=nav(None))


def message_page(title: str, message: str, user: str | None) -> str:
    """A plain page with one message (not found, bad request)."""
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>", nav=nav(user))


def _series(name: str, entries: list[HistoryEntry], labels: list[str]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = "".join(
        f"<tr><td>{_date(e.created_at)}</td><td>{_sweep_link(e)}</td><td>{escape(e.version)}</td>"
        f"<td>{verdict_badge(e.verdict)}</td>"
        + "".join(_history_cell(e, label) for label in labels)
        + "</tr>"
        for e in entries
    )
    return (
        f"<section><h2>{escape(name)}</h2><table><tr><th>decided</th><th>sweep</th><th>dataset</th>"
        f"<th>verdict</th>{head}</tr>{rows}</table></section>"
    )


def _history_cell(entry: HistoryEntry, label: str) -> str:
    check: HistoryCheck | None = entry.checks.get(label)
    if check is None:
        return "<td class=muted>-</td>"
    delta = f" {check.delta:+.3f}" if check.delta is not None else ""
    text = f"{escape(check.verdict)}<span class='small muted'>{delta}</span>"
    classes = verdict_tone(check.verdict)
    if check.new_regression:
        classes += " new-regression"
        text += " <strong>NEW</strong>"
    elif check.changed:
        text += f" <span class='small'>(was {escape(check.previous or '')})</span>"
    link = rows_url(entry.candidate_id, *label.split("/", 1)) if "/" in label else None
    if link:
        text = f'<a href="{escape(link)}">{text}</a>'
    return f'<td class="{classes}">{text}</td>'


def _sweep_link(entry: HistoryEntry) -> str:
    if entry.sweep_id is None:
        return escape(entry.sweep_name)
    return f'<a href="/sweeps/{entry.sweep_id}">{entry.sweep_id} · {escape(entry.sweep_name)}</a>'


def _recommended(label: str | None) -> str:
    return f"<strong>{escape(label)}</strong>" if label else '<span class="muted">none</span>'


def _date(value: datetime | None) -> str:
    return escape(value.strftime("%Y-%m-%d %H:%M")) if value else "-"


def _none(columns: int) -> str:
    return f'<tr><td colspan="{columns}" class="muted">none yet</td></tr>'
