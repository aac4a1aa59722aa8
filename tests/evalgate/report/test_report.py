"""The sweep report's view model and renderer, the dashboard's history and drill-down data, on a seeded
weekly sweep (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select

from evalgate.data.store import DatasetStore
from evalgate.db.models import DatasetVersion, GateDecision, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.gate.policy import Check, GatePolicy
from evalgate.gate.records import gate_sweep
from evalgate.report.history import dataset_history, dataset_rows, sweep_rows
from evalgate.report.rows import UNAVAILABLE, candidate_rows_view
from evalgate.report.svg import nice_ticks
from evalgate.report.sweep import build_sweep_view, latest_recommendation, render_sweep_report
from tests.support.sweep_data import POLICY, SeededSweep, seed_weekly_sweep

SERIES = "HuggingFaceTB/SmolLM2-135M · lr=0.0001"


@pytest.fixture
def week1(store: DatasetStore, tmp_path: Path) -> SeededSweep:
    """Week 1's sweep, gated with ``POLICY``."""
    return seed_weekly_sweep(store, tmp_path, week=1)


def test_view_recommends_the_rate_that_learns_without_forgetting(
    store: DatasetStore, week1: SeededSweep
) -> None:
    view = build_sweep_view(store.sessions, week1.sweep_id)

    assert view.recommended == "lr=0.0001"
    assert (view.objective_check, view.ood_check, view.ood_margin) == (
        "json_validation/target",
        "answer_accuracy/ood",
        0.05,
    )
    assert view.policy_hash == POLICY.sha256 and view.dataset == "orders-json@v1"
    by_label = {c.label: c for c in view.candidates}
    assert {label: c.verdict for label, c in by_label.items()} == {
        "lr=1e-05": "pass", "lr=0.0001": "pass", "lr=0.0003": "block", "lr=0.001": "block", "lr=0.01": None,
    }  # fmt: skip
    assert [c.diagnosis for c in view.candidates] == ["flat", "healthy", "healthy", "oscillating", "diverged"]
    assert "answer_accuracy/ood inconclusive" in by_label["lr=0.0003"].reason
    assert "answer_accuracy/ood regress" in by_label["lr=0.001"].reason
    assert "smaller json_validation/target gain" in by_label["lr=1e-05"].reason
    assert by_label["lr=0.01"].reason == "not evaluated (training diverged)"
    assert by_label["lr=0.0001"].reason == ""
    with session_scope(store.sessions) as session:
        assert latest_recommendation(session, week1.sweep_id) == view.recommended


def test_checked_cells_come_from_the_decision_and_the_others_from_oriented_summary_deltas(
    store: DatasetStore, week1: SeededSweep
) -> None:
    view = build_sweep_view(store.sessions, week1.sweep_id)
    forgets = next(c for c in view.candidates if c.label == "lr=0.001")
    with session_scope(store.sessions) as session:
        decision = session.get_one(GateDecision, forgets.decision_id)
        evidence = {c["check"]: c for c in decision.evidence["checks"]}

    ood, kl, exact = (
        forgets.cell(label) for label in ("answer_accuracy/ood", "ood_kl/ood", "exact_match/target")
    )
    assert ood is not None and kl is not None and exact is not None
    assert ood.estimate.mean == evidence["answer_accuracy/ood"]["oriented_delta"] and ood.tone == "regress"
    assert [ood.estimate.low, ood.estimate.high] == evidence["answer_accuracy/ood"]["ci_95"]
    assert kl.estimate.mean < -0.8 and kl.verdict == "regress"  # KL 0.9 is worse: oriented negative
    assert exact.verdict is None and exact.tone == "neutral" and exact.estimate.mean > 0
    assert forgets.objective == forgets.cell("json_validation/target").estimate  # type: ignore[union-attr]
    assert forgets.ood == ood.estimate
    assert view.labels[-1] == "exact_match/target"  # checks first, unchecked pairs after


def test_the_latest_decision_under_the_newest_policy_is_shown(
    store: DatasetStore, week1: SeededSweep
) -> None:
    strict = GatePolicy(
        checks=(Check("json_validation", "target", margin=0.0), Check("ood_kl", "ood", margin=0.05))
    )
    gate_sweep(store.sessions, week1.sweep_id, strict)

    view = build_sweep_view(store.sessions, week1.sweep_id)

    assert view.policy_hash == strict.sha256 and view.ood_check == "ood_kl/ood" and view.ood_margin == 0.05
    with session_scope(store.sessions) as session:
        newest = {d.candidate_id: d for d in session.scalars(select(GateDecision).order_by(GateDecision.id))}
    assert all(c.decision_id == newest[c.id].id for c in view.candidates if c.verdict is not None)
    assert all(c.cell("answer_accuracy/ood").verdict is None for c in view.candidates if c.run_id)  # type: ignore[union-attr]


