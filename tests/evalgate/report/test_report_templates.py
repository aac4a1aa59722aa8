"""The report and dashboard templates on hand-made view data (no database): every user-controlled text
comes out HTML-escaped, the SVG charts included, and a template missing a value fails loudly."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from jinja2 import UndefinedError

from evalgate.report.html import sweep_document
from evalgate.report.model import (
    CandidateRows,
    CandidateView,
    CheckCell,
    DatasetHistory,
    DatasetRow,
    Estimate,
    FailRateRow,
    FailRates,
    HistoryCheck,
    HistoryEntry,
    SweepRow,
    SweepView,
    WorstRow,
)
from evalgate.report.pages import history_page, index_page, login_page, message_page, rows_page, sweep_page
from evalgate.report.search_svg import gain_heatmap, hyperparameter_scatter
from evalgate.report.svg import loss_chart, trade_off_chart
from evalgate.report.templating import render

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
WHEN = datetime(2025, 3, 4, 5, 6)


def _assert_escaped(html: str, at_least: int = 1) -> None:
    """No script element made it through, and the hostile text shows as text ``at_least`` times."""
    assert "<script" not in html
    assert html.count(ESCAPED) >= at_least, html.count(ESCAPED)


def _row() -> WorstRow:
    return WorstRow(XSS, XSS, XSS, XSS, XSS, XSS, 0.9, 0.1, -0.8)


def _cell(verdict: str | None) -> CheckCell:
    return CheckCell(XSS, XSS, Estimate(-0.1, -0.2, 0.0), verdict, reason=XSS)


def _candidate(candidate_id: int, label: str, verdict: str | None) -> CandidateView:
    """A candidate with hostile text everywhere the view model carries text."""
    return CandidateView(
        id=candidate_id, label=label, rate=1e-4, status=XSS, diagnosis=XSS, diagnosis_reason=XSS,
        losses=(2.0, 1.5, 1.2, 1.1), verdict=verdict, decision_id=1, run_id=1, baseline_run_id=2,
        cells=(_cell(verdict and "regress"),), objective=Estimate(0.3, 0.2, 0.4),
        ood=Estimate(-0.02, -0.05, 0.01), reason=XSS, worst_rows=(_row(),),
    )  # fmt: skip


def _view() -> SweepView:
    """A sweep whose name, dataset, policy, checks, candidate labels and rows are all hostile text; the
    second candidate has no ood delta (left off the chart, named under it)."""
    unplotted = replace(_candidate(2, XSS + "2", None), ood=None)
    candidates = (_candidate(1, XSS, "block"), unplotted)
    return SweepView(
        id=7, name=XSS, status=XSS, base_model=XSS, dataset=XSS, dataset_name=XSS, candidates=candidates,
        objective_check=f"{XSS}/{XSS}", ood_check=f"{XSS}/{XSS}", ood_margin=0.05, recommended=XSS,
        policy_name=XSS, policy_hash=XSS, decided=True,
        fail_rates=FailRates((XSS, XSS + "2"), (FailRateRow(XSS, XSS, (0.1, 0.3), (10, 10)),)),
    )  # fmt: skip


def test_the_svg_charts_escape_every_label_they_embed() -> None:
    view = _view()

    trade_off = trade_off_chart(view)
    loss = loss_chart(view.candidates[0])

    _assert_escaped(trade_off, at_least=4)  # point label, its tooltip, both axis labels, the title
    _assert_escaped(loss, at_least=2)  # aria-label and title


def test_the_search_charts_escape_hyperparameter_names_values_and_labels() -> None:
    first = replace(_candidate(1, XSS, "pass"), hyperparameters={XSS: XSS, "lora_r": 4})
    second = replace(_candidate(2, XSS + "2", "block"), hyperparameters={XSS: "cosine", "lora_r": 8})
    view = replace(_view(), candidates=(first, second))

    scatter, heatmap = hyperparameter_scatter(view), gain_heatmap(view)

    _assert_escaped(scatter, at_least=8)  # names, tick values, labels in tooltips, check names
    _assert_escaped(heatmap, at_least=4)
    assert '<section id="search">' in sweep_document(view) and "<script" not in sweep_document(view)


def test_the_report_escapes_every_user_text() -> None:
    html = sweep_document(_view(), title=XSS)

    _assert_escaped(html, at_least=20)
    assert f"<title>{ESCAPED}</title>" in html and f"<h1>{ESCAPED}</h1>" in html
    assert f"Not shown (no deltas): {ESCAPED}2." in html
    assert "<a " not in html  # the stand-alone report links nowhere


def test_the_sweep_page_escapes_every_user_text_in_text_and_links() -> None:
    html = sweep_page(_view(), XSS)

    _assert_escaped(html, at_least=20)
    assert 'href="/datasets/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/history"' in html
    assert "/candidates/1/rows?evaluator=%3Cscript%3E" in html
    assert f"<span>{ESCAPED}</span>" in html  # the logged-in token's name in the top bar


def test_the_sweep_page_shows_each_candidates_hyperparameters_and_why_one_stopped_early() -> None:
    hyperparameters = {"learning_rate": 0.001, "scheduler": "cosine", "lora_r": 8}
    trained = replace(
        _candidate(1, "lr=0.001 cosine r=8", "pass"), status="trained", hyperparameters=hyperparameters
    )
    stopped = replace(
        _candidate(2, "lr=0.0001 constant r=4", None), status="stopped", run_id=None, halted=f"rung 1: {XSS}",
        hyperparameters={"learning_rate": 1e-4, "scheduler": "constant", "lora_r": 4, XSS: XSS},
    )  # fmt: skip

    html = sweep_page(replace(_view(), candidates=(trained, stopped)), "user")
    section = html[html.index('<section id="candidates">') :].split("</section>")[0]
    rows = section.split("<tr>")[2:]

    assert (
        f"<th>learning_rate</th><th>scheduler</th><th>lora_r</th><th>{ESCAPED}</th><th>stopped because"
        in section
    )
    assert rows[0].startswith("<th>lr=0.001 cosine r=8</th><td>trained</td>")
    assert "<td>0.001</td><td>cosine</td><td>8</td><td>\N{EN DASH}</td>" in rows[0]  # no such key: a dash
    assert rows[1].startswith("<th>lr=0.0001 constant r=4</th><td>stopped early</td>")
    assert f"<td>0.0001</td><td>constant</td><td>4</td><td>{ESCAPED}</td>" in rows[1]
    assert f'<td class="small">rung 1: {ESCAPED}</td>' in rows[1] and "<script" not in html
    assert "<strong>lr=0.0001 constant r=4</strong> · " in html and " · stopped early<br>" in html  # curves


def test_a_sweep_without_stopped_candidates_has_no_stopped_column() -> None:
    trained = replace(_candidate(1, "lr=0.001", "pass"), hyperparameters={"learning_rate": 0.001})

    html = sweep_page(replace(_view(), candidates=(trained,)), "user")
    section = html[html.index('<section id="candidates">') :].split("</section>")[0]

    assert "<th>learning_rate</th></tr>" in section and "stopped" not in section


def test_the_index_page_escapes_sweep_names_datasets_and_the_user() -> None:
    sweep = SweepRow(3, XSS, XSS, XSS, XSS, XSS, 2, XSS, WHEN)
    dataset = DatasetRow(XSS, 1, 2, 1, WHEN)

    html = index_page([sweep], [dataset], XSS)

    _assert_escaped(html, at_least=6)
    assert f'<a href="/sweeps/3">3 · {ESCAPED}</a>' in html
    assert f"<strong>{ESCAPED}</strong>" in html and "2025-03-04 05:06" in html


def test_the_rows_page_escapes_the_candidate_label_checks_and_rows() -> None:
    data = CandidateRows(
        candidate_id=4, label=XSS, sweep_id=7, evaluator=XSS, cohort=XSS, run_id=1, baseline_run_id=2,
        paired=10, worse=3, rows=[_row()], available=[(XSS, XSS)],
    )  # fmt: skip

    html = rows_page(data, XSS)

    _assert_escaped(html, at_least=8)
    assert f"<h1>{ESCAPED}: worst rows on {ESCAPED}/{ESCAPED}</h1>" in html
    assert "3 of 10 paired rows got worse; the 1 worst are shown" in html


def test_the_history_page_escapes_dataset_series_sweep_and_check_names() -> None:
    label = f"{XSS}/{XSS}"
    entry = HistoryEntry(
        decision_id=1, created_at=WHEN, candidate_id=4, sweep_id=7, sweep_name=XSS, version=XSS,
        verdict="block", checks={label: HistoryCheck("regress", -0.1, "pass")},
    )  # fmt: skip
    history = DatasetHistory(XSS, [label], {XSS: [entry]})

    html = history_page(history, XSS)

    _assert_escaped(html, at_least=6)
    assert f"<h1>Decision history: {ESCAPED}</h1>" in html and f"<h2>{ESCAPED}</h2>" in html
    assert 'class="regress new-regression"' in html and "<strong>NEW</strong>" in html


def test_the_login_and_message_pages_escape_what_they_echo() -> None:
    login = login_page(f'/x"><{XSS}', XSS)
    message = message_page(XSS, XSS, None)

    _assert_escaped(login, at_least=2)
    assert 'value="/x&#34;&gt;&lt;' in login  # the hidden field's value cannot close its attribute
    _assert_escaped(message, at_least=3)
    assert "Log out" not in login and "Log out" not in message  # no user: no logout button


def test_a_template_missing_a_value_fails_instead_of_rendering_nothing() -> None:
    with pytest.raises(UndefinedError, match="message"):
        render("message.html.j2", title="Not found", user=None)
