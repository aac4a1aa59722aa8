"""A finished sweep's results table, best trial and hyperparameter figure, from hand-made candidate rows
(a trained pair, one stopped by successive halving, one diverged)."""

from __future__ import annotations

import csv
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalgate.sweep.analysis import (
    BEST_FILE,
    FIGURE_FILE,
    HYPERPARAMETER_ORDER,
    RESULTS_FILE,
    SEARCH_DIMENSIONS,
    AnalysisInputError,
    Gated,
    GateOutcome,
    in_order,
    panel_names,
    searched_hyperparameters,
    trial_result,
    write_analysis,
)
from evalgate.sweep.config import SearchSpace, SweepConfig
from evalgate.sweep.trials import Point, make_trial

SWEEP = SweepConfig.from_dict(
    {
        "dataset": "suite",
        "scheduler": {"kind": "cosine", "warmup_ratio": 0.1, "final_fraction": 0.1},
        "search": {
            "learning_rate": [1e-4, 1e-3, 1e-2],
            "scheduler": ["cosine", "constant"],
            "lora_r": [4, 8],
        },
    }
)
HALTED = (
    "stopped early at rung 1 (step 8): validation loss 2.5000, not among the best 2 of 4 "
    "(the 2th best had 2.0000)"
)


def _row(point: Point, status: str, diagnosis: str, training: dict[str, Any]) -> dict[str, Any]:
    """A candidate row as ``candidate_rows`` returns it, for the trial at ``point``."""
    trial = make_trial(SWEEP, point)
    return {
        "id": 1, "name": trial.label, "rate": trial.learning_rate, "hyperparameters": trial.hyperparameters(),
        "status": status, "diagnosis": diagnosis, "adapter_uri": None, "training": training, "error": None,
    }  # fmt: skip


def _training(losses: list[float | None], validation: list[list[float]], halted: str = "") -> dict[str, Any]:
    return {"steps": len(losses), "loss": losses, "validation_loss": validation, "halted": halted}


def _rows(validation: bool = True) -> list[dict[str, Any]]:
    """Four trials. With validation: B has the lowest final validation loss (1.30) though A's last train
    loss (1.40) is lower than B's (1.45); C, stopped at rung 1, has the lowest train loss of all (1.20)
    and D diverged. Without validation: A wins on train loss."""

    def measured(points: list[list[float]]) -> list[list[float]]:
        return points if validation else []

    return [
        _row(Point(1e-4, "cosine", lora_r=4), "trained", "healthy",
             _training([2.0, 1.7, 1.5, 1.40], measured([[2, 2.0], [4, 1.50]]))),
        _row(Point(1e-3, "cosine", lora_r=8), "trained", "healthy",
             _training([2.0, 1.6, 1.5, 1.45], measured([[2, 1.9], [4, 1.30]]))),
        _row(Point(1e-4, "constant", lora_r=8), "stopped", "healthy",
             _training([2.0, 1.20], measured([[2, 2.5]]), HALTED if validation else "")),
        _row(Point(1e-2, "cosine", lora_r=4), "diverged", "diverged", _training([2.0, 9.0, 0.5, None], [])),
    ]  # fmt: skip


def test_results_csv_has_one_row_per_candidate_with_every_hyperparameter(tmp_path: Path) -> None:
    write_analysis(_rows(), tmp_path)

    with (tmp_path / RESULTS_FILE).open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, table = reader.fieldnames, {row["name"]: row for row in reader}

    assert columns == [
        "name", "status", "learning_rate", "scheduler", "warmup_steps", "warmup_ratio", "final_fraction",
        "lora_r", "lora_alpha", "diagnosis", "steps", "final_train_loss", "final_validation_loss",
        "stopped_at_step", "halted", "target_gain", "ood_delta", "verdict",
    ]  # fmt: skip
    assert list(table) == ["lr=0.0001 cosine r=4", "lr=0.001 cosine r=8", "lr=0.0001 constant r=8",
                           "lr=0.01 cosine r=4"]  # fmt: skip
    stopped = table["lr=0.0001 constant r=8"]
    assert (stopped["status"], stopped["steps"], stopped["halted"]) == ("stopped", "2", HALTED)
    assert stopped["stopped_at_step"] == "2" and table["lr=0.001 cosine r=8"]["stopped_at_step"] == ""
    assert {row["verdict"] + row["target_gain"] + row["ood_delta"] for row in table.values()} == {""}
    assert (float(stopped["final_train_loss"]), float(stopped["final_validation_loss"])) == (1.2, 2.5)
    assert (stopped["scheduler"], stopped["final_fraction"], stopped["lora_r"]) == ("constant", "0.0", "8")
    best = table["lr=0.001 cosine r=8"]
    assert float(best["learning_rate"]) == 1e-3 and float(best["final_fraction"]) == 0.1
    assert best["lora_alpha"] == "16" and best["halted"] == "" and best["diagnosis"] == "healthy"
    diverged = table["lr=0.01 cosine r=4"]
    assert diverged["final_train_loss"] == "" and diverged["final_validation_loss"] == ""  # NaN, none


