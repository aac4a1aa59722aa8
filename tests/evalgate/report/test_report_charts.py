"""The report's pure renderers on hand-made view data (no database)."""

from __future__ import annotations

import itertools
import re

import numpy as np

from evalgate.report.model import CandidateView, Estimate, SweepView
from evalgate.report.search_svg import (
    BINS,
    diverging_colour,
    gain_heatmap,
    hyperparameter_scatter,
    levels,
    varied_hyperparameters,
)
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


def _trial(label: str, hyperparameters: dict[str, object], gain: float | None) -> CandidateView:
    estimate = None if gain is None else Estimate(gain, gain - 0.05, gain + 0.05)
    return CandidateView(
        id=1, label=label, rate=None, status="trained", diagnosis="healthy", diagnosis_reason="", losses=(),
        verdict="pass" if gain is not None and gain > 0 else "block", decision_id=1, run_id=1,
        baseline_run_id=2, objective=estimate, ood=estimate, hyperparameters=hyperparameters,
    )  # fmt: skip


def _search(*candidates: CandidateView) -> SweepView:
    return SweepView(
        id=1, name="search", status="finished", base_model="m", dataset="d@v1", dataset_name="d",
        candidates=candidates, objective_check="json_validation/target", ood_check="answer_accuracy/ood",
        ood_margin=0.05, recommended=None, decided=True,
    )  # fmt: skip


def test_a_rate_drawn_from_a_range_falls_in_log_equal_bins_of_the_heatmap() -> None:
    rates = [float(v) for v in np.geomspace(1e-5, 1e-2, 12)]

    rows = levels("learning_rate", rates)

    assert (
        len(rows.labels) == BINS and rows.labels[0].startswith("1e-05") and rows.labels[-1].endswith("0.01")
    )
    indices = [rows.index(rate) for rate in rates]
    assert indices == sorted(indices) and (indices[0], indices[-1]) == (0, BINS - 1)
    assert rows.index(1e-4) == 1  # log10 in [-5, -2]: the second of five equal log ranges is [-4.4, -3.8)


def test_a_schedule_and_a_few_ranks_get_one_level_each_in_value_order() -> None:
    assert levels("scheduler", ["cosine", "constant", "cosine"]).labels == ("constant", "cosine")
    ranks = levels("lora_r", [16, 4, 8, 4])
    assert ranks.labels == ("4", "8", "16") and [ranks.index(r) for r in (4, 8, 16)] == [0, 1, 2]


def test_one_varied_hyperparameter_gets_its_two_panels_and_no_heatmap() -> None:
    view = _search(
        _trial("a", {"learning_rate": 1e-4, "lora_r": 8}, 0.2),
        _trial("b", {"learning_rate": 1e-3, "lora_r": 8}, -0.1),
        _trial("c", {"learning_rate": 1e-2, "lora_r": 8}, None),  # not evaluated: not drawn
    )

    scatter = hyperparameter_scatter(view)

    assert varied_hyperparameters(view) == ["learning_rate"] and gain_heatmap(view) == ""
    assert scatter.count('<svg class="chart panel"') == 2 and scatter.count('<g class="point"') == 4
    assert ">0.0001</text>" in scatter and ">0.001</text>" in scatter  # a tick at each of few rates


def test_the_heatmap_averages_the_trials_of_a_cell_and_greys_an_empty_one() -> None:
    view = _search(
        _trial("a", {"learning_rate": 1e-4, "scheduler": "cosine"}, 0.2),
        _trial("b", {"learning_rate": 1e-4, "scheduler": "cosine"}, 0.4),
        _trial("c", {"learning_rate": 1e-3, "scheduler": "constant"}, -0.1),
    )

    heatmap = gain_heatmap(view)

    assert heatmap.count('<g class="cell"') == 2 and heatmap.count('fill="#f6f8fa"') == 2  # 2 x 2, two empty
    assert ">+0.300</text>" in heatmap and ">2/2 pass</text>" in heatmap and ">0/1 pass</text>" in heatmap
    assert diverging_colour(0.0) == "#ffffff" and diverging_colour(1.0) == "#1a7f37"
    assert diverging_colour(-1.0) == "#cf222e"
