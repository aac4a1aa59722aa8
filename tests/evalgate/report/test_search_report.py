"""A gated search's results files and charts: results.csv carries each candidate's gate columns as the
report shows them, best.yaml is the recommended trial's runnable config, and the report draws each varied
hyperparameter against target gain and ood delta with a rate x schedule heatmap (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from evalgate.data.store import DatasetStore
from evalgate.report.results import write_gated_analysis
from evalgate.report.sweep import build_sweep_view, render_sweep_report
from evalgate.sweep.analysis import BEST_FILE, RESULTS_FILE
from evalgate.sweep.config import SweepConfig
from tests.support.sweep_data import SEARCH_RATES, SEARCH_SCHEDULERS, SeededSweep, seed_search_sweep


@pytest.fixture
def search(store: DatasetStore, tmp_path: Path) -> SeededSweep:
    return seed_search_sweep(store, tmp_path)


def test_results_csv_carries_the_reports_gate_columns_and_best_yaml_is_the_recommended_trial(
    store: DatasetStore, search: SeededSweep, tmp_path: Path
) -> None:
    view = build_sweep_view(store.sessions, search.sweep_id)

    files = write_gated_analysis(store.sessions, search.sweep_id, tmp_path / "results")

    with files.results.open(newline="") as handle:
        table = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(table) == {c.label for c in view.candidates} and len(table) == 8
    for candidate in view.candidates:
        row = table[candidate.label]
        if candidate.objective is None:
            assert (row["status"], row["verdict"], row["target_gain"]) == ("stopped", "", "")
            assert row["stopped_at_step"] == "8" and row["halted"].startswith("stopped early at rung 1")
            continue
        assert row["verdict"] == candidate.verdict
        assert float(row["target_gain"]) == pytest.approx(candidate.objective.mean)
        assert candidate.ood is not None and float(row["ood_delta"]) == pytest.approx(candidate.ood.mean)
    assert {row["verdict"] for row in table.values()} >= {"pass", "block"}
    assert view.recommended is not None and files.chosen is not None
    assert files.chosen.result.name == view.recommended
    assert files.best == tmp_path / "results" / BEST_FILE and (tmp_path / "results" / RESULTS_FILE).exists()
    best = SweepConfig.from_yaml(files.best)
    recommended = next(c for c in view.candidates if c.label == view.recommended)
    assert best.learning_rates == (recommended.hyperparameters["learning_rate"],)
    assert best.scheduler.kind == recommended.hyperparameters["scheduler"]
    assert (best.search, best.halving, best.name) == (None, None, "search-best")


def test_the_report_draws_each_varied_hyperparameter_against_gain_and_ood_and_a_heatmap(
    store: DatasetStore, search: SeededSweep
) -> None:
    html = render_sweep_report(store.sessions, search.sweep_id)
    section = html[html.index('<section id="search">') :].split("</section>")[0]

    panels = re.findall(r'<svg class="chart panel"[^>]*aria-label="([^"]+)"', section)
    assert panels == [
        "learning_rate against target gain (json_validation/target)",
        "learning_rate against ood Δ (answer_accuracy/ood)",
        "scheduler against target gain (json_validation/target)",
        "scheduler against ood Δ (answer_accuracy/ood)",
    ]
    for panel in section.split('<svg class="chart panel"')[1:]:
        assert panel.count('<g class="point"') == 6  # the six evaluated trials; the stopped two are not
    heatmap = section[section.index('<svg class="chart heatmap"') :]
    assert heatmap.count('<g class="cell"') == len(SEARCH_RATES) * len(SEARCH_SCHEDULERS)
    assert "mean json_validation/target gain by learning_rate and scheduler" in heatmap
    assert "Not shown (2, not evaluated" in section and "lr=1e-05 constant" in section


def test_the_heatmap_cells_hold_the_mean_gain_and_the_pass_count_of_their_trials(
    store: DatasetStore, search: SeededSweep
) -> None:
    view = build_sweep_view(store.sessions, search.sweep_id)
    html = render_sweep_report(store.sessions, search.sweep_id)
    heatmap = html[html.index('<svg class="chart heatmap"') :].split("</svg>")[0]

    cells = re.findall(
        r'<g class="cell">.*?>([+-]\d\.\d{3})</text>.*?>(\d)/(\d) pass</text><title>([^<]+)', heatmap
    )
    assert len(cells) == 6
    by_label = {c.label: c for c in view.candidates}
    for mean, passed, count, tip in cells:
        label = tip.split(":")[0]
        candidate = by_label[label]
        assert candidate.objective is not None and count == "1"
        assert float(mean) == pytest.approx(candidate.objective.mean, abs=5e-4)
        assert passed == ("1" if candidate.verdict == "pass" else "0")
