"""Mirroring into a real MLflow tracking server, read back through MLflow's own client: a gated weekly
sweep becomes a parent run with one child per candidate (params, per-step loss, evaluation aggregates and
deltas at the evaluation run's id, status and gate tags, each decision's evidence as an artifact), and a
promotion becomes a registered model version with the alias; syncing again adds nothing; a dead or bad
tracking URI is a warning and the caller goes on."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, DatasetVersion, EvaluationRun, GateDecision, Sweep
from evalgate.db.session import session_scope
from evalgate.gate.service import promote
from evalgate.tracking.target import MlflowTarget, sync_if_configured
from tests.api.service import ServerPort
from tests.evalgate.tracking.conftest import MlflowServer, require_mlflow
from tests.support.sweep_data import SeededSweep, seed_weekly_sweep

ADAPTER_FILES = {
    "adapter_config.json": b'{"peft_type": "LORA", "r": 8}',
    "adapter_model.safetensors": b"\x00" * 64,
}


def _target(server: MlflowServer) -> MlflowTarget:
    """A target on ``server`` with an experiment and a registered model of this test's own."""
    tag = uuid.uuid4().hex[:8]
    return MlflowTarget(server.url, experiment=f"weekly-{tag}", model_name=f"orders-json-{tag}")


def _sync(store: DatasetStore, target: MlflowTarget, sweep_id: int) -> Any:
    from evalgate.tracking.mlflow_sync import sync_sweep

    return sync_sweep(store.sessions, target, sweep_id)


def _passing(store: DatasetStore, seeded: SeededSweep) -> int:
    """The first candidate (by id) of the seeded sweep whose latest decision passed."""
    with session_scope(store.sessions) as session:
        verdicts: dict[int, str] = {}
        for decision in session.scalars(
            select(GateDecision)
            .where(GateDecision.candidate_id.in_(seeded.candidates.values()))
            .order_by(GateDecision.id)
        ):
            verdicts[decision.candidate_id] = decision.verdict
    passing = sorted(cid for cid, verdict in verdicts.items() if verdict == "pass")
    assert passing, f"no seeded candidate passed: {verdicts}"
    return passing[0]


def _with_adapter(store: DatasetStore, candidate_id: int, folder: Path) -> Path:
    """Write ``ADAPTER_FILES`` into ``folder`` and make it the candidate's adapter."""
    folder.mkdir(parents=True)
    for name, content in ADAPTER_FILES.items():
        (folder / name).write_bytes(content)
    with session_scope(store.sessions) as session:
        session.execute(update(Candidate).where(Candidate.id == candidate_id).values(adapter_uri=str(folder)))
    return folder


def _runs(client: Any, experiment_id: str) -> list[Any]:
    return list(client.search_runs([experiment_id], max_results=1000))


def _history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _same(found: list[tuple[int, float]], expected: list[tuple[int, float | None]]) -> bool:
    """Equal step by step, a None expected (a loss that was not a number) matching NaN."""
    return len(found) == len(expected) and all(
        f_step == e_step and (math.isnan(f_value) if e_value is None else f_value == e_value)
        for (f_step, f_value), (e_step, e_value) in zip(found, expected, strict=True)
    )


