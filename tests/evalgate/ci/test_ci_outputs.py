"""`evalgate ci` decisions and outputs on a seeded sweep (stored scores, no model), SQLite and PostgreSQL:
junit.xml parsed with xml.etree, summary.md, result.json, the baseline after a promotion."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from evalgate.ci.config import CandidateSpec, CiConfig
from evalgate.ci.local import decide_all, describe_baseline, sweep_candidates
from evalgate.ci.outputs import write_error_outputs, write_outputs
from evalgate.ci.result import CandidateResult, CiResult, fail_rates_for, recommendation_for
from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, DatasetVersion, EvaluationRun, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.gate.policy import Check, GatePolicy
from evalgate.gate.records import gate_sweep
from evalgate.report.fail_rates import run_fail_counts
from evalgate.sweep.config import SweepConfig
from tests.support.scored_runs import add_run

ROWS = 200
POLICY = GatePolicy(
    checks=(Check("quality", "target"), Check("quality", "ood"), Check("ood_kl", "ood", margin=0.2)),
    objective="quality/target",
)
HEADER = "| rate | status | verdict | target gain [CI] | ood delta [CI] | why not recommended |"


def _config(policy: GatePolicy = POLICY, promote: bool = False) -> CiConfig:
    sweep = SweepConfig(dataset="suite@v1", name="s", base_model="m")
    return CiConfig(dataset="suite@v1", policy=policy, sweep=sweep, promote=promote)


@pytest.fixture
def seeded(store: DatasetStore, write_jsonl) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """A sweep: a base run; rates that barely move, learn, forget; one diverged, one failed (OOM).

    Returns (sweep id, dataset content hash)."""
    store.add("suite", [write_jsonl("rows.jsonl", [{"id": "a", "question": "q"}])])
    rng = np.random.default_rng(0)
    target, ood = rng.uniform(0.0, 0.3, ROWS), rng.uniform(0.6, 1.0, ROWS)
    shapes: dict[float, Any] = {1e-5: (0.01, 0.0, 0.01), 1e-4: (0.6, -0.005, 0.1), 1e-3: (0.7, -0.3, 0.9),
                                1e-2: "diverged", 3e-2: "failed"}  # fmt: skip
    with session_scope(store.sessions) as session:
        version = session.scalars(select(DatasetVersion)).one()
        sweep = Sweep(name="s", dataset_version_id=version.id, base_model="m", config={}, config_hash="h",
                      status="finished")  # fmt: skip
        session.add(sweep)
        session.flush()
        base_id = add_run(
            session, version, None, {("quality", "target"): target, ("quality", "ood"): ood}, None
        )
        for rate, shape in shapes.items():
            status = shape if isinstance(shape, str) else "trained"
            error = "out of memory: CUDA out of memory" if status == "failed" else None
            candidate = Candidate(sweep_id=sweep.id, name=f"lr={rate:g}", base_model="m", learning_rate=rate,
                                  status=status, diagnosis="diverged" if status == "diverged" else "healthy",
                                  error=error)  # fmt: skip
            session.add(candidate)
            session.flush()
            if status == "trained":
                gain, drift, kl = shape
                scores = {("quality", "target"): target + gain, ("quality", "ood"): ood + drift,
                          ("ood_kl", "ood"): np.full(ROWS, kl)}  # fmt: skip
                add_run(session, version, candidate.id, scores, base_id)
        return sweep.id, version.content_hash


def _decide(store: DatasetStore, seeded: tuple[int, str], config: CiConfig) -> CiResult:
    sweep_id, dataset_hash = seeded
    candidates = sweep_candidates(store.sessions, sweep_id)
    return decide_all(store.sessions, config, dataset_hash, candidates, "base model m", sweep_id)


def _suites(folder: Path) -> ET.Element:
    root = ET.parse(folder / "junit.xml").getroot()
    assert root.tag == "testsuites"
    return root


def test_outputs_of_a_sweep_with_a_recommendation(
    store: DatasetStore, seeded: tuple[int, str], tmp_path: Path
) -> None:
    result = _decide(store, seeded, _config())
    write_outputs(result, tmp_path, report_note="`report.html` in the outputs folder")

    root = _suites(tmp_path)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["lr=1e-05", "lr=0.0001", "lr=0.001", "lr=0.01", "lr=0.03"]
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "11", "failures": "2", "errors": "1", "skipped": "1"}  # fmt: skip
    forgets = suites[2]
    failed = {case.get("name"): case.find("failure") for case in forgets.findall("testcase")}
    assert failed["quality/target"] is None
    ood = failed["quality/ood"]
    assert ood is not None and ood.get("type") == "regress"
    assert "regress: oriented delta -0.3" in ood.get("message", "") and "interval [" in ood.get("message", "")
    assert failed["ood_kl/ood"] is not None and forgets.get("failures") == "2"
    (diverged,) = suites[3].findall("testcase")
    skipped = diverged.find("skipped")
    assert skipped is not None and "not evaluated: training diverged" in skipped.get("message", "")
    error = suites[4].find("testcase/error")
    assert (
        error is not None
        and "training failed" in error.get("message", "")
        and "out of memory" in (error.text or "")
    )
    properties = {p.get("name"): p.get("value") for p in suites[1].iter("property")}
    assert properties["verdict"] == "pass" and properties["policy_sha256"] == POLICY.sha256

    summary = (tmp_path / "summary.md").read_text()
    assert "**Recommended: `lr=0.0001`**" in summary and HEADER in summary
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| 1e-05", "| 0.0001", "| 0.001", "| 0.01", "| 0.03"]
    assert "| not evaluated |" in rows[3] and "not evaluated (training diverged)" in rows[3]
    assert "blocked: quality/ood regress" in rows[2] and "| recommended |" in rows[1]
    assert f"sha256 `{seeded[1]}`" in summary and POLICY.sha256 in summary

    data = json.loads((tmp_path / "result.json").read_text())
    assert data["exit_code"] == 0 and data["recommended"] == "lr=0.0001" and data["error"] is None
    assert [c["verdict"] for c in data["candidates"]] == ["pass", "pass", "block", None, None]
    assert [c["blocking"] for c in data["candidates"][2]["checks"]] == [False, True, True]
    assert data["dataset"] == {"label": "suite@v1", "sha256": seeded[1]}


def test_the_recommendation_from_evidence_matches_the_gate_command(
    store: DatasetStore, seeded: tuple[int, str]
) -> None:
    result = _decide(store, seeded, _config())
    direct = gate_sweep(store.sessions, seeded[0], POLICY).recommendation

    assert result.recommendation == direct


def test_every_candidate_blocked_exits_1(
    store: DatasetStore, seeded: tuple[int, str], tmp_path: Path
) -> None:
    impossible = GatePolicy(checks=(Check("quality", "target", floor=2.0),), objective="quality/target")
    result = _decide(store, seeded, _config(impossible))
    write_outputs(result, tmp_path, report_note="-")

    root = _suites(tmp_path)
    assert result.exit_code == 1 and result.recommended is None
    assert (root.get("tests"), root.get("failures")) == ("5", "3")
    assert all(f.get("type") == "below_floor" for f in root.iter("failure"))
    assert "**No candidate passed the gate.** Exit code 1." in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "result.json").read_text())["exit_code"] == 1


def test_after_a_promotion_candidates_are_decided_against_the_promoted_one(
    store: DatasetStore, seeded: tuple[int, str]
) -> None:
    first = _decide(store, seeded, _config(promote=True))
    promoted_id = first.promoted["candidate_id"] if first.promoted else None
    second = _decide(store, seeded, _config())

    with session_scope(store.sessions) as session:
        promoted_run = session.scalars(
            select(EvaluationRun.id).where(EvaluationRun.candidate_id == promoted_id)
        ).one()
    by_label = {c.label: c.decision for c in second.candidates}
    assert first.recommended is not None and first.recommended.label == "lr=0.0001"
    assert by_label["lr=1e-05"] is not None and by_label["lr=1e-05"]["baseline_run_id"] == promoted_run
    assert by_label["lr=1e-05"]["verdict"] == "block"  # it learned nothing the promoted one had
    assert by_label["lr=0.0001"] is not None and by_label["lr=0.0001"]["baseline_run_id"] != promoted_run
    assert describe_baseline(store.sessions, "m", promoted_id).startswith("promoted candidate lr=0.0001")


def _decision(verdicts: dict[str, str]) -> dict[str, Any]:
    checks = [{"check": name, "verdict": verdict, "reason": "oriented delta -0.0300, Holm interval [-0.0900, "
               "+0.0300] straddles -0.0500", "oriented_delta": -0.03, "ci_95": [-0.08, 0.02],
               "ci_holm_pass": [-0.09, 0.03], "ci_holm_regress": [-0.085, 0.025], "margin": 0.05, "n": 200}
              for name, verdict in verdicts.items()]  # fmt: skip
    verdict = "pass" if set(verdicts.values()) == {"pass"} else "block"
    return {"id": 1, "verdict": verdict, "evidence": {"checks": checks}}


@pytest.mark.parametrize(("inconclusive", "failures"), [("block", 1), ("pass", 0)])
def test_inconclusive_is_a_failure_only_when_the_policy_blocks_on_it(
    inconclusive: str, failures: int, tmp_path: Path
) -> None:
    policy = GatePolicy(
        checks=(Check("quality", "target"), Check("quality", "ood")), inconclusive=inconclusive
    )
    config = CiConfig(dataset="suite@v1", policy=policy, candidates=(CandidateSpec("a|b", "/adapters/a"),))
    verdicts = {"quality/target": "pass", "quality/ood": "inconclusive"}
    decision = _decision(verdicts) | ({"verdict": "pass"} if inconclusive == "pass" else {})
    candidates = [CandidateResult("a|b", 7, None, "trained", decision=decision)]
    result = CiResult(config, "h" * 64, candidates, recommendation_for(config, candidates), "base model m")
    write_outputs(result, tmp_path, report_note="-")

    root = _suites(tmp_path)
    (case,) = [c for c in root.iter("testcase") if c.get("name") == "quality/ood"]
    assert root.get("failures") == str(failures)
    if failures:
        failure = case.find("failure")
        assert failure is not None and failure.get("type") == "inconclusive"
        assert "[-0.0900, +0.0300] straddles" in failure.get("message", "")
    else:
        assert "allowed by the policy: inconclusive" in (case.findtext("system-out") or "")
    summary = (tmp_path / "summary.md").read_text()
    assert "| a\\|b |" in summary  # a pipe in a name cannot break the table
    assert "-0.030 [-0.090, +0.030]" in summary


def test_error_outputs_replace_a_previous_run(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("<html>last week</html>")

    write_error_outputs(tmp_path, "main on suite@v1", "no dataset named 'suite'")

    root = _suites(tmp_path)
    assert (root.get("tests"), root.get("errors")) == ("1", "1")
    assert root.find("testsuite/testcase/error") is not None
    assert json.loads((tmp_path / "result.json").read_text())["exit_code"] == 2
    assert "no dataset named 'suite'" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "report.html").exists()


def test_the_outputs_show_each_cohorts_eval_fail_rate_next_to_the_baseline(
    store: DatasetStore, seeded: tuple[int, str], tmp_path: Path
) -> None:
    result = _decide(store, seeded, _config())
    result = replace(result, fail_rates=fail_rates_for(result, lambda ids: _counts(store, ids)))
    write_outputs(result, tmp_path, report_note="-")

    with session_scope(store.sessions) as session:  # what the forgetting rate failed, row by row
        run_id = result.candidates[2].decision["candidate_run_id"]  # type: ignore[index]
        verdicts = session.scalars(
            select(RowScore.passed).where(RowScore.evaluation_run_id == run_id, RowScore.cohort == "ood",
                                          RowScore.evaluator == "quality")
        ).all()  # fmt: skip
    forgets = 100 * sum(not v for v in verdicts) / len(verdicts)
    assert forgets > 10
    summary = (tmp_path / "summary.md").read_text()
    assert "| evaluator/cohort | rows | baseline | lr=1e-05 | lr=0.0001 | lr=0.001 |" in summary
    line = next(row for row in summary.splitlines() if row.startswith("| quality/ood |"))
    assert line.split(" | ")[1:3] == [str(ROWS), "0.0"] and f"{forgets:.1f} (+{forgets:.1f})" in line
    data = json.loads((tmp_path / "result.json").read_text())["fail_rates"]
    assert data["columns"] == ["baseline", "lr=1e-05", "lr=0.0001", "lr=0.001"]
    ood = next(row for row in data["rows"] if (row["evaluator"], row["cohort"]) == ("quality", "ood"))
    assert ood["fail_rate"]["baseline"] == 0.0 and ood["fail_rate"]["lr=0.001"] == pytest.approx(
        forgets / 100
    )
    assert ood["n"]["lr=0.001"] == ROWS


def _counts(store: DatasetStore, run_ids: list[int]) -> dict[int, Any]:
    with session_scope(store.sessions) as session:
        return run_fail_counts(session, run_ids)
