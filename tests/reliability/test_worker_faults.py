"""A worker killed with SIGKILL mid-training or mid-evaluation: after the lease runs out, another worker
finishes the job, and what it leaves is complete and not duplicated.

Real `evalgate serve` and `evalgate worker` processes on PostgreSQL, the tiny model. The kill lands at a
point read off the job's own progress (a training step, a generation batch), never after a guessed
sleep. Complements the service suite's mid-sweep kill (one fused rate, checks the job finishes): here
two rates on both trainers, and the evaluation path, with every row the job stored counted.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from evalgate.client import Client
from evalgate.core.settings import Settings
from evalgate.modeling.loading import model_fingerprint
from evaluators import registry
from tests.api.service import ANSWERS, Service, sweep_config, tiny_rows
from tests.reliability.figures import record
from tests.reliability.workers import (
    evaluation_state,
    kill_hard,
    served,
    sweep_ids,
    sweep_state,
    wait_mid_task,
    wait_to_end,
)

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]  # fmt: skip

RATES = [1e-3, 2e-3]
STEPS = 16
EVALUATORS = ["exact_match", "perplexity"]


@pytest.fixture
def service(settings: Settings, tmp_path: Path) -> Any:
    with served(settings, tmp_path) as running:
        yield running


def _kill_and_finish(
    running: Service, client: Client, first: subprocess.Popen[bytes], job_id: int, task: str, at_least: int
) -> dict[str, Any]:
    """Kill worker w1 (``first``) once ``task`` of the job is under way, start w2, wait for the job to end."""
    wait_mid_task(client, job_id, task, at_least)
    kill_hard(first)
    running.start("worker-2", "worker", "--name", "w2")
    return wait_to_end(client, job_id)


def _retried_by_second_worker(job: dict[str, Any]) -> bool:
    """The job took two attempts, the second by w2, and its log says why the first ended."""
    return (
        job["status"] == "succeeded"
        and job["attempts"] == 2
        and job["locked_by"] == "w2"
        and "worker w1 stopped heartbeating" in job["log_tail"]
        and "queued again" in job["log_tail"]
    )


def _logged_steps(output_dir: Path) -> list[int]:
    """The steps the peft trainer logged a loss for, from its last checkpoint's history."""
    (checkpoint,) = sorted((output_dir / "checkpoints").glob("checkpoint-*"))
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [entry["step"] for entry in history if "loss" in entry]


def _training_problems(settings: Settings, sweep_id: int, trainer: str) -> list[str]:
    """What is missing or doubled in a finished sweep: candidates, adapter folders, loss curves."""
    state = sweep_state(settings, sweep_id)
    root = Path(settings.resolved_artifact_root) / "sweeps" / str(sweep_id)
    problems = []
    if state["status"] != "finished":
        problems.append(f"sweep status {state['status']}")
    if [c["rate"] for c in state["candidates"]] != RATES:
        problems.append(f"candidate rates {[c['rate'] for c in state['candidates']]}, expected {RATES}")
    folders = sorted(str(path) for path in root.glob("*/adapter"))
    if folders != sorted(str(root / f"lr-{rate:g}" / "adapter") for rate in RATES):
        problems.append(f"adapter folders {folders}")
    for candidate in state["candidates"]:
        training, uri = candidate["training"], candidate["adapter_uri"]
        if candidate["status"] != "trained" or uri != str(root / f"lr-{candidate['rate']:g}" / "adapter"):
            problems.append(f"candidate {candidate}")
        elif candidate["adapter_hash"] != model_fingerprint(uri):
            problems.append(f"{uri} does not hash to the recorded {candidate['adapter_hash']}")
        if training.get("steps") != STEPS or len(training.get("loss", [])) != STEPS:
            problems.append(f"rate {candidate['rate']}: {training.get('steps')} steps, "
                            f"{len(training.get('loss', []))} losses, expected {STEPS}")  # fmt: skip
        if trainer == "peft":
            steps = _logged_steps(root / f"lr-{candidate['rate']:g}")
            if steps != list(range(1, STEPS + 1)):
                problems.append(f"rate {candidate['rate']}: logged steps {steps}")
    return problems


