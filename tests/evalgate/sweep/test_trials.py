"""A sweep's trials: one per rate, a grid's combinations, or seeded random draws inside the space."""

from __future__ import annotations

import math

import pytest

from evalgate.sweep.config import ConfigError, SweepConfig
from evalgate.sweep.trials import sweep_trials


def _config(**values: object) -> SweepConfig:
    return SweepConfig.from_dict({"dataset": "d", "learning_rates": [1e-4, 1e-3], **values})


def test_without_a_search_each_rate_is_a_trial_named_by_its_rate() -> None:
    trials = sweep_trials(_config(), (1e-4, 1e-3))

    assert [trial.label for trial in trials] == ["lr=0.0001", "lr=0.001"]
    assert all(trial.scheduler == _config().scheduler and trial.lora == _config().lora for trial in trials)


def test_a_grid_is_every_combination_in_order_and_a_constant_schedule_takes_no_final_fraction() -> None:
    config = _config(
        search={"scheduler": ["constant", "cosine"], "final_fraction": [0.0, 0.1], "lora_r": [4]}
    )

    labels = [trial.label for trial in sweep_trials(config, config.learning_rates)]

    assert labels == [
        "lr=0.0001 constant r=4",
        "lr=0.0001 cosine lrf=0 r=4",
        "lr=0.0001 cosine lrf=0.1 r=4",
        "lr=0.001 constant r=4",
        "lr=0.001 cosine lrf=0 r=4",
        "lr=0.001 cosine lrf=0.1 r=4",
    ]
    cosine = sweep_trials(config, config.learning_rates)[2]
    assert (cosine.scheduler.kind, cosine.scheduler.final_fraction, cosine.lora.r) == ("cosine", 0.1, 4)
    assert cosine.config(config).lora.alpha == config.lora.alpha  # what is not searched stays the sweep's


def test_a_grid_larger_than_its_budget_is_refused() -> None:
    config = _config(search={"lora_r": [4, 8], "trials": 3})

    with pytest.raises(ConfigError, match="the grid has 4 combinations, more than trials: 3"):
        sweep_trials(config, config.learning_rates)


def test_random_draws_are_seeded_distinct_and_log_uniform_inside_the_range() -> None:
    space = {
        "sampler": "random",
        "trials": 40,
        "learning_rate": {"low": 1e-5, "high": 1e-2},
        "lora_r": [4, 8],
    }
    config = _config(search=space)

    trials = sweep_trials(config, config.learning_rates)

    assert len({trial.label for trial in trials}) == 40
    assert [t.label for t in trials] == [t.label for t in sweep_trials(config, config.learning_rates)]
    other_seed = _config(search={**space, "seed": 1})
    assert [t.label for t in trials] != [t.label for t in sweep_trials(other_seed, other_seed.learning_rates)]
    rates = [trial.learning_rate for trial in trials]
    assert all(1e-5 <= rate <= 1e-2 for rate in rates) and {trial.lora.r for trial in trials} == {4, 8}
    # log-uniform: about a third of the draws in each decade (a uniform draw puts 90% in the last)
    decades = [sum(10**e <= rate < 10 ** (e + 1) for rate in rates) for e in (-5, -4, -3)]
    assert all(5 <= count <= 22 for count in decades), decades
    assert all(math.isclose(rate, float(f"{rate:.3g}")) for rate in rates)


def test_random_over_a_space_smaller_than_its_budget_gives_each_combination_once() -> None:
    config = _config(search={"sampler": "random", "trials": 10, "lora_r": [4, 8]})

    assert len(sweep_trials(config, config.learning_rates)) == 4  # 2 rates x 2 ranks


def test_with_lr_find_a_random_search_draws_from_the_whole_proposed_range() -> None:
    config = _config(lr_find=True, search={"sampler": "random", "trials": 8})

    rates = [trial.learning_rate for trial in sweep_trials(config, (1e-4, 1e-3, 1e-2))]

    assert all(1e-4 <= rate <= 1e-2 for rate in rates) and not set(rates) <= {1e-4, 1e-3, 1e-2}