def _download(client: Any, run_id: str, path: str, folder: Path) -> Path:
    """The run's artifact ``path`` downloaded into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(folder)))


def _json_artifact(client: Any, run_id: str, path: str, folder: Path) -> Any:
    return json.loads(_download(client, run_id, path, folder).read_text())


def test_a_gated_sweep_and_its_promotion_read_back_through_mlflow(
    mlflow_server: MlflowServer, store: DatasetStore, tmp_path: Path
) -> None:
    seeded = seed_weekly_sweep(store, tmp_path)
    promoted_id = _passing(store, seeded)
    adapter = _with_adapter(store, promoted_id, tmp_path / "adapter")
    promote(store.sessions, promoted_id, promoted_by="weekly ci")
    target = _target(mlflow_server)

    report = _sync(store, target, seeded.sweep_id)

    client = mlflow_server.client()
    runs = _runs(client, report.experiment_id)
    (parent,) = [run for run in runs if run.data.tags.get("evalgate.kind") == "sweep"]
    children = {int(run.data.tags["evalgate.candidate_id"]): run for run in runs if run is not parent}
    assert report.created == len(runs) == 1 + len(seeded.candidates)
    assert report.parent_run_id == parent.info.run_id
    assert {cid: run.info.run_id for cid, run in children.items()} == report.candidate_runs
    with session_scope(store.sessions) as session:
        sweep = session.get_one(Sweep, seeded.sweep_id)
        label = session.get_one(DatasetVersion, sweep.dataset_version_id).label
        assert parent.info.run_name == sweep.name and parent.info.status == "FINISHED"
        assert parent.data.params["dataset"] == label and parent.data.params["base_model"] == sweep.base_model
        assert json.loads(parent.data.params["learning_rates"]) == sweep.config["learning_rates"]
        assert parent.data.tags["evalgate.sweep_id"] == str(sweep.id)
        assert _json_artifact(client, parent.info.run_id, "sweep_config.json", tmp_path / "c") == sweep.config
        base = session.get_one(EvaluationRun, seeded.base_run_id).summary["aggregates"]
        assert _history(client, parent.info.run_id, "base.json_validation.target.mean") == [
            (seeded.base_run_id, base["json_validation"]["target"]["mean"])
        ]
        candidates = session.scalars(select(Candidate).where(Candidate.sweep_id == sweep.id)).all()
        assert set(children) == {c.id for c in candidates}
        for candidate in candidates:
            _check_candidate(client, children[candidate.id], candidate, parent.info.run_id, session, tmp_path)

    version = client.get_model_version_by_alias(target.model_name, "champion")
    assert version.run_id == report.candidate_runs[promoted_id]
    assert version.tags["evalgate.candidate_id"] == str(promoted_id)
    assert report.model_versions == ((target.model_name, version.version),)
    listed = {Path(item.path).name for item in client.list_artifacts(version.run_id, "adapter")}
    assert listed == set(ADAPTER_FILES)
    downloaded = _download(client, version.run_id, "adapter", tmp_path / "a")
    assert {p.name: p.read_bytes() for p in downloaded.iterdir()} == {
        p.name: p.read_bytes() for p in adapter.iterdir()
    }


def _check_candidate(
    client: Any, run: Any, candidate: Candidate, parent_id: str, session: Any, tmp_path: Path
) -> None:
    """The candidate's run holds what the database holds about it."""
    run_id, tags = run.info.run_id, run.data.tags
    assert tags["mlflow.parentRunId"] == parent_id and run.info.run_name == candidate.name
    assert run.data.params["learning_rate"] == str(candidate.learning_rate)
    assert (tags["evalgate.status"], tags["evalgate.diagnosis"]) == (candidate.status, candidate.diagnosis)
    assert run.info.status == "FINISHED"
    losses = list(enumerate(candidate.training["loss"], start=1))
    assert _same(_history(client, run_id, "train.loss"), losses), candidate.name
    evaluations = session.scalars(
        select(EvaluationRun).where(
            EvaluationRun.candidate_id == candidate.id, EvaluationRun.status == "finished"
        )
    ).all()
    if not evaluations:  # the diverged one: trained, never evaluated nor decided
        assert candidate.status == "diverged" and "evalgate.gate.verdict" not in tags
        assert "json_validation.target.mean" not in run.data.metrics
        return
    for evaluation in evaluations:
        for evaluator, cohorts in evaluation.summary["aggregates"].items():
            for cohort, entry in cohorts.items():
                key = f"{evaluator}.{cohort}.mean"
                assert (evaluation.id, entry["mean"]) in _history(client, run_id, key), key
        for evaluator, cohorts in evaluation.summary["deltas"].items():
            for cohort, entry in cohorts.items():
                key = f"delta.{evaluator}.{cohort}"
                assert _history(client, run_id, key) == [(evaluation.id, entry["mean"])], key
                assert _history(client, run_id, f"{key}.ci_low") == [(evaluation.id, entry["ci_low"])], key
    decisions = session.scalars(
        select(GateDecision).where(GateDecision.candidate_id == candidate.id).order_by(GateDecision.id)
    ).all()
    latest = decisions[-1]
    assert (
        tags["evalgate.gate.verdict"] == latest.verdict
        and tags["evalgate.gate.policy_hash"] == latest.policy_hash
    )
    assert tags["evalgate.gate.decision_id"] == str(latest.id)
    listed = sorted(item.path for item in client.list_artifacts(run_id, "gate"))
    assert listed == sorted(f"gate/decision-{d.id}.json" for d in decisions)
    document = _json_artifact(client, run_id, f"gate/decision-{latest.id}.json", tmp_path / str(candidate.id))
    assert (document["verdict"], document["evidence"]) == (latest.verdict, latest.evidence)