def test_worst_rows_pair_prompts_answers_and_scores(store: DatasetStore, week1: SeededSweep) -> None:
    view = build_sweep_view(store.sessions, week1.sweep_id)
    forgets = next(c for c in view.candidates if c.label == "lr=0.001")

    rows = [r for r in forgets.worst_rows if r.evaluator == "answer_accuracy"]
    assert len(rows) == 3 and [r.delta for r in rows] == sorted(r.delta for r in rows)
    for row in rows:
        assert row.delta < 0 and row.base_score is not None
        assert row.delta == pytest.approx(row.candidate_score - row.base_score)
        assert row.prompt.startswith("What is the capital of")
        assert (row.base_answer or "").startswith("The capital is")
        assert (row.candidate_answer or "").startswith('{"answer": ')


def test_a_modified_dataset_file_leaves_prompts_out_but_the_report_renders(
    store: DatasetStore, week1: SeededSweep
) -> None:
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        Path(version.storage_uri, version.files["eval"]["path"]).write_bytes(b"not the stored parquet")

    view = build_sweep_view(store.sessions, week1.sweep_id)
    html = render_sweep_report(store.sessions, week1.sweep_id)

    rows = [row for c in view.candidates for row in c.worst_rows]
    assert rows and all(row.prompt == UNAVAILABLE for row in rows)
    assert all(row.candidate_answer is not None for row in rows)
    assert "prompt unavailable: dataset file missing or modified" in html


def test_drill_down_counts_rows_and_compares_zero_baseline_signals_with_zero(
    store: DatasetStore, week1: SeededSweep
) -> None:
    forgets = week1.candidates["lr=0.001"]

    accuracy = candidate_rows_view(store.sessions, forgets, "answer_accuracy", "ood", limit=5)
    kl = candidate_rows_view(store.sessions, forgets, "ood_kl", "ood", limit=2)

    assert accuracy.paired == 120 and accuracy.worse > 100 and len(accuracy.rows) == 5
    assert ("json_validation", "target") in accuracy.available and accuracy.sweep_id == week1.sweep_id
    assert all(r.base_score == 0.0 and r.delta == -r.candidate_score for r in kl.rows)
    diverged = candidate_rows_view(store.sessions, week1.candidates["lr=0.01"], "ood_kl", "ood")
    assert diverged.run_id is None and diverged.rows == []
    with pytest.raises(LookupError):
        candidate_rows_view(store.sessions, 999, "ood_kl", "ood")


def test_without_decisions_the_view_falls_back_to_summary_deltas(store: DatasetStore, tmp_path: Path) -> None:
    seeded = seed_weekly_sweep(store, tmp_path, week=1, gate=False)

    view = build_sweep_view(store.sessions, seeded.sweep_id)
    html = render_sweep_report(store.sessions, seeded.sweep_id)

    assert not view.decided and view.recommended is None and view.ood_margin is None
    assert (view.objective_check, view.ood_check) == ("exact_match/target", "answer_accuracy/ood")  # by name
    assert all(c.verdict is None for c in view.candidates)
    assert view.candidates[1].reason == "evaluated, no gate decision yet (training trained)"
    assert view.candidates[1].objective is not None and view.candidates[1].objective.mean > 0.2
    assert "No recommendation: no candidate has a gate decision yet." in html


def test_report_is_one_self_contained_escaped_document(store: DatasetStore, week1: SeededSweep) -> None:
    with session_scope(store.sessions) as session:
        session.get_one(Sweep, week1.sweep_id).name = '<img src=x onerror="alert(1)">'

    html = render_sweep_report(store.sessions, week1.sweep_id, title="weekly <b>retrain</b>")

    assert html.startswith("<!DOCTYPE html>") and "<title>weekly &lt;b&gt;retrain&lt;/b&gt;</title>" in html
    assert "<img" not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    for external in ("http://", "https://", "<script", "<link", "url(", "@import"):
        assert external not in html, external
    assert not re.search(r"<[^>]+\s(src|href)=", html)  # no element loads or links anything
    assert "target gain (json_validation/target, Δ mean score, + = better)" in html
    assert "out-of-domain Δ (answer_accuracy/ood, Δ mean score, + = better)" in html
    assert 'stroke-dasharray="6 4"' in html and "&#8722;δ = -0.050" in html
    assert html.count('<polyline class="raw"') == 5 and html.count('<polyline class="smoothed"') == 5
    assert html.count('<g class="point"') == 4
    assert "Not shown (no deltas): lr=0.01." in html
    _assert_balanced(html)


