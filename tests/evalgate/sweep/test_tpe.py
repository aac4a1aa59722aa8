"""The tpe sampler: Optuna's study in the project's database, rounds of fused trials, resume after a kill."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import torch.nn.functional as F
from alembic import command
from optuna.trial import TrialState
from peft import PeftModel
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import alembic_config, upgrade
from evalgate.db.session import engine_for
from evalgate.modeling.loading import load_model
from evalgate.sweep import run as sweep_run
from evalgate.sweep import tpe
from evalgate.sweep.config import ConfigError, RateRange
from evalgate.sweep.run import run_sweep, split_validation, train_rows
from evalgate.sweep.training.peft_trainer import IGNORE_INDEX, TrainingInterrupted, tokenize_rows
from evalgate.sweep.trials import searched_rates
from tests.conftest import POSTGRES_ADMIN_URL
from tests.support.tiny_sweep import tiny_sweep_config
from tests.support.tiny_sweep import train_rows as tiny_rows

SPACE = {
    "sampler": "tpe",
    "trials": 6,
    "parallel": 3,
    "seed": 7,
    "learning_rate": {"low": 1e-4, "high": 3e-2},
    "scheduler": ["constant", "cosine"],
    "lora_r": [2, 4],
}
"""Two rounds of three trials; the rate is continuous, so six distinct candidates."""

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""Training tests run on the embedded database (the PostgreSQL storage is checked without training)."""


@pytest.fixture
def dataset(store: DatasetStore, write_jsonl: Any) -> str:
    return store.add("tiny-suite", [write_jsonl("rows.jsonl", tiny_rows())]).version.label


def study_trials(settings: Settings, sweep_id: int) -> list[optuna.trial.FrozenTrial]:
    """The sweep's study as Optuna itself loads it from the database, trials by number."""
    storage = optuna.storages.RDBStorage(settings.resolved_database_url, skip_compatibility_check=True)
    study = optuna.load_study(study_name=f"evalgate-sweep-{sweep_id}", storage=storage)
    return sorted(study.get_trials(), key=lambda trial: trial.number)


def last_validation_loss(candidate: dict[str, Any]) -> float:
    return float(candidate["training"]["validation_loss"][-1][1])


def assert_told_their_candidates_loss(
    trials: list[optuna.trial.FrozenTrial], candidates: list[dict[str, Any]]
) -> None:
    by_name = {candidate["name"]: candidate for candidate in candidates}
    for trial in trials:
        candidate = by_name[trial.user_attrs["candidate"]]
        assert trial.state == TrialState.COMPLETE
        assert trial.value == last_validation_loss(candidate)
        assert trial.params["lora_r"] == candidate["hyperparameters"]["lora_r"]
        assert trial.params["scheduler"] == candidate["hyperparameters"]["scheduler"]
        assert float(f"{trial.params['learning_rate']:.3g}") == candidate["rate"]


