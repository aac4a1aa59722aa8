"""The commands that sync, end to end with the tiny model: ``evalgate ci`` with a live MLflow server
mirrors the trained, evaluated, decided and promoted sweep (the alias on the promoted adapter, its files
as the version's artifacts); ``evalgate sweep`` with a tracking server that does not answer warns and
succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, EvaluationRun
from evalgate.db.session import session_scope
from evalgate.tracking.target import registered_model_name
from tests.api.service import EVALUATION, ServerPort, sweep_config, write_rows
from tests.evalgate.tracking.conftest import MlflowServer, require_mlflow

LENIENT = {"checks": [{"evaluator": "perplexity", "cohort": "target", "relative_margin": 0.05}]}
"""Passes a candidate trained on the tiny dataset: its target eval rows are training rows too, so
training lowers their perplexity."""


def _evalgate(
    settings: Settings, cwd: Path, tracking_uri: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EVALGATE_HOME": str(settings.home),
        "EVALGATE_DATABASE_URL": settings.resolved_database_url,
        "EVALGATE_MLFLOW_TRACKING_URI": tracking_uri,
        "EVALGATE_MLFLOW_EXPERIMENT": f"ci-{uuid.uuid4().hex[:8]}",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "evalgate", *args, "--no-progress"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=400,
    )  # fmt: skip


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_ci_job_mirrors_its_sweep_decisions_and_promotion(
    mlflow_server: MlflowServer, settings: Settings, tmp_path: Path, tiny_lm_dir: Path
) -> None:
    store = DatasetStore.from_settings(settings)
    store.add("tiny-e2e", [str(write_rows(tmp_path / "rows.jsonl"))])
    sweep = {k: v for k, v in sweep_config(tiny_lm_dir, 4).items() if k != "dataset"}
    job = {"dataset": "tiny-e2e@v1", "sweep": sweep, "policy": LENIENT, "evaluation": EVALUATION,
           "promote": True, "outputs": "out"}  # fmt: skip

    done = _evalgate(settings, tmp_path, mlflow_server.url, "ci", str(_write(tmp_path / "ci.yaml", job)))

    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    promoted_id = result["promoted"]["candidate_id"]
    assert f"at {mlflow_server.url} (2 new); registered " in done.stdout  # the sweep's run and its one rate's
    client = mlflow_server.client()
    version = client.get_model_version_by_alias(registered_model_name(str(tiny_lm_dir)), "champion")
    run = client.get_run(version.run_id)
    assert run.data.tags["evalgate.candidate_id"] == str(promoted_id)
    assert run.data.tags["evalgate.gate.verdict"] == "pass"
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["evalgate.sweep_id"] == str(result["sweep_id"])
    with session_scope(store.sessions) as session:
        candidate = session.get_one(Candidate, promoted_id)
        evaluation = session.scalars(
            select(EvaluationRun).where(EvaluationRun.candidate_id == promoted_id)
        ).one()
        adapter = Path(candidate.adapter_uri or "")
        assert len(client.get_metric_history(run.info.run_id, "train.loss")) == candidate.training["steps"]
        perplexity = evaluation.summary["deltas"]["perplexity"]["target"]["mean"]
    history = client.get_metric_history(run.info.run_id, "delta.perplexity.target")
    assert [(m.step, m.value) for m in history] == [(evaluation.id, perplexity)]
    files = sorted(p.name for p in adapter.iterdir() if p.is_file())
    assert (
        files
        and sorted(Path(a.path).name for a in client.list_artifacts(run.info.run_id, "adapter")) == files
    )


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sweep_with_a_tracking_server_that_does_not_answer_warns_and_succeeds(
    settings: Settings, tmp_path: Path, tiny_lm_dir: Path
) -> None:
    require_mlflow()
    store = DatasetStore.from_settings(settings)
    store.add("tiny-e2e", [str(write_rows(tmp_path / "rows.jsonl"))])
    config = _write(tmp_path / "sweep.yaml", sweep_config(tiny_lm_dir, 2))

    with ServerPort() as port:  # bound, never listening: connections are refused
        done = _evalgate(settings, tmp_path, port.url, "sweep", str(config))

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"MLflow sync of sweep 1 to {port.url} failed" in done.stderr and "does not answer" in done.stderr
    assert "results: " in done.stdout and "mlflow:" not in done.stdout
    with session_scope(store.sessions) as session:
        assert session.scalars(select(Candidate.status)).all() == ["trained"]
