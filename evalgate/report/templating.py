"""The Jinja2 environment of the sweep report and the dashboard pages (``evalgate/report/templates/``).

Autoescaping is on for every template: each ``{{ value }}`` is HTML-escaped unless it is ``Markup``.
The only ``Markup`` made here wraps the SVG charts of ``evalgate.report.svg`` and ``.search_svg``,
which escape every text they embed themselves. Undefined names raise (``StrictUndefined``) instead
of rendering as nothing.

    render("report.html.j2", title="...", view=view)   # a complete HTML document
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from evalgate.report.model import CandidateView, SweepView, verdict_tone
from evalgate.report.search_svg import evaluated, gain_heatmap, hyperparameter_scatter, varied_hyperparameters
from evalgate.report.svg import loss_chart, trade_off_chart

DECISION_TONES = {"pass": "pass", "block": "block"}
"""CSS class of a gate decision's verdict (check verdicts go through ``verdict_tone``)."""
WORSE_BY = 5.0
"""Percentage points of eval-fail rate above (below) the baseline that colour a cell red (green)."""


def badge_tone(verdict: str) -> str:
    """CSS class of a verdict badge: pass or block for a decision, else the check verdict's tone."""
    return DECISION_TONES.get(verdict) or verdict_tone(verdict)


def fail_tone(points: float) -> str:
    """CSS class of a candidate's eval-fail rate ``points = 100 x (candidate rate - baseline rate)``:
    regress when ``points >= WORSE_BY`` (fails more), pass when ``points <= -WORSE_BY``, else neutral."""
    if points >= WORSE_BY:
        return "regress"
    return "pass" if points <= -WORSE_BY else "neutral"


def clip(text: str, limit: int | None) -> str:
    """``text`` cut to its first ``limit`` characters plus an ellipsis when longer (whole without a limit)."""
    if limit is not None and len(text) > limit:
        return text[:limit] + "…"
    return text


def rows_url(candidate_id: int, evaluator: str, cohort: str) -> str:
    """The dashboard's worst-rows page of one candidate and check."""
    return f"/candidates/{candidate_id}/rows?" + urlencode({"evaluator": evaluator, "cohort": cohort})


def history_url(dataset: str) -> str:
    """The dashboard's decision history of one dataset."""
    return f"/datasets/{quote(dataset, safe='')}/history"


def trade_off_svg(view: SweepView) -> Markup:
    """``svg.trade_off_chart``, marked safe: it escapes every label and title it embeds."""
    return Markup(trade_off_chart(view))


def search_scatter_svg(view: SweepView) -> Markup:
    """``search_svg.hyperparameter_scatter``, marked safe: it escapes every label and title it embeds."""
    return Markup(hyperparameter_scatter(view))


def search_heatmap_svg(view: SweepView) -> Markup:
    """``search_svg.gain_heatmap``, marked safe: it escapes every label and title it embeds."""
    return Markup(gain_heatmap(view))


def loss_svg(candidate: CandidateView) -> Markup:
    """``svg.loss_chart``, marked safe: it escapes the label and title it embeds."""
    return Markup(loss_chart(candidate))


ENVIRONMENT = Environment(
    loader=PackageLoader("evalgate.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.globals.update(
    badge_tone=badge_tone,
    verdict_tone=verdict_tone,
    fail_tone=fail_tone,
    worse_by=WORSE_BY,
    clip=clip,
    rows_url=rows_url,
    history_url=history_url,
    trade_off_chart=trade_off_svg,
    loss_chart=loss_svg,
    search_scatter=search_scatter_svg,
    search_heatmap=search_heatmap_svg,
    varied_hyperparameters=varied_hyperparameters,
    evaluated=evaluated,
)


def render(template: str, **context: Any) -> str:
    """The HTML of ``template`` (a file name under ``evalgate/report/templates/``) with ``context``."""
    return ENVIRONMENT.get_template(template).render(**context)