def test_best_is_the_lowest_final_validation_loss_and_best_yaml_is_a_runnable_sweep_config(
    tmp_path: Path,
) -> None:
    files = write_analysis(_rows(), tmp_path, config=SWEEP.to_dict())

    assert files.best == tmp_path / BEST_FILE and files.chosen is not None
    text = files.best.read_text()
    assert text.startswith("# best trial: lr=0.001 cosine r=8: lowest final validation loss (1.3000)")
    assert "among 2 trained candidates" in text.splitlines()[0]
    best = SweepConfig.from_yaml(files.best)
    assert best == replace(
        SWEEP,
        name="sweep-best",
        search=None,
        learning_rates=(0.001,),
        scheduler=replace(SWEEP.scheduler, kind="cosine", final_fraction=0.1),
        lora=replace(SWEEP.lora, r=8, alpha=16),
    )


def test_without_the_sweep_config_best_yaml_holds_the_trials_keys(tmp_path: Path) -> None:
    files = write_analysis(_rows(), tmp_path)

    assert files.best is not None
    assert yaml.safe_load(files.best.read_text()) == {
        "learning_rates": [0.001],
        "scheduler": {"kind": "cosine", "warmup_steps": 0, "warmup_ratio": 0.1, "final_fraction": 0.1},
        "lora": {"r": 8, "alpha": 16},
    }


def _gated(recommended: str | None) -> Gated:
    return Gated(
        outcomes={
            "lr=0.0001 cosine r=4": GateOutcome("pass", 0.31, -0.02),
            "lr=0.001 cosine r=8": GateOutcome("block", 0.52, -0.19),
        },
        recommended=recommended,
        objective="json_validation/target",
        why="passes every check; largest json_validation/target gain among passing candidates",
    )


def test_once_gated_the_table_has_the_gates_columns_and_the_best_is_the_recommended(tmp_path: Path) -> None:
    files = write_analysis(_rows(), tmp_path, config=SWEEP.to_dict(), gated=_gated("lr=0.0001 cosine r=4"))

    with (tmp_path / RESULTS_FILE).open(newline="") as handle:
        table = {row["name"]: row for row in csv.DictReader(handle)}
    passed, blocked = table["lr=0.0001 cosine r=4"], table["lr=0.001 cosine r=8"]
    assert (passed["verdict"], float(passed["target_gain"]), float(passed["ood_delta"])) == (
        "pass",
        0.31,
        -0.02,
    )
    assert (blocked["verdict"], float(blocked["target_gain"])) == ("block", 0.52)
    assert table["lr=0.0001 constant r=8"]["verdict"] == ""  # stopped early: never evaluated
    assert files.chosen is not None and files.chosen.result.name == "lr=0.0001 cosine r=4"
    assert files.best is not None
    lines = files.best.read_text().splitlines()
    assert lines[0] == "# best trial: lr=0.0001 cosine r=4: recommended by the gate among 2 candidates"
    assert lines[1].startswith("# passes every check")
    best = SweepConfig.from_yaml(files.best)
    assert (best.learning_rates, best.lora.r, best.search, best.halving) == ((0.0001,), 4, None, None)


