"""Sweep YAML is validated into a frozen config; every bad value names its key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from evalgate.core.paths import REPO_ROOT
from evalgate.sweep.config import ConfigError, SweepConfig
from evalgate.sweep.trials import sweep_trials


def test_example_config_loads_with_lora_and_scheduler_handed_through() -> None:
    config = SweepConfig.from_yaml(REPO_ROOT / "examples" / "sweep.yaml")

    assert config.dataset == "evalgate-suite" and len(config.learning_rates) == 4
    assert config.lora.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]


def test_the_search_example_has_sixteen_distinct_trials_inside_its_space() -> None:
    config = SweepConfig.from_yaml(REPO_ROOT / "examples" / "search.yaml")
    trials = sweep_trials(config, config.learning_rates)

    assert len({trial.label for trial in trials}) == 16 and config.halving is not None
    assert all(1e-5 <= trial.learning_rate <= 1e-2 and trial.lora.r in (4, 8, 16) for trial in trials)
    assert {trial.scheduler.kind for trial in trials} == {"constant", "cosine"}


def test_self_replay_and_trainer_are_checked() -> None:
    assert SweepConfig.from_dict({"dataset": "d", "self_replay": ["replay"]}).self_replay == ("replay",)
    with pytest.raises(ConfigError, match="self_replay: must be a list, got 'replay'"):
        SweepConfig.from_dict({"dataset": "d", "self_replay": "replay"})
    with pytest.raises(ConfigError, match="trainer: 'ray' is not one of"):
        SweepConfig.from_dict({"dataset": "d", "trainer": "ray"})


def test_rates_written_without_a_dot_are_numbers(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("dataset: d\nlearning_rates: [3e-4, 1e-2]\n")

    assert SweepConfig.from_yaml(path).learning_rates == (3e-4, 1e-2)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"learning_rates": [0.0]}, r"learning_rates\[0\]: must be > 0"),
        ({"learning_rates": [1e-4, -1e-4]}, r"learning_rates\[1\]: must be > 0"),
        ({"learning_rates": [float("nan")]}, r"learning_rates\[0\]: must be a finite number, got nan"),
        ({"learning_rates": ["fast"]}, r"learning_rates\[0\]: 'fast' is not a number"),
        ({"learning_rates": []}, "learning_rates: give at least one rate, or lr_find: true"),
        ({"learning_rates": [1e-4, 1e-4]}, "learning_rates: has duplicates: 0.0001"),
        ({"batch_size": 0}, "batch_size: must be >= 1, got 0"),
        ({"batch_size": "8"}, "batch_size: must be an integer, got '8'"),
        ({"lr_find": "yes"}, "lr_find: must be true or false"),
        ({"precision": "fp8"}, "precision: 'fp8' is not one of"),
        ({"scheduler": {"kind": "exponential"}}, "scheduler.kind: 'exponential' is not one of"),
        ({"lora": {"r": 0}}, "lora.r: must be >= 1, got 0"),
        ({"lora": {"rank": 8}}, r"unknown key\(s\) lora.rank; known: alpha, dropout, r, target_modules"),
        ({"learning_rate": 1e-4}, r"unknown key\(s\) learning_rate \(did you mean learning_rates\?\)"),
        (
            {"scheduler": {"kind": "constant", "final_fraction": 0.1}},
            "scheduler.final_fraction: a constant schedule does not decay",
        ),
        ({"scheduler": {"kind": "cosine", "final_fraction": 1.0}}, "scheduler.final_fraction: must be < 1"),
        ({"search": {"sampler": "random"}}, "search.trials: the random sampler needs a trial budget"),
        ({"search": {"sampler": "tpe", "trials": 0}}, "search.trials: must be >= 1, got 0"),
        ({"search": {"sampler": "anneal"}}, "search.sampler: 'anneal' is not one of"),
        (
            {"search": {"learning_rate": {"low": 1e-5, "high": 1e-3}}},
            "search.learning_rate: grid needs a list",
        ),
        (
            {"search": {"sampler": "random", "trials": 4, "learning_rate": {"low": 1e-3, "high": 1e-5}}},
            r"search.learning_rate.range.high: must be > low \(0.001\), got 1e-05",
        ),
        ({"search": {"lora_r": [8, 0]}}, r"search.lora_r\[1\]: must be >= 1, got 0"),
        (
            {"search": {"schedule": ["cosine"]}},
            r"unknown key\(s\) search.schedule \(did you mean scheduler\?\)",
        ),
        ({"halving": {"reduction_factor": 1}}, "halving.reduction_factor: must be >= 2, got 1"),
        ({"halving": {}, "trainer": "peft"}, "halving: successive halving runs inside the fused trainer"),
    ],
)
def test_bad_values_name_their_key(data: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        SweepConfig.from_dict({"dataset": "d", **data})


def test_errors_in_a_file_name_the_file_and_the_place(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("dataset: d\nlora:\n  r: 0\n")

    with pytest.raises(ConfigError, match=r"sweep\.yaml: lora\.r: must be >= 1, got 0$"):
        SweepConfig.from_yaml(path)


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: [unclosed\n")

    with pytest.raises(ConfigError, match=r"bad\.yaml: cannot read YAML"):
        SweepConfig.from_yaml(path)
