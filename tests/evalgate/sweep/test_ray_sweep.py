"""The Ray Tune sweep trains the plain sweep's candidates as trials, resumes, and early-stops with ASHA;
a searched sweep runs as fused groups, one Ray trial each, whose adapters equal the plain sweep's.

Runs a local Ray on the machine's CPUs with the tiny model, on SQLite only (the database work is the
plain sweep's, tested on both databases in test_sweep.py). Without Ray installed these tests are
skipped, except under CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import math
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
from evalgate.sweep import ray_groups
from evalgate.sweep import ray_tune as ray_sweep
from evalgate.sweep.ray_tune import RayOptions
from evalgate.sweep.run import prepare_training, run_sweep, split_validation, sweep_root, train_rows
from evalgate.sweep.training.fused import FusedRun, train_fused
from evalgate.sweep.training.peft_trainer import AnswerOnlyCollator, TrainingInputError, TrainingOutcome
from evalgate.sweep.trials import Point, make_trial
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


GROUPS_OF_TWO = [["lr=0.001 r=2", "lr=0.03 r=2"], ["lr=0.001 r=4", "lr=0.03 r=4"]]
"""The 2 x 2 grid (trial order: rate, then rank) dealt round-robin into two groups."""
HALVING = {"grace_steps": 2, "reduction_factor": 2, "validation_share": 0.25}
"""Rungs at steps 2 and 4 of 6; 8 of the 24 train rows held out."""


def _searched(tiny_lm_dir: Path, name: str, **overrides: Any) -> Any:
    """Two rates x two ranks: four trials."""
    return tiny_sweep_config(
        tiny_lm_dir, name=name, search={"sampler": "grid", "lora_r": [2, 4]}, **overrides
    )


@pytest.fixture
def launched_groups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[list[str]]]]:
    """The groups (trial labels) of every group experiment the driver launches."""
    calls: list[list[list[str]]] = []
    real_fit = ray_groups._fit_groups

    def spy(inputs: Any, *args: Any) -> Any:
        calls.append([[trial.label for trial in group] for group in inputs.groups])
        return real_fit(inputs, *args)

    monkeypatch.setattr(ray_groups, "_fit_groups", spy)
    yield calls


def _by_name(candidates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {candidate["name"]: candidate for candidate in candidates}


def _assert_same_adapter(found_uri: str, expected_uri: str) -> None:
    found, expected = _weights(found_uri), _weights(expected_uri)
    assert sorted(found) == sorted(expected)
    for key, tensor in expected.items():
        torch.testing.assert_close(found[key], tensor, rtol=1e-4, atol=1e-6, msg=key)


def _no_group_checkpoints(settings: Settings, sweep_id: int) -> bool:
    return not list(sweep_root(settings, sweep_id).glob("group-*-fused-checkpoint.pt"))


@pytest.mark.usefixtures("shared_ray")
def test_fused_groups_give_the_plain_searched_sweeps_candidates(
    tiny_lm_dir: Path, settings: Settings, dataset: str, launched_groups: list[list[list[str]]]
) -> None:
    result = ray_sweep.run_sweep_ray(
        _searched(tiny_lm_dir, "ray"), settings, groups=2, resources_per_trial={"cpu": 1}
    )
    plain = run_sweep(_searched(tiny_lm_dir, "plain"), settings, show_progress=False)

    assert launched_groups == [GROUPS_OF_TWO]
    grouped = _by_name(result.candidates)
    assert sorted(grouped) == sorted(label for group in GROUPS_OF_TWO for label in group)
    for expected in plain.candidates:
        candidate = grouped[expected["name"]]
        assert candidate["status"] == "trained" and candidate["training"]["steps"] == 6
        assert candidate["hyperparameters"] == expected["hyperparameters"]
        assert candidate["training"]["loss"] == pytest.approx(expected["training"]["loss"], rel=1e-4)
        _assert_same_adapter(candidate["adapter_uri"], expected["adapter_uri"])
    assert _no_group_checkpoints(settings, result.sweep_id)


@pytest.mark.usefixtures("shared_ray")
def test_halving_in_groups_holds_out_the_plain_sweeps_rows_and_halves_each_group(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    plain = _by_name(
        run_sweep(_searched(tiny_lm_dir, "plain", halving=HALVING), settings, show_progress=False).candidates
    )
    one = _by_name(
        ray_sweep.run_sweep_ray(_searched(tiny_lm_dir, "one", halving=HALVING), settings, groups=1).candidates
    )
    two = _by_name(
        ray_sweep.run_sweep_ray(_searched(tiny_lm_dir, "two", halving=HALVING), settings, groups=2).candidates
    )

    outcome = {name: (c["status"], c["training"]["steps"]) for name, c in plain.items()}
    assert sorted(outcome.values()) == [("stopped", 2), ("stopped", 2), ("stopped", 4), ("trained", 6)]
    for name, expected in plain.items():  # one group: the plain sweep's fused run, under Ray
        assert (one[name]["status"], one[name]["training"]["steps"]) == outcome[name]
        assert one[name]["training"]["halted"] == expected["training"]["halted"]
        _assert_same_adapter(one[name]["adapter_uri"], expected["adapter_uri"])
    at_first_rung = {name: c["training"]["validation_loss"][0] for name, c in plain.items()}
    for group in GROUPS_OF_TWO:  # two groups: each keeps the better of its two at the first rung
        survivor = min(group, key=lambda name: at_first_rung[name][1])
        for name in group:
            assert two[name]["training"]["validation_loss"][0] == pytest.approx(at_first_rung[name], rel=1e-4)
            kept = (two[name]["status"], two[name]["training"]["steps"])
            assert kept == (("trained", 6) if name == survivor else ("stopped", 2))
    (best,) = (name for name, kept in outcome.items() if kept == ("trained", 6))
    _assert_same_adapter(two[best]["adapter_uri"], plain[best]["adapter_uri"])


@pytest.mark.usefixtures("shared_ray")
def test_asha_stops_the_worse_group_and_keeps_its_adapters_as_at_its_last_report(
    tiny_lm_dir: Path, settings: Settings, store: DatasetStore, dataset: str, tmp_path: Path
) -> None:
    # one group at a time, the better first: at the first rung the tiny rates' group is compared with it
    config = tiny_sweep_config(tiny_lm_dir, learning_rates=[3e-2, 1e-6, 2e-2, 2e-6], max_steps=8)

    result = ray_sweep.run_sweep_ray(config, settings, asha=True, groups=2, max_concurrent=1)

    by_rate = {candidate["rate"]: candidate for candidate in result.candidates}
    for rate in (3e-2, 2e-2):
        training = by_rate[rate]["training"]
        assert by_rate[rate]["status"] == "trained" and training["steps"] == 8 and not training["halted"]
        assert [step for step, _ in training["validation_loss"]] == [2, 4, 6, 8]
    best_at_step_2 = min(by_rate[rate]["training"]["validation_loss"][0][1] for rate in (3e-2, 2e-2))
    for rate in (1e-6, 2e-6):
        stopped = by_rate[rate]
        assert stopped["status"] == "stopped" and stopped["training"]["steps"] == 2
        assert stopped["training"]["halted"] == "ASHA stopped its group at step 2"
        [[step, loss]] = stopped["training"]["validation_loss"]
        assert step == 2 and loss > best_at_step_2
    assert _no_group_checkpoints(settings, result.sweep_id)
    # the stopped group's adapters are those of its two trials trained two steps on the same rows
    setup = prepare_training(config, settings.home, train_rows(store, store.get(dataset)))
    examples, _ = split_validation(setup.examples, ray_groups.DEFAULT_VALIDATION_SHARE, config.seed)
    trials = [make_trial(config, Point(rate)) for rate in (1e-6, 2e-6)]
    two_steps = FusedRun(
        config=tiny_sweep_config(tiny_lm_dir, learning_rates=[1e-6, 2e-6], max_steps=2),
        trials=trials,
        examples=examples,
        collator=AnswerOnlyCollator(setup.tokenizer.pad_token_id or 0),
        device="cpu",
        dtype=torch.float32,
        checkpoint=tmp_path / "fused-checkpoint.pt",
    )
    _, reference = train_fused(setup.base, two_steps, tmp_path)
    for rate, expected in zip((1e-6, 2e-6), reference, strict=True):
        _assert_same_adapter(by_rate[rate]["adapter_uri"], str(expected.adapter_dir))


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"search": {"sampler": "tpe", "trials": 4}}, "search.sampler: tpe"),
        ({"trainer": "peft", "search": {"sampler": "grid", "lora_r": [2, 4]}}, "trainer: peft"),
    ],
)
def test_what_groups_cannot_run_is_refused_before_any_training(
    tiny_lm_dir: Path, settings: Settings, overrides: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(TrainingInputError, match=pattern):
        ray_sweep.run_sweep_ray(tiny_sweep_config(tiny_lm_dir, **overrides), settings)
    with pytest.raises(TrainingInputError, match="groups must be at least 1, got 0"):
        ray_sweep.run_sweep_ray(tiny_sweep_config(tiny_lm_dir), settings, groups=0)


def test_trials_are_dealt_round_robin_into_groups_that_fit_the_cluster(database_url: str) -> None:
    config = tiny_sweep_config(Path("."))
    trials = [make_trial(config, Point(rate)) for rate in (1e-4, 2e-4, 3e-4, 4e-4, 5e-4)]

    dealt = ray_groups.group_trials(trials, 2)
    spread = ray_groups.group_trials(trials, 7)

    assert [[t.learning_rate for t in group] for group in dealt] == [[1e-4, 3e-4, 5e-4], [2e-4, 4e-4]]
    assert [len(group) for group in spread] == [1] * 5  # no empty groups
    assert ray_groups.fitting_slots({"cpu": 2, "gpu": 1}, {"CPU": 16.0, "GPU": 3.0}) == 3
    assert ray_groups.fitting_slots({"cpu": 4}, {"CPU": 6.0}) == 1
    assert ray_groups.fitting_slots({"cpu": 0.5, "gpu": 0}, {"CPU": 2.0}) == 4
    assert ray_groups.fitting_slots({"gpu": 1}, {"CPU": 8.0}) == 1  # none fits: one group, Ray waits
    cluster = {"CPU": 8.0}
    assert ray_groups.default_groups(RayOptions({"cpu": 2}, False, None), 5, cluster) == 4
    assert ray_groups.default_groups(RayOptions({"cpu": 2}, False, 3), 5, cluster) == 3  # max_concurrent
    assert ray_groups.default_groups(RayOptions({"cpu": 8}, False, None), 5, cluster) == 1
    assert ray_groups.default_groups(RayOptions({"cpu": 8}, True, None), 5, cluster) == 2  # ASHA compares
    assert ray_groups.default_groups(RayOptions({"cpu": 1}, True, None), 1, cluster) == 1  # one trial


def test_group_outcomes_survive_their_trip_through_ray_results(database_url: str) -> None:
    config = tiny_sweep_config(Path("."))
    trials = [make_trial(config, Point(1e-3)), make_trial(config, Point(3e-2))]
    outcomes = [
        TrainingOutcome(Path("/a/adapter"), 2, [2.5, 2.0], [1e-3, 1e-3], halted="stopped early at rung 0"),
        TrainingOutcome(
            Path("/b/adapter"),
            3,
            [2.5, math.nan],
            [3e-2, 3e-2],
            stopped_early=True,
            diagnosis="diverged",
            validation_loss=[(2, math.inf)],
        ),
    ]

    back = ray_groups.outcomes_from_json(ray_groups.outcomes_json(trials, outcomes))

    assert list(back) == ["lr=0.001", "lr=0.03"]
    assert back["lr=0.001"] == outcomes[0]
    assert back["lr=0.03"].losses[0] == 2.5 and math.isnan(back["lr=0.03"].losses[1])
    assert back["lr=0.03"].validation_loss == [(2, math.inf)] and back["lr=0.03"].diagnosis == "diverged"