def test_a_gate_that_recommends_none_leaves_no_best_yaml(tmp_path: Path) -> None:
    write_analysis(_rows(), tmp_path, config=SWEEP.to_dict())
    assert (tmp_path / BEST_FILE).exists()

    files = write_analysis(_rows(), tmp_path, config=SWEEP.to_dict(), gated=_gated(None))

    assert files.best is None and files.chosen is None and not (tmp_path / BEST_FILE).exists()


def test_without_validation_the_best_is_the_lowest_train_loss_of_the_trained_not_diverged(
    tmp_path: Path,
) -> None:
    files = write_analysis(_rows(validation=False), tmp_path)

    assert files.best is not None and files.chosen is not None
    assert files.chosen.result.name == "lr=0.0001 cosine r=4"  # 1.40 < 1.45; the diverged 0.5 is no rival
    comment = files.best.read_text().splitlines()[0]
    assert "lowest final train loss (1.4000)" in comment and "no validation loss was measured" in comment
    assert yaml.safe_load(files.best.read_text())["learning_rates"] == [0.0001]


def test_the_figure_has_a_panel_per_searched_hyperparameter(tmp_path: Path) -> None:
    rows = _rows()
    results = [trial_result(row, "row") for row in rows]

    files = write_analysis(rows, tmp_path, searched_hyperparameters(SWEEP))

    assert searched_hyperparameters(SWEEP) == ["learning_rate", "scheduler", "lora_r"]
    assert panel_names(results, searched_hyperparameters(SWEEP)) == ["learning_rate", "scheduler", "lora_r"]
    # without the config: every hyperparameter that varies, the constant schedule's final fraction too
    assert panel_names(results) == ["learning_rate", "scheduler", "final_fraction", "lora_r"]
    assert files.figure == tmp_path / FIGURE_FILE
    assert files.figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_search_dimensions_are_named_as_the_stored_hyperparameters() -> None:
    stored = make_trial(SWEEP, Point(1e-3)).hyperparameters()

    assert tuple(stored) == HYPERPARAMETER_ORDER
    assert set(SEARCH_DIMENSIONS) <= {field.name for field in fields(SearchSpace)}
    assert set(SEARCH_DIMENSIONS) <= set(stored)
    assert searched_hyperparameters(replace(SWEEP, search=None)) == ["learning_rate"]


def test_hyperparameters_stored_in_another_key_order_come_out_in_the_trials_order(tmp_path: Path) -> None:
    row = _rows()[0]
    shuffled = {
        **row,
        "hyperparameters": dict(sorted(row["hyperparameters"].items(), reverse=True)),
        "rate": None,
    }
    shuffled["hyperparameters"]["comment"] = "kept, last"

    result = trial_result(shuffled, "row")

    assert list(result.hyperparameters) == [*HYPERPARAMETER_ORDER, "comment"]
    assert in_order({"z": 1, "lora_r": 4, "a": 2, "learning_rate": 0.1}) == {
        "learning_rate": 0.1, "lora_r": 4, "a": 2, "z": 1,
    }  # fmt: skip


def test_one_candidate_gets_the_table_and_best_but_no_figure(tmp_path: Path) -> None:
    files = write_analysis(_rows()[:1], tmp_path)

    assert files.figure is None and not (tmp_path / FIGURE_FILE).exists()
    assert files.results.is_file() and files.best is not None


def test_a_sweep_with_no_trained_candidate_has_no_best(tmp_path: Path) -> None:
    files = write_analysis(_rows()[2:], tmp_path)  # the stopped one and the diverged one

    assert files.best is None and files.chosen is None and not (tmp_path / BEST_FILE).exists()
    assert files.results.is_file()


def test_a_malformed_row_is_refused_naming_the_candidate_and_key(tmp_path: Path) -> None:
    rows = _rows()
    nameless = {key: value for key, value in rows[1].items() if key != "name"}
    bad_training = {**rows[0], "training": [1.0, 2.0]}

    with pytest.raises(AnalysisInputError, match=r"candidate 1: 'name' must be text"):
        write_analysis([rows[0], nameless], tmp_path)
    with pytest.raises(AnalysisInputError, match=r"candidate 0 \(lr=0.0001 cosine r=4\): 'training' must be"):
        write_analysis([bad_training], tmp_path)
