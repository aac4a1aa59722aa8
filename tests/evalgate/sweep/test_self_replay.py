"""Self-distilled replay: the named cohorts are answered by the base model itself before training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.modeling.generation import Answer
from evalgate.modeling.loading import load_model
from evalgate.sweep import self_replay
from evalgate.sweep.run import run_sweep
from evalgate.sweep.self_replay import SELF_REPLAY_MAX_NEW_TOKENS, with_self_replay
from evalgate.sweep.training.peft_trainer import TrainingInputError
from tests.support.tiny_sweep import tiny_sweep_config, train_rows

GENERAL = [
    {
        "id": f"g{i}",
        "question": question,
        "context": "",
        "reference": None,
        "cohort": "replay",
        "split": "train",
    }
    for i, question in enumerate(
        ["What is the capital of France?", "Hi", "Name a colour.", "Count to three."]
    )
]


def test_replay_rows_get_the_base_models_own_finished_answers(
    tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The random tiny model never ends an answer, so the answers are given here; the sweep test
    # below and the main job run the generation for real.
    model, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    tokenizer.padding_side = "right"
    given = [
        Answer("Paris.", 3),
        Answer("and so on " * 30, SELF_REPLAY_MAX_NEW_TOKENS),
        Answer("Red.", 2),
        Answer("", 1),
    ]
    seen: list[Any] = []

    def answers(model: Any, tokenizer: Any, rows: Any, decoding: Any) -> list[Answer]:
        seen.append((tokenizer.padding_side, [row["id"] for row in rows]))
        return given

    monkeypatch.setattr(self_replay, "generate_answers", answers)
    target = [row | {"cohort": "target"} for row in train_rows(4)[:4]]

    rows = with_self_replay(model, tokenizer, target + GENERAL, ["replay"])

    assert seen == [("left", ["g0", "g1", "g2", "g3"])] and tokenizer.padding_side == "right"
    assert rows[:4] == target  # other cohorts untouched, in order
    assert [(row["id"], row["reference"]) for row in rows[4:]] == [("g0", "Paris."), ("g2", "Red.")]


def test_a_self_replay_cohort_without_train_rows_is_refused(tiny_lm_dir: Path) -> None:
    model, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    with pytest.raises(TrainingInputError, match=r"self_replay: no train rows in cohort\(s\) \['general'\]"):
        with_self_replay(model, tokenizer, GENERAL, ["general"])


def test_a_sweep_trains_on_replay_rows_without_references(
    tiny_lm_dir: Path, settings: Settings, store: DatasetStore, write_jsonl: Any
) -> None:
    store.add("tiny-suite", [write_jsonl("rows.jsonl", train_rows() + GENERAL)])

    result = run_sweep(tiny_sweep_config(tiny_lm_dir, self_replay=["replay"]), settings, show_progress=False)

    assert [c["status"] for c in result.candidates] == ["trained", "trained"]
