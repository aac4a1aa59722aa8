"""The Ray Tune sweep trains the plain sweep's candidates as trials, resumes, and early-stops with ASHA.

Runs a local Ray on the machine's CPUs with the tiny model, on SQLite only (the database work is the
plain sweep's, tested on both databases in test_sweep.py). Without Ray installed these tests are
skipped, except under CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from sqlalchemy import update

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.models import Candidate
from evalgate.db.session import session_scope
from evalgate.modeling.loading import load_model
from evalgate.sweep import ray_tune as ray_sweep
from evalgate.sweep.run import run_sweep
from tests.support.tiny_sweep import tiny_sweep_config

if importlib.util.find_spec("ray") is None and not os.environ.get("CI"):
    pytest.skip("Ray is not installed: pip install 'evalgate[ray]'", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

ANSWERS = ['{"name": "Ann", "quantity": 3}', '{"name": "Bo", "quantity": 1}', "Paris.", "Blue."]


def _rows(count: int, split: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{split}{i}",
            "question": f"Extract the order number {i}.",
            "context": f"Order {i} for Ann.",
            "reference": ANSWERS[i % len(ANSWERS)],
            "split": split,
        }
        for i in range(count)
    ]


@pytest.fixture
def dataset(store: DatasetStore, write_jsonl) -> str:
    rows = _rows(24, "train") + _rows(8, "validation")
    return store.add("tiny-suite", [write_jsonl("rows.jsonl", rows)]).version.label


@pytest.fixture(scope="module")
def shared_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray for the tests that ask for it (the first test starts and stops its own)."""
    with ray_sweep.local_ray(tmp_path_factory.mktemp("ray-home"), {"cpu": 1}):
        yield


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[float]]]:
    """The rates of every Ray experiment the driver launches."""
    calls: list[list[float]] = []
    real_fit = ray_sweep._fit

    def spy(inputs: Any, rates: list[float], *args: Any) -> Any:
        calls.append(list(rates))
        return real_fit(inputs, rates, *args)

    monkeypatch.setattr(ray_sweep, "_fit", spy)
    yield calls


def _weights(adapter_uri: str) -> dict[str, torch.Tensor]:
    return load_file(Path(adapter_uri) / "adapter_model.safetensors")


def test_ray_trials_give_the_plain_sweeps_candidates(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    result = ray_sweep.run_sweep_ray(tiny_sweep_config(tiny_lm_dir), settings)
    plain = run_sweep(tiny_sweep_config(tiny_lm_dir, name="plain"), settings, show_progress=False)

    assert [c["rate"] for c in result.candidates] == [1e-3, 3e-2]
    assert all(c["status"] == "trained" and c["training"]["steps"] == 6 for c in result.candidates)
    for ray_candidate, plain_candidate in zip(result.candidates, plain.candidates, strict=True):
        assert ray_candidate["training"]["loss"] == pytest.approx(
            plain_candidate["training"]["loss"], rel=1e-4
        )
        ray_weights, plain_weights = (
            _weights(ray_candidate["adapter_uri"]),
            _weights(plain_candidate["adapter_uri"]),
        )
        assert all(torch.allclose(ray_weights[k], plain_weights[k], atol=1e-5) for k in plain_weights)
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir)
    prompt = tokenizer("Extract the order", return_tensors="pt")
    with torch.no_grad():
        before = base(**prompt).logits
        after = PeftModel.from_pretrained(base, result.candidates[1]["adapter_uri"])(**prompt).logits
    assert not torch.allclose(before, after, atol=1e-5)


@pytest.mark.usefixtures("shared_ray")
def test_rerun_trains_only_unfinished_candidates(
    tiny_lm_dir: Path, settings: Settings, store: DatasetStore, dataset: str, launched: list[list[float]]
) -> None:
    first = run_sweep(
        tiny_sweep_config(tiny_lm_dir), settings, show_progress=False
    )  # same config: same sweep
    again = ray_sweep.run_sweep_ray(tiny_sweep_config(tiny_lm_dir), settings)
    with session_scope(store.sessions) as session:
        session.execute(update(Candidate).where(Candidate.learning_rate == 3e-2).values(status="failed"))
    third = ray_sweep.run_sweep_ray(tiny_sweep_config(tiny_lm_dir), settings)

    assert launched == [[3e-2]]
    assert again.resumed and again.sweep_id == first.sweep_id
    assert [c["training"] for c in again.candidates] == [c["training"] for c in first.candidates]
    assert third.candidates[0]["training"] == first.candidates[0]["training"]
    assert third.candidates[1]["status"] == "trained" and third.candidates[1]["training"]["steps"] == 6


@pytest.mark.usefixtures("shared_ray")
def test_asha_stops_the_worse_trial_and_keeps_its_adapter(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    # one trial at a time, the better rate first: at the first rung the slow rate is compared with it
    config = tiny_sweep_config(tiny_lm_dir, learning_rates=[3e-2, 1e-4], max_steps=8)

    result = ray_sweep.run_sweep_ray(config, settings, asha=True, max_concurrent=1)

    stopped, full = (candidate["training"] for candidate in result.candidates)
    assert [c["status"] for c in result.candidates] == ["trained", "trained"]
    assert full["steps"] == 8 and full["eval_step"] == [2, 4, 6, 8] and "stopped_by" not in full
    assert stopped["steps"] == 2 and stopped["eval_step"] == [2] and stopped["stopped_by"] == "asha"
    assert stopped["eval_loss"][0] > full["eval_loss"][0]
    assert len(stopped["loss"]) == 2 and len(full["eval_loss"]) == 4
    assert Path(result.candidates[0]["adapter_uri"], "adapter_model.safetensors").is_file()


def test_split_rows_holds_out_the_train_tail_without_a_validation_split(
    settings: Settings, store: DatasetStore, write_jsonl
) -> None:
    version = store.add("no-validation", [write_jsonl("t.jsonl", _rows(20, "train"))]).version

    rows, held_out = ray_sweep.split_rows(store, version, asha=True)
    all_rows, none = ray_sweep.split_rows(store, version, asha=False)

    assert len(all_rows) == 20 and none is None
    assert rows == all_rows[:18] and held_out == all_rows[18:]


def test_an_out_of_memory_trial_fails_its_candidate_only(
    store: DatasetStore, dataset: str, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from evalgate.sweep.config import SweepConfig
    from evalgate.sweep.records import claim_candidate, open_sweep
    from evalgate.sweep.trials import Point, make_trial

    error_file = tmp_path / "error.txt"
    error_file.write_text(
        "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    errored = SimpleNamespace(status="ERROR", error_file=str(error_file))
    config = SweepConfig(dataset=dataset)
    sweep_id, _ = open_sweep(store.sessions, config, store.get(dataset))
    candidate_id, _ = claim_candidate(store.sessions, sweep_id, make_trial(config, Point(1e-3)), "m")

    unfinished = ray_sweep._record_trials(
        store.sessions, {1e-3: candidate_id}, [(1e-3, "ERROR", ray_sweep._error_of(errored))]
    )

    with session_scope(store.sessions) as session:
        candidate = session.get_one(Candidate, candidate_id)
        assert candidate.status == "failed" and candidate.error.startswith(
            "out of memory: torch.OutOfMemoryError"
        )
    assert unfinished == []
