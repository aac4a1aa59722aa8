"""HTML of a sweep report: one self-contained document (inline CSS and SVG, no script, no URL).

``sweep_document`` is the file ``evalgate ci`` writes; ``sweep_sections`` is the same view for the
dashboard, which passes ``links=True`` to add drill-down links to its own pages. Every user-supplied
text (names, prompts, answers, reasons) goes through ``html.escape``.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote, urlencode

from evalgate.report.model import CandidateView, FailRates, SweepView, WorstRow, verdict_tone
from evalgate.report.svg import loss_chart, trade_off_chart

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:#24292f;margin:0;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
header.top{background:#24292f;color:#fff;padding:10px 24px;display:flex;gap:18px;align-items:center}
header.top a{color:#fff;text-decoration:none}header.top form{margin-left:auto}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:14px 0}
h1{font-size:22px;margin:12px 0 4px}h2{font-size:17px;margin:4px 0 10px}h3{font-size:14px;margin:10px 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 7px;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.pass,span.pass{background:#dafbe1}td.regress,span.regress{background:#ffd8d3}
td.inconclusive,span.inconclusive{background:#fff1c2}td.neutral{background:#fff}
td.new-regression,span.outlined{outline:3px solid #cf222e;outline-offset:-3px;font-weight:600}
span.pass,span.regress,span.inconclusive,span.block,span.none{padding:1px 6px;border-radius:10px}
span.block{background:#ffd8d3}span.none{background:#eaeef2}
.muted{color:#57606a}.small{font-size:12px}.reco{font-size:16px}pre{white-space:pre-wrap;margin:0;
max-height:9em;overflow:auto;font:12px/1.35 ui-monospace,monospace}
.curves{display:flex;flex-wrap:wrap;gap:12px}
.curve{border:1px solid #d0d7de;border-radius:6px;padding:6px 8px}
svg text{fill:#24292f}svg.chart{max-width:100%;height:auto}
svg .grid{stroke:#eaeef2}svg .zero{stroke:#8c959f}svg .point text{fill:#24292f;font-weight:600}
label{display:block;margin:8px 0 4px}input[type=password]{width:100%;max-width:420px;padding:6px}
button{padding:5px 12px}
"""
PASS_TONES = {"pass": "pass", "block": "block"}
WORSE_BY = 5.0
"""Percentage points of eval-fail rate above (below) the baseline that colour a cell red (green)."""


def page(title: str, body: str, *, nav: str = "") -> str:
    """A complete HTML document: ``title`` (escaped), the inline stylesheet, ``nav`` and ``body``
    (both already HTML)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"{nav}<main>{body}</main></body></html>"
    )


def sweep_document(view: SweepView, *, title: str | None = None) -> str:
    """The stand-alone report of one sweep (no links outside the document)."""
    title = title or f"evalgate sweep {view.id}: {view.name}"
    return page(title, f"<h1>{escape(title)}</h1>" + sweep_sections(view, links=False))


def sweep_sections(view: SweepView, *, links: bool) -> str:
    """The sweep view's sections; with ``links``, names link to the dashboard's drill-down pages."""
    return "".join(
        [
            _overview(view, links),
            _recommendation(view),
            f'<section id="trade-off"><h2>Trade-off per learning rate</h2>{trade_off_chart(view)}'
            f"{_chart_note(view)}</section>",
            _delta_table(view, links),
            fail_rate_table(view.fail_rates),
            _curves(view),
            _worst(view, links),
        ]
    )


def verdict_badge(verdict: str | None) -> str:
    """A coloured badge for a decision verdict (pass, block) or a check verdict."""
    if verdict is None:
        return '<span class="none">no decision</span>'
    tone = PASS_TONES.get(verdict) or verdict_tone(verdict)
    return f'<span class="{tone}">{escape(verdict)}</span>'


def rows_url(candidate_id: int, evaluator: str, cohort: str) -> str:
    """The dashboard's worst-rows page of one candidate and check."""
    return f"/candidates/{candidate_id}/rows?" + urlencode({"evaluator": evaluator, "cohort": cohort})


def history_url(dataset: str) -> str:
    """The dashboard's decision history of one dataset."""
    return f"/datasets/{quote(dataset, safe='')}/history"