@sqlite_only
def test_a_tpe_search_trains_its_budget_in_rounds_and_tells_the_study_each_validation_loss(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    config = tiny_sweep_config(tiny_lm_dir, search=SPACE)

    result = run_sweep(config, settings, show_progress=False)

    candidates = result.candidates
    assert len({c["name"] for c in candidates}) == 6
    for candidate in candidates:
        hyperparameters = candidate["hyperparameters"]
        assert 1e-4 <= candidate["rate"] <= 3e-2
        assert hyperparameters["scheduler"] in {"constant", "cosine"} and hyperparameters["lora_r"] in {2, 4}
        assert hyperparameters["lora_alpha"] == 8  # not searched: the sweep's own
        assert candidate["status"] == "trained" and candidate["training"]["steps"] == 6
        assert candidate["training"]["validation_loss"][-1][0] == 6  # measured after the last step
    trials = study_trials(settings, result.sweep_id)
    assert [trial.number for trial in trials] == list(range(6))
    assert_told_their_candidates_loss(trials, candidates)
    # round 2 was asked after round 1 was told
    round_1_told = [t.datetime_complete for t in trials[:3] if t.datetime_complete is not None]
    round_2_asked = [t.datetime_start for t in trials[3:] if t.datetime_start is not None]
    assert len(round_1_told) == len(round_2_asked) == 3 and min(round_2_asked) >= max(round_1_told)

    again = run_sweep(config, settings, show_progress=False)  # the budget is spent: nothing trains
    assert again.resumed and again.candidates == candidates
    assert len(study_trials(settings, result.sweep_id)) == 6


@sqlite_only
def test_the_objective_is_the_mean_answer_token_loss_on_rows_held_out_without_halving(
    tiny_lm_dir: Path, settings: Settings, dataset: str, store: DatasetStore
) -> None:
    space = {**SPACE, "trials": 1, "parallel": 1}
    result = run_sweep(tiny_sweep_config(tiny_lm_dir, search=space), settings, show_progress=False)

    (candidate,) = result.candidates
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    examples = tokenize_rows(tokenizer, train_rows(store, store.get("tiny-suite")), max_length=96)
    _, held = split_validation(examples, 0.1, seed=0)  # halving's default share, the sweep's seed
    model = PeftModel.from_pretrained(base, candidate["adapter_uri"]).eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for example in held:  # one row at a time: no padding
            logits = model(input_ids=torch.tensor([example["input_ids"]])).logits[0, :-1]
            labels = torch.tensor(example["labels"][1:])
            answer = labels != IGNORE_INDEX
            total += float(F.cross_entropy(logits[answer], labels[answer], reduction="sum"))
            tokens += int(answer.sum())
    assert len(held) == 8  # max(8, 0.1 x 24 rows)
    assert study_trials(settings, result.sweep_id)[0].value == pytest.approx(total / tokens, rel=1e-4)


@sqlite_only
@pytest.mark.parametrize("cut_round", [1, 2])
def test_a_killed_search_resumes_its_round_from_the_checkpoint_and_asks_what_it_would_have(
    tiny_lm_dir: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch, cut_round: int
) -> None:
    config = tiny_sweep_config(tiny_lm_dir, search=SPACE)
    polls = iter(range(1000))  # polled after every step; a round takes 6: true at the round's 3rd
    stop_from = 6 * (cut_round - 1) + 2

    with pytest.raises(TrainingInterrupted, match="step 3"):
        run_sweep(config, settings, show_progress=False, should_stop=lambda: next(polls) >= stop_from)

    sweep_id = 1
    cut = study_trials(settings, sweep_id)
    told = 3 * (cut_round - 1)
    assert [t.state for t in cut] == [TrialState.COMPLETE] * told + [TrialState.RUNNING] * 3
    running = [t.user_attrs["candidate"] for t in cut[told:]]
    before = {t.user_attrs["candidate"]: t.value for t in cut[:told]}
    trained: list[tuple[list[str], bool]] = []
    real_train_fused = sweep_run.train_fused

    def spy(base: Any, run: Any, root: Path) -> Any:
        trained.append(([trial.label for trial in run.trials], run.checkpoint.is_file()))
        return real_train_fused(base, run, root)

    monkeypatch.setattr(sweep_run, "train_fused", spy)

    resumed = run_sweep(config, settings, show_progress=False)

    assert resumed.resumed and resumed.sweep_id == sweep_id
    assert trained[0] == (running, True)  # the cut round again, from its checkpoint; no told one
    assert len(trained) == 3 - cut_round and not any(checkpoint for _, checkpoint in trained[1:])
    trials = study_trials(settings, sweep_id)
    assert len(trials) == 6 and {t.user_attrs["candidate"]: t.value for t in trials[:told]} == before
    assert all(c["status"] == "trained" and c["training"]["steps"] == 6 for c in resumed.candidates)
    assert_told_their_candidates_loss(trials, resumed.candidates)

    # the same search never stopped asks the same trials (the sampler is seeded per round) and
    # reaches the same losses
    straight = run_sweep(
        tiny_sweep_config(tiny_lm_dir, name="straight", search=SPACE), settings, show_progress=False
    )
    uncut = study_trials(settings, straight.sweep_id)
    assert [t.params for t in uncut] == [t.params for t in trials]
    assert [t.value for t in uncut] == pytest.approx([t.value for t in trials], rel=1e-5)


@sqlite_only
def test_repeated_suggestions_train_once_and_halted_trials_are_told_pruned(
    tiny_lm_dir: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rates and nothing else: four trials must repeat a rate at least twice.
    space = {"sampler": "tpe", "trials": 4, "parallel": 2, "learning_rate": [1e-3, 3e-2]}
    halving = {"grace_steps": 2, "reduction_factor": 2, "validation_share": 0.25}
    config = tiny_sweep_config(tiny_lm_dir, search=space, halving=halving)
    trained: list[str] = []
    real_train_fused = sweep_run.train_fused

    def spy(base: Any, run: Any, root: Path) -> Any:
        trained.extend(trial.label for trial in run.trials)
        return real_train_fused(base, run, root)

    monkeypatch.setattr(sweep_run, "train_fused", spy)

    result = run_sweep(config, settings, show_progress=False)

    by_name = {c["name"]: c for c in result.candidates}
    assert sorted(trained) == sorted(by_name) == ["lr=0.001", "lr=0.03"]  # each label trained once
    # both trained in round 1, where halving stopped one at its rung (step 2); the seeded sampler
    # then asks for that one twice more
    assert sorted(c["status"] for c in result.candidates) == ["stopped", "trained"]
    trials = study_trials(settings, result.sweep_id)
    assert len(trials) == 4
    for trial in trials:
        candidate = by_name[trial.user_attrs["candidate"]]
        if candidate["status"] == "stopped":
            assert trial.state == TrialState.PRUNED and trial.intermediate_values.keys() == {2}
        else:
            assert trial.state == TrialState.COMPLETE
        assert trial.value == last_validation_loss(candidate)
    assert sum(t.state == TrialState.PRUNED for t in trials) == 3


@sqlite_only
def test_a_round_out_of_memory_trains_one_trial_at_a_time_and_a_lone_one_out_of_memory_fails(
    tiny_lm_dir: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_sweep_config(tiny_lm_dir, search={**SPACE, "trials": 2, "parallel": 2})
    attempts: list[list[str]] = []
    real_train_fused = sweep_run.train_fused

    def out_of_memory_unless_alone_and_first(base: Any, run: Any, root: Path) -> Any:
        attempts.append([trial.label for trial in run.trials])
        if len(attempts) != 2:  # together, and the second one alone
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return real_train_fused(base, run, root)

    monkeypatch.setattr(sweep_run, "train_fused", out_of_memory_unless_alone_and_first)

    result = run_sweep(config, settings, show_progress=False)

    first, second = attempts[0]
    assert attempts == [[first, second], [first], [second]]
    by_name = {c["name"]: c for c in result.candidates}
    assert by_name[first]["status"] == "trained"
    assert by_name[second]["status"] == "failed" and "out of memory" in by_name[second]["error"]
    told = {t.user_attrs["candidate"]: t for t in study_trials(settings, result.sweep_id)}
    assert told[first].state == TrialState.COMPLETE and told[first].value == last_validation_loss(
        by_name[first]
    )
    assert told[second].state == TrialState.FAIL and told[second].value is None


def _in_memory_trial() -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="minimize")
    trial = study.ask()
    trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    return study, study.get_trials()[0]


@pytest.mark.parametrize(
    ("status", "curve", "state", "value"),
    [
        ("trained", [[2, 3.0], [6, 2.5]], TrialState.COMPLETE, 2.5),
        ("stopped", [[2, 3.25]], TrialState.PRUNED, 3.25),
        ("diverged", [[2, 3.0]], TrialState.FAIL, None),
        ("failed", [], TrialState.FAIL, None),
        ("trained", [[2, 3.0], [6, None]], TrialState.FAIL, None),  # a non-finite last loss
    ],
)
def test_a_candidate_is_told_as_its_status_and_last_validation_loss(
    status: str, curve: list[list[Any]], state: TrialState, value: float | None
) -> None:
    study, frozen = _in_memory_trial()

    tpe.tell_outcome(study, frozen, {"status": status, "training": {"validation_loss": curve}})

    told = study.get_trials()[0]
    assert (told.state, told.value) == (state, value)
    assert told.intermediate_values == {step: loss for step, loss in curve if loss is not None}


def test_an_already_reported_step_is_not_reported_again() -> None:
    study, _ = _in_memory_trial()
    optuna.trial.Trial(study, study.get_trials()[0]._trial_id).report(9.0, 2)  # a run killed mid-tell

    tpe.tell_outcome(
        study,
        study.get_trials()[0],
        {"status": "trained", "training": {"validation_loss": [[2, 3.0], [6, 2.5]]}},
    )

    assert study.get_trials()[0].intermediate_values == {2: 9.0, 6: 2.5}


def test_the_rates_searched_come_from_the_search_else_lr_find_as_a_range_else_the_sweep(
    tiny_lm_dir: Path,
) -> None:
    proposed = [1e-4, 1e-3, 1e-2]
    listed = tiny_sweep_config(tiny_lm_dir, search={**SPACE, "learning_rate": [1e-3, 3e-3]})
    found = tiny_sweep_config(tiny_lm_dir, lr_find=True, search={"sampler": "tpe", "trials": 4})
    plain = tiny_sweep_config(tiny_lm_dir, search={"sampler": "tpe", "trials": 4})

    assert searched_rates(listed, proposed) == (1e-3, 3e-3)
    assert searched_rates(found, proposed) == RateRange(low=1e-4, high=1e-2)
    assert searched_rates(plain, proposed) == (1e-4, 1e-3, 1e-2)


def _suggested_rates(rates: RateRange, count: int = 40) -> list[float]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    suggested = []
    for _ in range(count):
        trial = study.ask()
        point = tpe.suggest_point(trial, rates, [("lora_r", (2, 4))])
        assert point.lora_r in {2, 4}
        suggested.append(point.learning_rate)
        study.tell(trial, 0.0)
    return suggested


def test_a_rate_from_a_range_keeps_three_digits_and_stays_inside_the_range() -> None:
    wide = _suggested_rates(RateRange(low=1e-4, high=1e-2))
    assert all(1e-4 <= rate <= 1e-2 and rate == float(f"{rate:.3g}") for rate in wide)
    assert len(set(wide)) > 30
    # every 3-digit rounding of 1.2345e-4 .. 1.2399e-4 (1.23e-4 or 1.24e-4) falls outside: clamped
    narrow = _suggested_rates(RateRange(low=1.2345e-4, high=1.2399e-4))
    assert set(narrow) <= {1.2345e-4, 1.2399e-4}


@pytest.mark.parametrize(
    ("search", "pattern"),
    [
        ({"sampler": "tpe"}, "search.trials: the tpe sampler needs a trial budget"),
        ({"sampler": "tpe", "trials": 4, "parallel": 0}, "search.parallel"),
        (
            {"sampler": "tpe", "trials": 4, "learning_rate": {"low": 1e-2, "high": 1e-3}},
            r"learning_rate.*high",
        ),
    ],
)
def test_tpe_config_errors_name_the_key(tiny_lm_dir: Path, search: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        tiny_sweep_config(tiny_lm_dir, search=search)


@sqlite_only
def test_tpe_is_refused_before_the_model_loads_without_optuna_or_with_the_peft_trainer(
    settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing_model = Path("/no/such/model")  # loading it would fail: the refusal must come first
    with pytest.raises(ConfigError, match="trainer: the tpe sampler trains each round in the fused"):
        run_sweep(
            tiny_sweep_config(missing_model, search=SPACE, trainer="peft"), settings, show_progress=False
        )

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(tpe.OptunaNotInstalledError, match=r"pip install 'evalgate\[search\]'"):
        run_sweep(tiny_sweep_config(missing_model, search=SPACE), settings, show_progress=False)


@pytest.fixture
def scratch_postgres_url(postgres_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own (Optuna's tables stay out of the session's)."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"evalgate_tpe_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_the_study_lives_in_the_postgres_database_beside_the_migrated_tables(
    scratch_postgres_url: str,
) -> None:
    url = scratch_postgres_url
    assert url.startswith("postgresql+psycopg://")
    with tpe.study_storage(url) as storage:
        study = tpe.open_study(storage, 5, fresh=True)
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        study.tell(trial, 1.5)

    with tpe.study_storage(url) as storage:  # a resumed sweep: its study as it was
        reopened = tpe.open_study(storage, 5, fresh=False)
        assert reopened.study_name == "evalgate-sweep-5" and [t.value for t in reopened.get_trials()] == [1.5]
    assert {"studies", "trials", "sweep", "candidate"} <= set(inspect(engine_for(url)).get_table_names())
    command.check(alembic_config(url))  # Optuna's tables are no difference to the migrations
    with tpe.study_storage(url) as storage:  # a new sweep row with a reused id: the old study goes
        assert tpe.open_study(storage, 5, fresh=True).get_trials() == []
