"""The worker's promises with real handlers: a real sweep (the tiny model, real LoRA training) and a
real evaluation (real generation), no stand-ins for the job's work.

- SIGTERM to an ``evalgate worker`` process mid-sweep: it checkpoints and hands the job back; a second
  process resumes from the checkpoint and finishes it, training only the steps that were left.
- A cancelled sweep or evaluation stops after the training step or generation batch that was in
  flight when its worker learned of the cancel, and leaves no adapter, run, score or answer behind.
- A worker whose lease ran out and was taken by another stops its handler at its next step instead
  of finishing the job a second time; the other worker finishes it once.

The in-process tests hold one chosen training step or generation batch (``tests.support.held_calls``)
so that what was in flight is known exactly; every wait is on a condition, with a generous deadline.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate, EvaluationRun, Generation, Job, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.modeling import generation
from evalgate.service import jobs
from evalgate.service.handlers import EVALUATE, SWEEP, handlers
from evalgate.service.worker import Handler, JobContext, Worker
from evalgate.sweep.run import run_sweep
from evalgate.sweep.training.fused import CHECKPOINT_FILE
from tests.api.service import Service
from tests.support.held_calls import HeldCall, wait_until
from tests.support.tiny_sweep import tiny_sweep_config, train_rows

pytestmark = pytest.mark.slow

RATES = (1e-3, 3e-2)
COUNTED_WORKER = Path(__file__).resolve().parents[2] / "support" / "counted_worker"
FAST_HEARTBEAT = 0.2
"""Heartbeat of the in-process workers: a cancel or a lost lease is seen within a fraction of a second."""


# ------------------------------------------------------------------------------------------ helpers


def job_state(sessions: sessionmaker[Session], job_id: int) -> dict[str, Any]:
    """The job row as plain values."""
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        return {"status": job.status, "attempts": job.attempts, "locked_by": job.locked_by,
                "error": job.error, "result": job.result, "progress": dict(job.progress or {}),
                "log_tail": job.log_tail}  # fmt: skip


def task_counts(job: dict[str, Any]) -> dict[str, float]:
    """The job's recorded progress: units done per task name."""
    return {task["name"]: task["completed"] for task in job["progress"].get("tasks", [])}