def worst_rows_table(rows: list[WorstRow] | tuple[WorstRow, ...], *, clip: int | None = None) -> str:
    """Prompt, both answers, both scores and the oriented delta of each row; texts clipped to ``clip``."""
    if not rows:
        return '<p class="muted">No row got worse.</p>'
    head = (
        "<tr><th>row</th><th>check</th><th>prompt</th><th>baseline answer</th><th>candidate answer</th>"
        "<th>baseline score</th><th>candidate score</th><th>Δ (oriented)</th></tr>"
    )
    body = "".join(
        f"<tr><td>{escape(r.row_id)}</td><td>{escape(r.evaluator)}/{escape(r.cohort)}</td>"
        f"<td><pre>{_clip(r.prompt, clip)}</pre></td><td><pre>{_clip(r.base_answer, clip)}</pre></td>"
        f"<td><pre>{_clip(r.candidate_answer, clip)}</pre></td><td class=num>{_num(r.base_score)}</td>"
        f"<td class=num>{_num(r.candidate_score)}</td><td class=num>{r.delta:+.4f}</td></tr>"
        for r in rows
    )
    return f'<table class="worst">{head}{body}</table>'


def _overview(view: SweepView, links: bool) -> str:
    dataset = escape(view.dataset)
    if links:
        dataset = f'<a href="{history_url(view.dataset_name)}">{dataset}</a>'
    policy = (
        f"{escape(view.policy_name or '')} <span class=muted>({escape((view.policy_hash or '')[:12])})</span>"
        if view.decided
        else '<span class="muted">no gate decision yet</span>'
    )
    return (
        '<section id="overview"><table class="facts">'
        f"<tr><th>sweep</th><td>{view.id} · {escape(view.name)}</td><th>status</th>"
        f"<td>{escape(view.status)}</td></tr><tr><th>base model</th><td>{escape(view.base_model)}</td>"
        f"<th>dataset</th><td>{dataset}</td></tr><tr><th>policy</th><td>{policy}</td><th>candidates</th>"
        f"<td>{len(view.candidates)}</td></tr></table></section>"
    )


def _recommendation(view: SweepView) -> str:
    """The recommended rate and, per other candidate, why it lost."""
    if not view.decided:
        head = '<p class="reco">No recommendation: no candidate has a gate decision yet.</p>'
    elif view.recommended:
        head = f'<p class="reco">Recommended: <strong>{escape(view.recommended)}</strong></p>'
    else:
        head = '<p class="reco"><strong>No candidate passed the gate.</strong></p>'
    items = "".join(
        f"<li><strong>{escape(c.label)}</strong> {verdict_badge(c.verdict)}: {escape(c.reason)}</li>"
        for c in view.candidates
        if c.label != view.recommended
    )
    return f'<section id="recommendation"><h2>Recommendation</h2>{head}<ul>{items}</ul></section>'


def _chart_note(view: SweepView) -> str:
    """How to read the chart, and which candidates it cannot show."""
    missing = [c.label for c in view.candidates if c.objective is None or c.ood is None]
    note = (
        "Deltas are oriented (+ = better) candidate minus baseline means, in the evaluator's score units. "
        "Whiskers: 95% paired-bootstrap intervals (not Holm-corrected; the verdicts use the Holm-corrected "
        "intervals). "
    )
    if view.ood_margin is not None:
        note += (
            f"Dashed line: -δ of {view.ood_check}; the check regresses when its (Holm-corrected) interval "
            "lies entirely left of it and passes when it lies entirely right of it. "
        )
    if missing:
        note += f"Not shown (no deltas): {', '.join(missing)}."
    return f'<p class="muted small">{escape(note)}</p>'


def _delta_table(view: SweepView, links: bool) -> str:
    """Every evaluator x cohort delta per candidate, coloured by the check's verdict."""
    labels = view.labels
    if not labels:
        return '<section id="deltas"><h2>Deltas</h2><p class="muted">No evaluation deltas yet.</p></section>'
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = "".join(
        f"<tr><th>{escape(c.label)}</th><td>{verdict_badge(c.verdict)}</td>"
        + "".join(_delta_cell(c, label, links) for label in labels)
        + "</tr>"
        for c in view.candidates
    )
    legend = (
        '<p class="muted small">Oriented mean delta (+ = better) [95% interval]: policy checks against the '
        "decision's baseline run, other pairs against the base-model run of the evaluation summary. Colours: "
        '<span class="pass">pass</span> <span class="regress">regress, below floor, too many flips</span> '
        '<span class="inconclusive">inconclusive</span>; white: not a policy check.</p>'
    )
    return (
        '<section id="deltas"><h2>Deltas per evaluator &#215; cohort</h2>'
        f"<table><tr><th>candidate</th><th>verdict</th>{head}</tr>{rows}</table>{legend}</section>"
    )


