"""The artifact disk fills up while a sweep writes its adapters: the job fails naming the disk, the
database holds no trained candidate without its complete adapter folder, and once space is freed the
same sweep submitted again finishes.

The artifact root is a small tmpfs mounted for the test (root only): sized, after the dataset upload,
to what the dataset takes plus one page, so the import fits but no adapter does. Where mounting is not
permitted the test is skipped, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalgate.core.settings import Settings
from evalgate.modeling.loading import model_fingerprint
from tests.api.service import sweep_config
from tests.reliability.figures import record
from tests.reliability.workers import served, sweep_ids, sweep_state, wait_to_end

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]  # fmt: skip

RATES = [1e-3, 2e-3]
PAGE = 4096


def _mount(folder: Path, size: int, remount: bool = False) -> None:
    options = f"{'remount,' if remount else ''}size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True,
                   capture_output=True, text=True)  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs at ``tmp_path/artifacts`` (64 KiB until resized), unmounted afterwards whatever happens."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    try:
        _mount(folder, 16 * PAGE)
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        reason = f"cannot mount a tmpfs: {getattr(error, 'stderr', '') or error}"
        if os.environ.get("CI"):
            pytest.fail(f"the disk-full test must run in CI: {reason}")
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _used_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def _consistency_problems(settings: Settings, disk: Path, sweep_id: int) -> list[str]:
    """Trained candidates whose adapter folder is missing, partial or not the one registered, and
    adapter folders (or half-written ones) on disk that no trained candidate owns."""
    state = sweep_state(settings, sweep_id)
    root = disk / "sweeps" / str(sweep_id)
    trained = {c["adapter_uri"]: c for c in state["candidates"] if c["status"] == "trained"}
    problems = []
    for uri, candidate in trained.items():
        if not Path(uri).is_dir() or candidate["adapter_hash"] != model_fingerprint(uri):
            problems.append(f"candidate {candidate['id']}: adapter {uri} missing or not as recorded")
    on_disk = {str(path) for path in root.glob("*/adapter*")}
    if on_disk - set(trained):
        problems.append(f"adapter folders no trained candidate owns: {sorted(on_disk - set(trained))}")
    if stuck := [c for c in state["candidates"] if c["status"] in ("training", "pending")]:
        problems.append(f"candidates left as if still training: {stuck}")
    return problems


def test_a_full_artifact_disk_fails_the_sweep_naming_the_disk_and_a_retry_succeeds(
    settings: Settings, tmp_path: Path, tiny_lm_dir: Path, small_disk: Path
) -> None:
    env = {"EVALGATE_ARTIFACT_ROOT": str(small_disk)}
    with served(settings, tmp_path, env) as (running, client):
        _mount(small_disk, _used_bytes(small_disk) + PAGE, remount=True)  # the dataset fits, no adapter
        running.start("worker", "worker", "--name", "w1")
        # no checkpoint before the end: the first thing written to the full disk is an adapter
        config = {**sweep_config(tiny_lm_dir, 4), "learning_rates": RATES, "checkpoint_every": 100}
        failed = wait_to_end(client, client.submit_sweep(config)["id"])
        full_state, full_problems = _after(settings, small_disk, failed)

        _mount(small_disk, 1024 * PAGE, remount=True)  # space freed: the same sweep again
        retried = wait_to_end(client, client.submit_sweep(config)["id"])
        retry_state, retry_problems = _after(settings, small_disk, retried)

    reason = str(failed["error"])
    named = all(part in reason for part in ("No space left on device", str(small_disk), "adapter of lr="))
    survived = (failed["status"] == "failed" and named and full_state.get("status") == "failed"
                and not full_problems and retried["status"] == "succeeded" and not retry_problems
                and retry_state.get("status") == "finished")  # fmt: skip
    record("fault", "artifact disk full during adapter write", injected=1, survived=int(survived))
    assert failed["status"] == "failed", failed
    assert named, reason
    assert reason in failed["log_tail"] or "No space left on device" in failed["log_tail"]
    assert full_state["status"] == "failed" and full_problems == []
    assert all("No space left on device" in c["error"] for c in full_state["candidates"])
    assert retried["status"] == "succeeded", retried
    assert retried["result"]["sweep_id"] == full_state["id"]
    assert retry_problems == [] and retry_state["status"] == "finished"
    assert [c["status"] for c in retry_state["candidates"]] == ["trained"] * len(RATES)


def _after(settings: Settings, disk: Path, job: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The sweep the job worked on (found by the one sweep in the database) and its problems."""
    ids = sweep_ids(settings)
    if len(ids) != 1:
        return {}, [f"sweeps {ids} after job {job['id']}, expected exactly one"]
    state = {"id": ids[0], **sweep_state(settings, ids[0])}
    return state, _consistency_problems(settings, disk, ids[0])