def test_syncing_again_adds_no_runs_and_the_alias_follows_the_newest_promotion(
    mlflow_server: MlflowServer, store: DatasetStore, tmp_path: Path
) -> None:
    first_week = seed_weekly_sweep(store, tmp_path)
    target = _target(mlflow_server)
    unpromoted = _sync(store, target, first_week.sweep_id)
    week_1 = _passing(store, first_week)
    _with_adapter(store, week_1, tmp_path / "week-1")
    promote(store.sessions, week_1, promoted_by="ci")

    promoted = _sync(store, target, first_week.sweep_id)
    again = _sync(store, target, first_week.sweep_id)

    client = mlflow_server.client()
    runs = _runs(client, promoted.experiment_id)
    assert (unpromoted.created, promoted.created, again.created) == (len(runs), 0, 0)
    assert unpromoted.candidate_runs == promoted.candidate_runs == again.candidate_runs
    assert unpromoted.model_versions == () and promoted.model_versions == again.model_versions
    run_id = promoted.candidate_runs[week_1]
    with session_scope(store.sessions) as session:
        losses = session.get_one(Candidate, week_1).training["loss"]
        query = select(EvaluationRun.id).where(EvaluationRun.candidate_id == week_1)
        run_ids = sorted(session.scalars(query))
    assert len(client.get_metric_history(run_id, "train.loss")) == len(losses)
    assert (
        sorted(m.step for m in client.get_metric_history(run_id, "delta.json_validation.target")) == run_ids
    )
    assert len(client.search_model_versions(f"name = '{target.model_name}'")) == 1
    assert client.get_model_version_by_alias(target.model_name, "champion").run_id == run_id

    second_week = seed_weekly_sweep(store, tmp_path, week=2)
    week_2 = _passing(store, second_week)
    _with_adapter(store, week_2, tmp_path / "week-2")
    promote(store.sessions, week_2, promoted_by="ci")
    newer = _sync(store, target, second_week.sweep_id)
    older = _sync(store, target, first_week.sweep_id)

    assert newer.created == 1 + len(second_week.candidates) and older.created == 0
    assert len(_runs(client, promoted.experiment_id)) == len(runs) + newer.created
    champion = client.get_model_version_by_alias(target.model_name, "champion")
    assert champion.run_id == newer.candidate_runs[week_2] and champion.version == newer.model_versions[0][1]
    assert older.model_versions == promoted.model_versions  # week 1's version stays, without the alias
    assert len(client.search_model_versions(f"name = '{target.model_name}'")) == 2


def test_candidates_without_a_sweep_are_runs_of_their_own(
    mlflow_server: MlflowServer, store: DatasetStore, tmp_path: Path
) -> None:
    from evalgate.tracking.mlflow_sync import sync_candidates

    seeded = seed_weekly_sweep(store, tmp_path)
    chosen = sorted(seeded.candidates.values())[:2]
    target = _target(mlflow_server)

    report = sync_candidates(store.sessions, target, chosen)
    repeat = sync_candidates(store.sessions, target, chosen)

    runs = _runs(mlflow_server.client(), report.experiment_id)
    assert (report.created, repeat.created, report.parent_run_id) == (2, 0, None)
    assert sorted(int(run.data.tags["evalgate.candidate_id"]) for run in runs) == chosen
    assert all("mlflow.parentRunId" not in run.data.tags for run in runs)


@pytest.mark.parametrize("kind", ["refused", "unknown scheme"])
def test_a_dead_or_bad_tracking_uri_is_a_warning_and_the_caller_goes_on(
    kind: str, tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    require_mlflow()
    with ServerPort() as port:  # bound, never listening: connections are refused
        uri = port.url if kind == "refused" else "nowhere+bogus://tracking"
        settings = Settings(home=tmp_path / "home", database_url=database_url, mlflow_tracking_uri=uri)
        store = DatasetStore.from_settings(settings)
        seeded = seed_weekly_sweep(store, tmp_path, gate=False)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="evalgate.tracking"):
            report = sync_if_configured(settings, sweep_id=seeded.sweep_id, sessions=store.sessions)
        elapsed = time.monotonic() - started

    assert report is None and elapsed < 30
    (warning,) = [r for r in caplog.records if r.name == "evalgate.tracking"]
    assert warning.levelno == logging.WARNING
    assert f"MLflow sync of sweep {seeded.sweep_id} to {uri} failed" in warning.getMessage()
    if kind == "refused":
        assert "does not answer" in warning.getMessage()