def test_dataset_history_flags_a_new_regression(
    store: DatasetStore, week1: SeededSweep, tmp_path: Path
) -> None:
    week2 = seed_weekly_sweep(store, tmp_path, week=2)
    gate_sweep(store.sessions, week2.sweep_id, POLICY)  # a repeated decision is listed once

    history = dataset_history(store.sessions, "orders-json")

    entries = history.series[SERIES]
    assert [e.version for e in entries] == ["orders-json@v1", "orders-json@v2"]
    assert [e.verdict for e in entries] == ["pass", "block"]
    ood = entries[1].checks["answer_accuracy/ood"]
    assert ood.previous == "pass" and ood.verdict == "regress" and ood.new_regression
    assert not entries[1].checks["json_validation/target"].changed
    assert len(history.series) == 4 and history.labels[0] == "json_validation/target"
    with pytest.raises(LookupError):
        dataset_history(store.sessions, "nope")


def test_sweep_and_dataset_lists(store: DatasetStore, week1: SeededSweep, tmp_path: Path) -> None:
    seed_weekly_sweep(store, tmp_path, week=2)

    sweeps = sweep_rows(store.sessions)
    datasets = dataset_rows(store.sessions)

    assert [(s.name, s.candidates, s.recommended) for s in sweeps] == [
        ("weekly-2", 5, "lr=1e-05"),
        ("weekly-1", 5, "lr=0.0001"),
    ]
    assert [(d.name, d.versions, d.decisions, d.passes) for d in datasets] == [("orders-json", 2, 8, 3)]


def test_unknown_sweep_is_a_lookup_error(store: DatasetStore) -> None:
    with pytest.raises(LookupError, match="sweep 42 not found"):
        render_sweep_report(store.sessions, 42)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), (-0.33, 0.02, [-0.4, -0.3, -0.2, -0.1, 0.0])],
)
def test_nice_ticks(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)


class _Tags(HTMLParser):
    """Counts open elements (void elements excluded) to catch unclosed tags."""

    VOID = frozenset({"meta", "input", "br", "img", "circle", "rect", "line", "polyline", "path"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        return None

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])
        self.stack.pop()


def _assert_balanced(html: str) -> None:
    parser = _Tags()
    parser.feed(re.sub(r"<!DOCTYPE[^>]*>", "", html))
    assert parser.stack == []


def _fail_percent(store: DatasetStore, run_id: int, evaluator: str, cohort: str) -> float:
    """The share of a run's judged rows that failed, counted row by row here."""
    with session_scope(store.sessions) as session:
        verdicts = session.execute(
            select(RowScore.score, RowScore.passed).where(
                RowScore.evaluation_run_id == run_id,
                RowScore.evaluator == evaluator,
                RowScore.cohort == cohort,
            )
        ).all()
    judged = [passed for score, passed in verdicts if score is not None and passed is not None]
    return 100 * sum(not passed for passed in judged) / len(judged)


def test_the_report_shows_each_cohorts_eval_fail_rate_next_to_the_baseline(
    store: DatasetStore, week1: SeededSweep
) -> None:
    view = build_sweep_view(store.sessions, week1.sweep_id)
    html = render_sweep_report(store.sessions, week1.sweep_id)

    rates = view.fail_rates
    assert rates is not None and rates.columns == (
        "baseline",
        "lr=1e-05",
        "lr=0.0001",
        "lr=0.0003",
        "lr=0.001",
    )
    row = next(r for r in rates.rows if r.label == "answer_accuracy/ood")
    forgets = next(c for c in view.candidates if c.label == "lr=0.001")
    assert forgets.run_id is not None and forgets.baseline_run_id == week1.base_run_id
    expected = _fail_percent(store, forgets.run_id, "answer_accuracy", "ood")
    base = _fail_percent(store, week1.base_run_id, "answer_accuracy", "ood")
    assert 100 * (row.rates[4] or 0) == pytest.approx(expected) and expected > base + 20
    assert 100 * (row.rates[0] or 0) == pytest.approx(base) and row.rows == 120
    assert ("ood_kl", "ood") in {(r.evaluator, r.cohort) for r in rates.rows}  # candidates only
    section = html[html.index('<section id="fail-rates">') :]
    line = section[section.index("<th>answer_accuracy/ood</th>") :].split("</tr>")[0]
    assert (
        f'<td class="num regress">{expected:.1f}% <span class="small muted">(+{expected - base:.1f})' in line
    )
