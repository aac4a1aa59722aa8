"""A worker with a tracking URI mirrors what its job stored into MLflow: the sweep it trained (a parent
run with a child run per candidate), on a live ``mlflow server``, and says so in the job's log."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import Job
from evalgate.db.session import session_scope
from evalgate.service import jobs
from evalgate.service.handlers import SWEEP, handlers
from evalgate.service.worker import Worker
from tests.evalgate.tracking.conftest import MlflowServer
from tests.support.tiny_sweep import tiny_sweep_config, train_rows


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_mirrors_the_sweep_it_trained(
    mlflow_server: MlflowServer, settings: Settings, store: DatasetStore, tiny_lm_dir: Path, write_jsonl: Any
) -> None:
    dataset = store.add("tiny-suite", [write_jsonl("rows.jsonl", train_rows())]).version.label
    experiment = f"worker-{uuid.uuid4().hex[:8]}"
    tracked = settings.model_copy(update={"mlflow_tracking_uri": mlflow_server.url,
                                          "mlflow_experiment": experiment})  # fmt: skip
    config = tiny_sweep_config(tiny_lm_dir, dataset=dataset, max_steps=2)
    job_id = jobs.enqueue(store.sessions, SWEEP, {"config": config.to_dict()})

    assert Worker(store.sessions, handlers(tracked), name="w1").run(once=True) == 1

    with session_scope(store.sessions) as session:
        job = session.get_one(Job, job_id)
        status, result, log_tail = job.status, dict(job.result or {}), job.log_tail
    assert status == "succeeded", log_tail
    client = mlflow_server.client()
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}: {log_tail}"
    runs = client.search_runs([found.experiment_id])
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.data.tags["evalgate.sweep_id"] == str(result["sweep_id"])
    assert len(children) == len(config.learning_rates) == len(runs) - 1
    assert f"mlflow: {len(runs)} run(s) in experiment {found.experiment_id}" in log_tail
