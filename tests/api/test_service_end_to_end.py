"""The service for real: `evalgate serve` and `evalgate worker` processes on PostgreSQL, driven over
HTTP by the Python client as a training pipeline would; a worker killed mid-sweep loses nothing."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalgate.client import ApiError, Client
from evalgate.core.settings import Settings
from tests.api.service import EVALUATION, Service, sweep_config, write_rows

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


@pytest.fixture
def service(settings: Settings, tmp_path: Path, tiny_lm_dir: Path) -> Iterator[tuple[Service, Client]]:
    """A served API (real uvicorn on loopback) and a client holding a write token made by the CLI."""
    running = Service(settings, tmp_path)
    _, url = running.serve("api")
    token = running.cli("tokens", "create", "pipeline", "--scope", "write")
    client = Client(url, token, retries=8, backoff=0.5)
    try:
        client.health()
        assert (
            client.upload_dataset("tiny-e2e", write_rows(tmp_path / "rows.jsonl"))["label"] == "tiny-e2e@v1"
        )
        yield running, client
    finally:
        client.close()
        running.stop()


def test_a_pipeline_registers_an_adapter_gets_a_decision_and_promotes_or_is_refused(
    service: tuple[Service, Client], tiny_lm_dir: Path
) -> None:
    running, client = service
    running.start("worker", "worker", "--name", "w1")

    swept = client.wait_for_job(client.submit_sweep(sweep_config(tiny_lm_dir, 8))["id"], timeout=300)
    (trained,) = swept["result"]["candidates"]
    candidate = client.register_candidate("pipeline-run-1", base_model=str(tiny_lm_dir),
                                          adapter_uri=trained["adapter_uri"], learning_rate=1e-3,
                                          training={"loss_curve": trained["training"]["loss"]})  # fmt: skip
    evaluated = client.wait_for_job(
        client.evaluate(candidate["id"], "tiny-e2e@v1", EVALUATION)["id"], timeout=300
    )
    # Verdicts known from the data: no model answers a target row exactly in 8 new tokens (no JSON text
    # equal to '{"name": "Ann", "quantity": 3}' takes fewer than 11 tokens of the tiny model), so a
    # floor of 0.5 blocks; the target eval rows are training rows too, so training lowers their
    # perplexity, well inside a margin of 5% of the base model's.
    strict = {"checks": [{"evaluator": "exact_match", "cohort": "target", "floor": 0.5}]}
    lenient = {"checks": [{"evaluator": "perplexity", "cohort": "target", "relative_margin": 0.05}]}

    blocked = client.decide(candidate["id"], strict)
    with pytest.raises(ApiError) as refused:
        client.promote(candidate["id"])
    passed = client.decide(candidate["id"], lenient)
    promotion = client.promote(candidate["id"])

    assert [run["label"] for run in evaluated["result"]["runs"]][1:] == ["pipeline-run-1"]
    floor_check = blocked["evidence"]["checks"][0]
    assert blocked["verdict"] == "block" and floor_check["verdict"] == "below_floor"
    assert floor_check["candidate_mean"] == 0.0, "no reference fits in 8 new tokens"
    assert refused.value.status == 409 and "exact_match/target" in str(refused.value.detail)
    check = passed["evidence"]["checks"][0]
    assert passed["verdict"] == "pass" and check["n"] == 6 and len(check["ci_95"]) == 2
    assert check["candidate_mean"] < check["baseline_mean"], "training on these rows lowers their perplexity"
    assert promotion["candidate_id"] == candidate["id"] and promotion["decision_id"] == passed["id"]


def _wait_for_progress(client: Client, job_id: int, steps: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = client.job(job_id)["progress"].get("tasks", [])
        if tasks and tasks[-1]["completed"] >= steps:
            return
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} made no progress: {client.job(job_id)}")


def test_a_worker_killed_mid_sweep_leaves_a_job_another_worker_finishes(
    service: tuple[Service, Client], tiny_lm_dir: Path
) -> None:
    running, client = service
    first = running.start("worker-1", "worker", "--name", "w1", seconds_per_step=0.1)
    job = client.submit_sweep(sweep_config(tiny_lm_dir, 160))

    _wait_for_progress(client, job["id"], steps=4)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert client.job(job["id"])["status"] == "running"  # nobody knows yet; the lease will tell
    running.start("worker-2", "worker", "--name", "w2")
    finished = client.wait_for_job(job["id"], timeout=300)

    assert finished["attempts"] == 2 and finished["locked_by"] == "w2"
    assert "worker w1 stopped heartbeating" in finished["log_tail"]
    (candidate,) = finished["result"]["candidates"]
    assert candidate["status"] == "trained" and candidate["training"]["steps"] == 160


def test_the_example_pipeline_script_promotes_or_is_refused_by_exit_code(
    service: tuple[Service, Client], tiny_lm_dir: Path, tmp_path: Path
) -> None:
    import importlib.util

    from evalgate.core.paths import REPO_ROOT

    running, client = service
    running.start("worker", "worker", "--name", "w1")
    swept = client.wait_for_job(client.submit_sweep(sweep_config(tiny_lm_dir, 4))["id"], timeout=300)
    spec = importlib.util.spec_from_file_location("pipeline", REPO_ROOT / "examples" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    policies = {  # as in the test above: a floor no model reaches, a margin training stays inside
        "strict": "checks: [{evaluator: exact_match, cohort: target, floor: 0.5}]",
        "lenient": "checks: [{evaluator: perplexity, cohort: target, relative_margin: 0.05}]",
    }
    codes = {}
    for name, text in policies.items():
        policy = tmp_path / f"{name}.yaml"
        policy.write_text(text)
        codes[name] = pipeline.main([
            "--url", str(client.http.base_url), "--token", client.http.headers["Authorization"][7:],
            "--adapter", swept["result"]["candidates"][0]["adapter_uri"], "--name", f"{name}-run",
            "--base-model", str(tiny_lm_dir), "--dataset", "tiny-e2e@v1", "--policy", str(policy),
            "--evaluation", json.dumps(EVALUATION), "--timeout", "300",
        ])  # fmt: skip

    assert codes == {"strict": pipeline.EXIT_BLOCKED, "lenient": pipeline.EXIT_PROMOTED}