def sweep_rows(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """Every sweep with its candidates (rate, status, error, training curves), oldest first."""
    with session_scope(sessions) as session:
        found = []
        for sweep in session.scalars(select(Sweep).order_by(Sweep.id)).all():
            candidates = session.scalars(
                select(Candidate).where(Candidate.sweep_id == sweep.id).order_by(Candidate.learning_rate)
            ).all()
            rows = [{"rate": c.learning_rate, "status": c.status, "error": c.error,
                     "adapter_uri": c.adapter_uri, "training": dict(c.training or {})}
                    for c in candidates]  # fmt: skip
            found.append({"id": sweep.id, "status": sweep.status, "candidates": rows})
        return found


def row_count(sessions: sessionmaker[Session], model: type[Any]) -> int:
    with session_scope(sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def sweep_root(settings: Settings, sweep_id: int) -> Path:
    return Path(settings.resolved_artifact_root) / "sweeps" / str(sweep_id)


def checkpoint(settings: Settings, sweep_id: int) -> dict[str, Any]:
    """The fused trainer's checkpoint of the sweep: its step and per-rate loss curves."""
    state = torch.load(
        sweep_root(settings, sweep_id) / CHECKPOINT_FILE, map_location="cpu", weights_only=False
    )
    return {"step": state["step"], "losses": [curve["losses"] for curve in state["curves"]]}


def adapter_folders(settings: Settings, sweep_id: int) -> list[str]:
    return sorted(path.parent.name for path in sweep_root(settings, sweep_id).glob("*/adapter"))


def sweep_payload(tiny_lm_dir: Path, dataset: str, steps: int) -> dict[str, Any]:
    """A sweep job's payload: both rates, fused training on CPU, checkpoints every 2 steps."""
    config = tiny_sweep_config(tiny_lm_dir, dataset=dataset, learning_rates=RATES, max_steps=steps)
    return {"config": config.to_dict()}


def interrupted_at(step: int) -> str:
    """The error a candidate is left with when its training stopped after ``step``."""
    return f"interrupted at step {step}; checkpoint saved"


def claim_when_runnable(sessions: sessionmaker[Session], worker: str) -> jobs.ClaimedJob:
    """Claim a job for ``worker`` as soon as one is runnable (a requeued job waits out its back-off)."""
    claimed: list[jobs.ClaimedJob] = []

    def claim() -> bool:
        job = jobs.claim(sessions, worker)
        claimed.extend([job] if job is not None else [])
        return job is not None

    wait_until(claim, f"{worker} to claim a job")
    return claimed[0]


class InProcessWorker:
    """A real ``Worker`` with the real handlers, run in a thread; remembers each job's context, so a
    test can see when the worker has learned that its job must stop."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, name: str, **timing: float):
        self.contexts: list[JobContext] = []
        real = handlers(settings)
        wrapped = {kind: self._remembering(handler) for kind, handler in real.items()}
        self.worker = Worker(sessions, wrapped, name=name, **timing)
        self.thread = threading.Thread(target=self.worker.run, kwargs={"once": True}, name=name)

    def _remembering(self, handler: Handler) -> Handler:
        def run(context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
            self.contexts.append(context)
            return handler(context, payload)

        return run

    def stop_reason(self) -> str | None:
        """Why the worker's (first) job must stop, as the worker knows it; None while it may go on."""
        return self.contexts[0].stop_reason if self.contexts else None

    def finish(self, timeout: float = 180) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"worker {self.worker.name} still running after {timeout} s"


@pytest.fixture
def dataset(store: DatasetStore, write_jsonl: Any) -> str:
    """24 train rows and one eval row, as ``tiny-suite@v1``."""
    return store.add("tiny-suite", [write_jsonl("rows.jsonl", train_rows())]).version.label


@pytest.fixture
def held_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldCall]:
    """Every optimizer step of this process counted; step 5 held until released."""
    gate = HeldCall(hold_at=5)
    monkeypatch.setattr(torch.optim.AdamW, "step", gate.wrap(torch.optim.AdamW.step))
    yield gate
    gate.release()  # a failed test must not leave a worker thread waiting


# ----------------------------------------------------------------------------- SIGTERM, two processes


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    """``evalgate worker`` processes on the test's database and home, counting their optimizer steps
    (``tests/support/counted_worker``) in ``<tmp>/steps.log``; stopped at the end."""
    running = Service(settings, tmp_path)
    path = [str(COUNTED_WORKER), running.env.get("PYTHONPATH", "")]
    running.env.update({"PYTHONPATH": ":".join(filter(None, path)),
                        "EVALGATE_TEST_STEP_LOG": str(tmp_path / "steps.log")})  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


def steps_by_process(log: Path) -> dict[int, int]:
    """Optimizer steps per process id, from the counted workers' step log."""
    counts: dict[int, int] = {}
    for line in log.read_text().split():
        counts[int(line)] = counts.get(int(line), 0) + 1
    return counts


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_sigterm_mid_sweep_hands_the_job_back_and_a_second_worker_resumes_it(
    processes: Service, store: DatasetStore, settings: Settings, tiny_lm_dir: Path, dataset: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    steps = 16
    sessions = store.sessions
    processes.env["EVALGATE_TEST_SECONDS_PER_STEP"] = "0.4"  # 16 steps take >6 s: the signal lands mid-way
    first = processes.start("worker-1", "worker", "--name", "w1")
    job_id = jobs.enqueue(sessions, SWEEP, sweep_payload(tiny_lm_dir, dataset, steps))

    def trained_three_steps() -> bool:
        job = job_state(sessions, job_id)
        assert job["status"] == "running" or job["status"] == "queued", job
        counts = task_counts(job)
        return len(counts) == len(RATES) and min(counts.values()) >= 3

    wait_until(trained_three_steps, "w1 to record 3 training steps")
    first.send_signal(signal.SIGTERM)
    assert first.wait(120) == 0

    handed_back = job_state(sessions, job_id)
    assert (handed_back["status"], handed_back["attempts"], handed_back["locked_by"]) == ("queued", 0, None)
    assert handed_back["error"] == "worker shut down; queued again"
    (sweep,) = sweep_rows(sessions)
    saved = checkpoint(settings, sweep["id"])
    stopped_at = saved["step"]
    assert 3 <= stopped_at < steps
    assert sweep["status"] == "interrupted"
    assert [(c["rate"], c["status"], c["error"]) for c in sweep["candidates"]] == [
        (rate, "pending", interrupted_at(stopped_at)) for rate in RATES
    ]
    assert [len(losses) for losses in saved["losses"]] == [stopped_at] * len(RATES)
    assert adapter_folders(settings, sweep["id"]) == []
    assert steps_by_process(tmp_path / "steps.log") == {first.pid: stopped_at}

    processes.env["EVALGATE_TEST_SECONDS_PER_STEP"] = "0"
    second = processes.start("worker-2", "worker", "--name", "w2")
    wait_until(lambda: job_state(sessions, job_id)["status"] in jobs.TERMINAL, "w2 to finish the job", 240)

    done = job_state(sessions, job_id)
    (finished,) = sweep_rows(sessions)
    assert (done["status"], done["attempts"], done["locked_by"]) == ("succeeded", 1, "w2"), done
    assert done["result"]["sweep_id"] == sweep["id"] and finished["status"] == "finished"
    assert [c["rate"] for c in done["result"]["candidates"]] == list(RATES)
    for candidate, losses_before in zip(finished["candidates"], saved["losses"], strict=True):
        assert candidate["status"] == "trained" and candidate["error"] is None
        assert candidate["training"]["steps"] == steps and len(candidate["training"]["loss"]) == steps
        assert candidate["training"]["loss"][:stopped_at] == losses_before  # w1's steps kept, not redone
    assert adapter_folders(settings, sweep["id"]) == [f"lr-{rate:g}" for rate in RATES]
    assert steps_by_process(tmp_path / "steps.log") == {first.pid: stopped_at, second.pid: steps - stopped_at}


# ------------------------------------------------------------------------------------------- cancel


def cancel_while_held(
    sessions: Any, job_id: int, worker: InProcessWorker, held: HeldCall, never_held: str
) -> None:
    """Start ``worker``; once ``held`` holds its call, cancel the job, let the call go when the
    worker has seen the cancel, and wait for the worker to end."""
    worker.thread.start()
    try:
        assert held.held.wait(180), never_held
        assert jobs.request_cancel(sessions, job_id) == "cancelling"
        wait_until(lambda: worker.stop_reason() == "cancel", "the worker to see the cancel")
    finally:
        held.release()
    worker.finish()


def test_a_cancelled_sweep_stops_after_the_step_in_flight_and_keeps_only_its_checkpoint(
    store: DatasetStore, settings: Settings, tiny_lm_dir: Path, dataset: str, held_steps: HeldCall
) -> None:
    sessions = store.sessions
    job_id = jobs.enqueue(sessions, SWEEP, sweep_payload(tiny_lm_dir, dataset, steps=12))
    worker = InProcessWorker(sessions, settings, "w1", heartbeat_seconds=FAST_HEARTBEAT)
    cancel_while_held(sessions, job_id, worker, held_steps, "training never reached step 5")

    job = job_state(sessions, job_id)
    (sweep,) = sweep_rows(sessions)
    assert (job["status"], job["error"], job["result"]) == ("cancelled", "cancelled by request", None)
    assert held_steps.calls == 5  # step 5 was in flight; no step began after it
    assert task_counts(job) == {f"lr={rate:g}": 5 for rate in RATES}
    assert sweep["status"] == "interrupted"
    assert [(c["status"], c["error"], c["adapter_uri"]) for c in sweep["candidates"]] == [
        ("pending", interrupted_at(5), None)
    ] * len(RATES)
    saved = checkpoint(settings, sweep["id"])
    assert saved["step"] == 5 and [len(losses) for losses in saved["losses"]] == [5, 5]
    assert sorted(path.name for path in sweep_root(settings, sweep["id"]).iterdir()) == [CHECKPOINT_FILE]


EVAL_ROWS = 12
BATCH = 2


@pytest.fixture
def trained_sweep(store: DatasetStore, settings: Settings, tiny_lm_dir: Path, write_jsonl: Any) -> int:
    """A sweep of one rate trained for 2 steps on a dataset with ``EVAL_ROWS`` eval rows; its id."""
    rows = [row for row in train_rows() if row["split"] == "train"]
    rows += [{"id": f"e{i}", "question": f"Extract the order number {i}.", "context": f"Order {i} for Bo.",
              "reference": "x", "split": "eval"} for i in range(EVAL_ROWS)]  # fmt: skip
    label = store.add("tiny-eval", [write_jsonl("eval.jsonl", rows)]).version.label
    config = tiny_sweep_config(tiny_lm_dir, dataset=label, learning_rates=(1e-3,), max_steps=2)
    return run_sweep(config, settings, show_progress=False).sweep_id


def test_a_cancelled_evaluation_stops_after_the_batch_in_flight_and_stores_nothing(
    store: DatasetStore, settings: Settings, trained_sweep: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = store.sessions
    held = HeldCall(hold_at=3)
    monkeypatch.setattr(generation, "greedy_decode", held.wrap(generation.greedy_decode))
    options = {"evaluators": ["exact_match"], "max_new_tokens": 4, "batch_size": BATCH, "device": "cpu",
               "precision": "fp32"}  # fmt: skip
    job_id = jobs.enqueue(sessions, EVALUATE, {"sweep_id": trained_sweep, "options": options})
    worker = InProcessWorker(sessions, settings, "w1", heartbeat_seconds=FAST_HEARTBEAT)
    cancel_while_held(sessions, job_id, worker, held, "generation never reached batch 3")

    job = job_state(sessions, job_id)
    assert (job["status"], job["error"], job["result"]) == ("cancelled", "cancelled by request", None)
    assert held.calls == 3  # batch 3 was in flight; no batch began after it
    # the base model and the candidate answer each batch of BATCH prompts together (stacked adapters)
    (generate,) = job["progress"]["tasks"]
    answered = (generate["name"], generate["completed"], generate["total"])
    assert answered == ("generate", 3 * BATCH * 2, 2 * EVAL_ROWS)
    assert [row_count(sessions, model) for model in (EvaluationRun, RowScore, Generation)] == [0, 0, 0]


# ------------------------------------------------------------------------------------------ lost lease


def test_a_worker_whose_lease_was_taken_stops_and_the_new_owner_finishes_the_job_once(
    store: DatasetStore, settings: Settings, tiny_lm_dir: Path, dataset: str, held_steps: HeldCall
) -> None:
    steps = 12
    lease = 1.0  # the reclaiming worker's lease: shorter than w-a's heartbeat interval, so it runs out
    sessions = store.sessions
    job_id = jobs.enqueue(sessions, SWEEP, sweep_payload(tiny_lm_dir, dataset, steps))
    first = InProcessWorker(sessions, settings, "w-a", heartbeat_seconds=2.0)
    first.thread.start()
    try:
        assert held_steps.held.wait(180), "training never reached step 5"
        # w-b, as Worker.run_one does: reclaim abandoned jobs, then claim (after the retry back-off)
        wait_until(lambda: jobs.reclaim_abandoned(sessions, lease) == [job_id], "w-a's lease to run out")
        claimed = claim_when_runnable(sessions, "w-b")
        wait_until(lambda: first.stop_reason() == "lost", "w-a to find its lease taken")
    finally:
        held_steps.release()
    first.finish()

    taken = job_state(sessions, job_id)
    (sweep,) = sweep_rows(sessions)
    assert held_steps.calls == 5  # w-a finished the step in flight and began no other
    assert (taken["status"], taken["locked_by"], taken["attempts"]) == ("running", "w-b", 2)
    assert taken["result"] is None
    assert [c["status"] for c in sweep["candidates"]] == ["pending"] * len(RATES)
    assert adapter_folders(settings, sweep["id"]) == []

    second = Worker(sessions, handlers(settings), name="w-b", heartbeat_seconds=FAST_HEARTBEAT)
    second.execute(claimed)

    done = job_state(sessions, job_id)
    (finished,) = sweep_rows(sessions)
    assert (done["status"], done["locked_by"], done["attempts"]) == ("succeeded", "w-b", 2)
    assert "worker w-a stopped heartbeating" in done["log_tail"]
    assert held_steps.calls == steps  # w-b resumed from w-a's step-5 checkpoint: 7 more steps, not 12
    assert finished["id"] == sweep["id"] and finished["status"] == "finished"
    assert [(c["status"], c["training"]["steps"]) for c in finished["candidates"]] == [("trained", steps)] * 2
    assert adapter_folders(settings, sweep["id"]) == [f"lr-{rate:g}" for rate in RATES]
