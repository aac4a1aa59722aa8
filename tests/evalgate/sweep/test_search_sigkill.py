"""A halved search over rate x schedule x warmup, killed with SIGKILL between two rungs of its fused run,
resumes from its checkpoint when the same command runs again and ends as a run never killed: the same
sweep, the same stopped trials at the same rungs, the same losses and the same adapters.

``evalgate sweep`` runs as a user runs it (a subprocess); each optimizer step of the killed one sleeps
(``tests/slow_worker``) so that the kill lands mid-run on any machine, and each process counts the
optimizer steps it takes (``tests/support/counted_worker``): the resumed one takes only those its
checkpoint did not hold. The run never killed trains in this process on a database of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from sqlalchemy import select

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.db.models import Sweep
from evalgate.db.session import session_scope
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.records import candidate_rows, sweep_root
from evalgate.sweep.run import run_sweep
from evalgate.sweep.training.fused import CHECKPOINT_FILE
from tests.support.tiny_sweep import train_rows

COUNTED_WORKER = Path(__file__).resolve().parents[2] / "support" / "counted_worker"
STEPS = 16
KILL_AFTER_STEP = 6
"""The kill waits for a checkpoint at this step or later: after rung 1 (step 4), before rung 2 (step 8)."""


def _config(tiny_lm_dir: Path) -> dict[str, Any]:
    return {
        "dataset": "tiny-suite", "name": "halved-search", "base_model": str(tiny_lm_dir), "max_steps": STEPS,
        "batch_size": 4, "max_seq_length": 96, "checkpoint_every": 2, "precision": "fp32", "device": "cpu",
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "search": {"learning_rate": [1e-3, 1e-2], "scheduler": ["constant", "cosine"],
                   "warmup_ratio": [0.0, 0.25]},
        "halving": {"grace_steps": 4, "reduction_factor": 2, "validation_share": 0.34},
    }  # fmt: skip


def _sweep(settings: Settings, config: Path, steps: Path, slow: float = 0.0) -> subprocess.Popen[bytes]:
    """``evalgate sweep CONFIG`` in a subprocess; it appends a line to ``steps`` per optimizer step."""
    env = {
        **os.environ, "EVALGATE_HOME": str(settings.home), "EVALGATE_DATABASE_URL": settings.database_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(COUNTED_WORKER), os.environ.get("PYTHONPATH")])),
        "EVALGATE_TEST_SECONDS_PER_STEP": str(slow), "EVALGATE_TEST_STEP_LOG": str(steps),
    }  # fmt: skip
    log = steps.with_suffix(".log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "evalgate", "sweep", str(config), "--no-progress"], env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _checkpoint_step(settings: Settings) -> int:
    """The step of the sweep's fused checkpoint; 0 while there is none (it is replaced atomically)."""
    found = list((Path(settings.resolved_artifact_root) / "sweeps").glob(f"*/{CHECKPOINT_FILE}"))
    if not found:
        return 0
    return int(torch.load(found[0], map_location="cpu", weights_only=False)["step"])


def _kill_between_rungs(process: subprocess.Popen[bytes], settings: Settings) -> None:
    """SIGKILL ``process`` once its checkpoint is at ``KILL_AFTER_STEP`` or later."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        step = _checkpoint_step(settings)
        if step >= KILL_AFTER_STEP:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint at step {KILL_AFTER_STEP} or later (exit code {process.poll()})")


def _outcomes(rows: list[dict[str, Any]]) -> dict[str, tuple[str, int, str]]:
    """name -> (status, steps, why halving stopped it) of each candidate."""
    return {
        row["name"]: (row["status"], row["training"]["steps"], row["training"].get("halted", ""))
        for row in rows
    }


def test_a_halved_search_killed_between_rungs_resumes_to_the_run_never_killed(
    tiny_lm_dir: Path, settings: Settings, store: DatasetStore, write_jsonl, tmp_path: Path
) -> None:
    rows = write_jsonl("rows.jsonl", train_rows(48))
    store.add("tiny-suite", [rows])
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(_config(tiny_lm_dir)))
    killed = _sweep(settings, config, tmp_path / "killed-steps", slow=0.4)
    _kill_between_rungs(killed, settings)
    step = _checkpoint_step(settings)  # the kill may have come after a later checkpoint than the one seen
    assert killed.returncode == -signal.SIGKILL and KILL_AFTER_STEP <= step < STEPS
    resumed = _sweep(settings, config, tmp_path / "resumed-steps")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "resumed-steps.log").read_text()
    assert len((tmp_path / "resumed-steps").read_text().splitlines()) == STEPS - step

    reference_home = tmp_path / "reference"
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade(reference_url)
    reference_settings = Settings(home=reference_home, database_url=reference_url)
    DatasetStore.from_settings(reference_settings).add("tiny-suite", [rows])
    never_killed = run_sweep(SweepConfig.from_yaml(config), reference_settings, show_progress=False)

    with session_scope(store.sessions) as session:
        (sweep_id,) = session.scalars(select(Sweep.id)).all()
    after = candidate_rows(store.sessions, sweep_id)
    assert (
        len(after) == 8 and not (sweep_root(settings, sweep_id) / CHECKPOINT_FILE).exists()
    )  # every trial recorded, the checkpoint cleared
    assert _outcomes(after) == _outcomes(never_killed.candidates)
    losses = {row["name"]: row["training"]["loss"] for row in never_killed.candidates}
    for row in after:
        assert row["training"]["loss"] == pytest.approx(losses[row["name"]], rel=1e-5), row["name"]
    statuses = sorted((status, steps) for status, steps, _ in _outcomes(after).values())
    assert statuses == [("stopped", 4)] * 4 + [("stopped", 8)] * 2 + [("trained", STEPS)] * 2
    expected = {row["name"]: row["adapter_uri"] for row in never_killed.candidates}
    for row in after:
        mine = load_file(str(Path(row["adapter_uri"]) / "adapter_model.safetensors"))
        theirs = load_file(str(Path(expected[row["name"]]) / "adapter_model.safetensors"))
        assert mine.keys() == theirs.keys()
        for key, tensor in mine.items():
            torch.testing.assert_close(tensor, theirs[key], rtol=1e-5, atol=1e-6, msg=f"{row['name']} {key}")