def _delta_cell(candidate: CandidateView, label: str, links: bool) -> str:
    cell = candidate.cell(label)
    if cell is None:
        return '<td class="neutral muted">&#8211;</td>'
    e = cell.estimate
    text = f"{e.mean:+.3f}"
    if e.low is not None and e.high is not None:
        text += f' <span class="small muted">[{e.low:+.3f}, {e.high:+.3f}]</span>'
    if links:
        text = f'<a href="{escape(rows_url(candidate.id, cell.evaluator, cell.cohort))}">{text}</a>'
    tip = escape(f"{cell.verdict}: {cell.reason}" if cell.verdict else "not a policy check")
    return f'<td class="num {cell.tone}" title="{tip}">{text}</td>'


def fail_rate_table(rates: FailRates | None) -> str:
    """The per-cohort eval-fail rates: one line per evaluator x cohort, the baseline then each candidate,
    in percent; a candidate cell ``WORSE_BY`` or more points above the baseline is red, as much below it
    green, so a cohort that degrades more than the others stands out."""
    if rates is None or not rates.rows:
        return (
            '<section id="fail-rates"><h2>Eval-fail rate per cohort</h2>'
            '<p class="muted">No evaluated candidate yet.</p></section>'
        )
    head = "".join(f"<th>{escape(column)}</th>" for column in rates.columns)
    body = "".join(
        f"<tr><th>{escape(row.label)}</th><td class=num>{row.rows}</td>"
        + "".join(_fail_cell(row.rates[0], rate, index > 0) for index, rate in enumerate(row.rates))
        + "</tr>"
        for row in rates.rows
    )
    legend = (
        '<p class="muted small">Share of judged rows below each evaluator\'s threshold (rows it does not '
        f"apply to left out), in percent; lower is better. Points against the baseline in brackets; "
        f'<span class="regress">{WORSE_BY:g} or more points worse</span>, '
        f'<span class="pass">{WORSE_BY:g} or more points better</span>.</p>'
    )
    return (
        '<section id="fail-rates"><h2>Eval-fail rate per cohort</h2>'
        f"<table><tr><th>evaluator/cohort</th><th>rows</th>{head}</tr>{body}</table>{legend}</section>"
    )


def _fail_cell(baseline: float | None, rate: float | None, compare: bool) -> str:
    if rate is None:
        return '<td class="num neutral muted">&#8211;</td>'
    text = f"{100 * rate:.1f}%"
    if not compare or baseline is None:
        return f"<td class=num>{text}</td>"
    points = 100 * (rate - baseline)
    tone = "regress" if points >= WORSE_BY else "pass" if points <= -WORSE_BY else "neutral"
    return f'<td class="num {tone}">{text} <span class="small muted">({points:+.1f})</span></td>'


def _curves(view: SweepView) -> str:
    """Small multiples of the loss curves, each on its own scale, with the diagnosis."""
    boxes = "".join(
        f'<div class="curve"><strong>{escape(c.label)}</strong> · {escape(c.diagnosis or "no diagnosis")}'
        f"<br>{loss_chart(c)}<div class='small muted'>{escape(c.diagnosis_reason)}</div></div>"
        for c in view.candidates
    )
    return (
        '<section id="training"><h2>Training loss per rate</h2>'
        '<p class="muted small">Each curve on its own loss scale (min and max marked): thin and faint the '
        "per-step loss, bold the smoothed loss the diagnosis judges (bias-corrected exponential moving "
        "average).</p>"
        f'<div class="curves">{boxes}</div></section>'
    )


def _worst(view: SweepView, links: bool) -> str:
    """Per candidate, the rows that got most worse on the objective and ood checks."""
    parts = []
    for c in view.candidates:
        if c.run_id is None:
            continue
        more = ""
        if links:
            more = " ".join(
                f'<a href="{escape(rows_url(c.id, cell.evaluator, cell.cohort))}">'
                f"all {escape(cell.label)} rows</a>"
                for cell in c.cells
                if cell.label in (view.objective_check, view.ood_check)
            )
        parts.append(f"<h3>{escape(c.label)} {more}</h3>{worst_rows_table(c.worst_rows, clip=240)}")
    body = "".join(parts) or '<p class="muted">No evaluated candidate.</p>'
    return f'<section id="worst"><h2>Worst rows</h2>{body}</section>'


def _clip(text: str | None, limit: int | None) -> str:
    if text is None:
        return '<span class="muted">(not cached)</span>'
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return escape(text)


def _num(value: float | None) -> str:
    return "&#8211;" if value is None else f"{value:.4f}"