@pytest.mark.parametrize("trainer", ["peft", "fused"])
def test_a_worker_killed_mid_training_leaves_one_complete_candidate_per_rate(
    service: tuple[Service, Client], settings: Settings, tiny_lm_dir: Path, trainer: str
) -> None:
    running, client = service
    first = running.start("worker-1", "worker", "--name", "w1", seconds_per_step=0.25)
    config = {**sweep_config(tiny_lm_dir, STEPS), "learning_rates": RATES, "trainer": trainer}
    job = client.submit_sweep(config)

    # peft trains the rates one after the other: kill during the second, once the first is stored
    killed_in = f"lr={RATES[-1]:g}" if trainer == "peft" else f"lr={RATES[0]:g}"
    finished = _kill_and_finish(running, client, first, job["id"], killed_in, at_least=3)

    sweep_id = (finished["result"] or {}).get("sweep_id", -1)
    problems = _training_problems(settings, sweep_id, trainer) if sweep_id > 0 else ["no result"]
    retried = _retried_by_second_worker(finished)
    record("fault", f"worker SIGKILL mid-training ({trainer})", injected=1,
           survived=int(retried and not problems and sweep_ids(settings) == [sweep_id]))  # fmt: skip
    assert retried, finished
    assert problems == []
    assert sweep_ids(settings) == [sweep_id]
    assert [c["rate"] for c in finished["result"]["candidates"]] == RATES


def _eval_rows(extra: int) -> list[dict[str, Any]]:
    """The tiny dataset with ``extra`` more target eval rows, so generation spans many batches."""
    more = [{"id": f"x{i}", "question": "Extract the order.", "context": f"Order {i}/{extra}.",
             "reference": ANSWERS[0], "split": "eval"} for i in range(extra)]  # fmt: skip
    return [*tiny_rows(), *more]


def _expected_scores(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One (row, evaluator) key per eval row each evaluator applies to (by its cohorts)."""
    keys = []
    for name in EVALUATORS:
        cohorts = registry.get(name).cohorts
        for row in rows:
            if row["split"] == "eval" and (cohorts is None or row.get("cohort", "target") in cohorts):
                keys.append((row["id"], name))
    return sorted(keys)


def _evaluation_problems(settings: Settings, job: dict[str, Any], models: list[int | None],
                         expected: list[tuple[str, str]]) -> list[str]:  # fmt: skip
    """What is missing, doubled or left half-written among the evaluation runs."""
    if job["status"] != "succeeded":
        return [f"job {job['status']}: {job['error']}"]
    runs = evaluation_state(settings)
    problems = [f"run {r['id']} left {r['status']}" for r in runs if r["status"] != "finished"]
    by_model = sorted((r["candidate_id"] or 0) for r in runs if r["status"] == "finished")
    if by_model != sorted(m or 0 for m in models):
        problems.append(f"finished runs per model {by_model}, expected one each of {models}")
    if sorted(r["id"] for r in runs) != sorted(r["run_id"] for r in job["result"]["runs"]):
        problems.append(f"stored runs {[r['id'] for r in runs]} are not the job's {job['result']['runs']}")
    for run in runs:
        if sorted(run["scores"]) != expected:
            problems.append(f"run {run['id']}: {len(run['scores'])} scores, expected {len(expected)}")
    return problems


def test_a_worker_killed_mid_evaluation_leaves_one_complete_run_per_model(
    service: tuple[Service, Client], settings: Settings, tiny_lm_dir: Path, tmp_path: Path
) -> None:
    running, client = service
    rows = _eval_rows(extra=40)
    (tmp_path / "many.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    client.upload_dataset("tiny-many", tmp_path / "many.jsonl")
    first = running.start("worker-1", "worker", "--name", "w1", seconds_per_step=0.1)
    config = {**sweep_config(tiny_lm_dir, 4), "dataset": "tiny-many@v1", "learning_rates": RATES}
    swept = client.wait_for_job(client.submit_sweep(config)["id"], timeout=300)
    candidates = [c["id"] for c in swept["result"]["candidates"]]
    options = {"evaluators": EVALUATORS, "max_new_tokens": 12, "batch_size": 1, "device": "cpu",
               "precision": "fp32"}  # fmt: skip
    job = client.evaluate_sweep(swept["result"]["sweep_id"], options)

    models = [None, *candidates]
    finished = _kill_and_finish(running, client, first, job["id"], "generate", at_least=3 * len(models))

    problems = _evaluation_problems(settings, finished, models, _expected_scores(rows))
    retried = _retried_by_second_worker(finished)
    record("fault", "worker SIGKILL mid-evaluation", injected=1, survived=int(retried and not problems))
    assert retried, finished
    assert problems == []
