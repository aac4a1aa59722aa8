"""The report's pure renderers on hand-made view data (no database)."""

from __future__ import annotations

import itertools
import re

import numpy as np

from evalgate.report.model import CandidateView
from evalgate.report.svg import Scale, loss_chart, padded
from evalgate.sweep.diagnosis import smooth


def _candidate(losses: list[float], diagnosis: str = "healthy") -> CandidateView:
    return CandidateView(
        id=1, label="lr=0.0003", rate=3e-4, status="trained", diagnosis=diagnosis, diagnosis_reason="",
        losses=tuple(losses), verdict="pass", decision_id=1, run_id=1, baseline_run_id=None,
    )  # fmt: skip


def _points(svg: str, css_class: str) -> list[tuple[float, float]]:
    found = re.search(rf'<polyline class="{css_class}" points="([^"]+)"[^>]*stroke-width="([0-9.]+)"', svg)
    assert found is not None, css_class
    return [(float(x), float(y)) for x, y in (p.split(",") for p in found.group(1).split())]


def test_the_loss_chart_draws_the_smoothed_curve_bold_over_the_faint_raw_one() -> None:
    losses = [
        float(v) for v in 0.5 + 1.5 * np.exp(-np.arange(32) / 6) + np.random.default_rng(0).normal(0, 0.3, 32)
    ]

    svg = loss_chart(_candidate(losses))

    raw, smoothed = _points(svg, "raw"), _points(svg, "smoothed")
    assert svg.index('class="raw"') < svg.index('class="smoothed"')  # drawn after: on top
    assert re.search(r'class="raw"[^>]*stroke-width="0.8" stroke-opacity="0.35"', svg)
    assert re.search(r'class="smoothed"[^>]*stroke-width="2.2"', svg)
    y = Scale(*padded(losses, 0.05), 120 - 8 - 14, 8)
    assert [p[1] for p in raw] == [round(y(v), 1) for v in losses]
    assert [p[1] for p in smoothed] == [round(y(v), 1) for v in smooth(losses)]
    raw_swing = sum(abs(b[1] - a[1]) for a, b in itertools.pairwise(raw))
    smooth_swing = sum(abs(b[1] - a[1]) for a, b in itertools.pairwise(smoothed))
    assert smooth_swing < raw_swing / 2
    assert "bold: smoothed, EMA span 8" in svg


def test_a_loss_chart_needs_two_finite_steps() -> None:
    assert "no loss curve" in loss_chart(_candidate([1.0, float("nan")]))
