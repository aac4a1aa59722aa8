"""The service for real: `evalgate serve` and `evalgate worker` processes on PostgreSQL, driven over
HTTP by the Python client as a training pipeline would; a worker killed mid-sweep loses nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalgate.client import ApiError, Client
from evalgate.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

LEASE_SECONDS = 4
ANSWERS = ['{"name": "Ann", "quantity": 3}', '{"name": "Bo", "quantity": 1}']
EVALUATION = {"evaluators": ["exact_match", "perplexity"], "max_new_tokens": 8, "batch_size": 4,
              "device": "cpu", "precision": "fp32"}  # fmt: skip


def _rows() -> list[dict[str, Any]]:
    train = [{"id": f"t{i}", "question": "Extract the order.", "context": f"Order {i}.",
              "reference": ANSWERS[i % 2], "split": "train"} for i in range(16)]  # fmt: skip
    target = [{"id": f"e{i}", "question": "Extract the order.", "context": f"Order {i}.",
               "reference": ANSWERS[i % 2], "split": "eval"} for i in range(6)]  # fmt: skip
    capitals = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome")]
    ood = [{"id": f"o{i}", "question": f"Capital of {country}?", "reference": city, "cohort": "ood",
            "split": "eval"} for i, (country, city) in enumerate(capitals)]  # fmt: skip
    return train + target + ood


def _sweep_config(tiny_lm_dir: Path, max_steps: int) -> dict[str, Any]:
    return {"name": "e2e", "dataset": "tiny-e2e@v1", "base_model": str(tiny_lm_dir), "learning_rates": [1e-3],
            "max_steps": max_steps, "batch_size": 4, "max_seq_length": 96, "checkpoint_every": 2,
            "precision": "fp32", "device": "cpu",
            "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """Starts evalgate processes with one environment; stops them all at the end."""

    def __init__(self, settings: Settings, logs: Path):
        self.env = {**os.environ, "EVALGATE_HOME": str(settings.home),
                    "EVALGATE_DATABASE_URL": settings.resolved_database_url,
                    "EVALGATE_JOB_LEASE_SECONDS": str(LEASE_SECONDS), "COLUMNS": "200"}  # fmt: skip
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "evalgate", *args], env=self.env, capture_output=True,
                              text=True, timeout=120, check=True)  # fmt: skip
        return done.stdout.strip()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "evalgate", *args], env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture
def service(settings: Settings, tmp_path: Path, tiny_lm_dir: Path) -> Iterator[tuple[Service, Client]]:
    """A served API (real uvicorn on loopback) and a client holding a write token made by the CLI."""
    running = Service(settings, tmp_path)
    port = _free_port()
    running.start("api", "serve", "--port", str(port))
    token = running.cli("tokens", "create", "pipeline", "--scope", "write")
    client = Client(f"http://127.0.0.1:{port}", token, retries=8, backoff=0.5)
    try:
        client.health()
        rows = tmp_path / "rows.jsonl"
        rows.write_text("".join(json.dumps(row) + "\n" for row in _rows()))
        assert client.upload_dataset("tiny-e2e", rows)["label"] == "tiny-e2e@v1"
        yield running, client
    finally:
        client.close()
        running.stop()


def test_a_pipeline_registers_an_adapter_gets_a_decision_and_promotes_or_is_refused(
    service: tuple[Service, Client], tiny_lm_dir: Path
) -> None:
    running, client = service
    running.start("worker", "worker", "--name", "w1")

    swept = client.wait_for_job(client.submit_sweep(_sweep_config(tiny_lm_dir, 8))["id"], timeout=300)
    (trained,) = swept["result"]["candidates"]
    candidate = client.register_candidate("pipeline-run-1", base_model=str(tiny_lm_dir),
                                          adapter_uri=trained["adapter_uri"], learning_rate=1e-3,
                                          training={"loss_curve": trained["training"]["loss"]})  # fmt: skip
    evaluated = client.wait_for_job(
        client.evaluate(candidate["id"], "tiny-e2e@v1", EVALUATION)["id"], timeout=300
    )
    strict = {"checks": [{"evaluator": "exact_match", "cohort": "target", "floor": 1.1}]}
    lenient = {"checks": [{"evaluator": "perplexity", "cohort": "target", "margin": 1e9}]}

    blocked = client.decide(candidate["id"], strict)
    with pytest.raises(ApiError) as refused:
        client.promote(candidate["id"])
    passed = client.decide(candidate["id"], lenient)
    promotion = client.promote(candidate["id"])

    assert [run["label"] for run in evaluated["result"]["runs"]][1:] == ["pipeline-run-1"]
    assert blocked["verdict"] == "block" and blocked["evidence"]["checks"][0]["verdict"] == "below_floor"
    assert refused.value.status == 409 and "exact_match/target" in str(refused.value.detail)
    check = passed["evidence"]["checks"][0]
    assert passed["verdict"] == "pass" and check["n"] == 6 and len(check["ci_95"]) == 2
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
    first = running.start("worker-1", "worker", "--name", "w1")
    job = client.submit_sweep(_sweep_config(tiny_lm_dir, 160))

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
