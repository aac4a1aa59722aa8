"""HTML of a sweep report: one self-contained document (inline CSS and SVG, no script, no URL).

``sweep_document`` is the file ``evalgate ci`` writes, rendered from ``templates/report.html.j2``; the
dashboard's sweep page (``evalgate.report.pages.sweep_page``) shows the same sections with drill-down
links. The templates are autoescaped: every user-supplied text (names, prompts, answers, reasons) is
HTML-escaped.
"""

from __future__ import annotations

from evalgate.report.model import SweepView
from evalgate.report.templating import render


def sweep_document(view: SweepView, *, title: str | None = None) -> str:
    """The stand-alone report of one sweep (no links outside the document); ``title`` defaults to
    ``evalgate sweep ID: NAME``."""
    return render("report.html.j2", title=title or f"evalgate sweep {view.id}: {view.name}", view=view)
