"""The sweep trains real LoRA adapters (tiny model) and records them; bad input fails clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.evaluation.records import sweep_candidates
from evalgate.modeling.loading import ModelNotFoundError, load_model
from evalgate.sweep import run as sweep
from evalgate.sweep.run import run_sweep
from evalgate.sweep.training import fused as fused_train
from evalgate.sweep.training.peft_trainer import (
    CurveCallback,
    TrainingInputError,
    TrainingInterrupted,
    tokenize_rows,
)
from tests.support.tiny_sweep import tiny_sweep_config, train_rows


@pytest.fixture
def dataset(store: DatasetStore, write_jsonl) -> str:
    return store.add("tiny-suite", [write_jsonl("rows.jsonl", train_rows())]).version.label


def test_tokenized_rows_train_on_the_answer_only(tiny_lm_dir: Path) -> None:
    _, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir)
    row = train_rows()[0]

    example = tokenize_rows(tokenizer, [row], max_length=96)[0]

    answer_ids = [
        token for token, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100
    ]
    assert tokenizer.decode(answer_ids).startswith(str(row["reference"]))
    assert example["labels"][0] == -100


def test_sweep_trains_one_adapter_per_rate_that_peft_reloads(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    result = run_sweep(tiny_sweep_config(tiny_lm_dir), settings, show_progress=False)

    assert [c["rate"] for c in result.candidates] == [1e-3, 3e-2]
    assert all(c["status"] == "trained" and c["training"]["steps"] == 6 for c in result.candidates)
    assert all(len(c["training"]["loss"]) == 6 and c["diagnosis"] for c in result.candidates)
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir)
    prompt = tokenizer("Extract the order", return_tensors="pt")
    with torch.no_grad():
        before = base(**prompt).logits
        adapted = PeftModel.from_pretrained(base, result.candidates[1]["adapter_uri"])
        after = adapted(**prompt).logits
    assert not torch.allclose(before, after, atol=1e-5)


def test_same_config_gives_identical_adapters(tiny_lm_dir: Path, settings: Settings, dataset: str) -> None:
    first = run_sweep(
        tiny_sweep_config(tiny_lm_dir, name="a", learning_rates=[1e-2]), settings, show_progress=False
    )
    second = run_sweep(
        tiny_sweep_config(tiny_lm_dir, name="b", learning_rates=[1e-2]), settings, show_progress=False
    )

    weights = [
        load_file(Path(r.candidates[0]["adapter_uri"]) / "adapter_model.safetensors") for r in (first, second)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_a_searched_sweep_with_halving_records_every_trial_and_evaluates_only_the_survivors(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    config = tiny_sweep_config(
        tiny_lm_dir,
        learning_rates=(1e-3, 3e-2),
        search={"sampler": "grid", "lora_r": [2, 4], "scheduler": ["constant", "cosine"]},
        halving={"grace_steps": 2, "reduction_factor": 2, "validation_share": 0.25},
    )

    result = run_sweep(config, settings, show_progress=False)

    by_name = {c["name"]: c for c in result.candidates}
    assert len(by_name) == 8 and "lr=0.03 cosine r=2" in by_name
    assert by_name["lr=0.03 cosine r=2"]["hyperparameters"] == {
        "learning_rate": 0.03,
        "scheduler": "cosine",
        "warmup_steps": 0,
        "warmup_ratio": 0.0,
        "final_fraction": 0.0,
        "lora_r": 2,
        "lora_alpha": 8,
    }
    statuses = sorted((c["status"], c["training"]["steps"]) for c in result.candidates)
    assert statuses == [("stopped", 2)] * 4 + [("stopped", 4)] * 2 + [("trained", 6)] * 2  # rungs 2 and 4
    stopped = [c for c in result.candidates if c["status"] == "stopped"]
    assert all(c["training"]["halted"].startswith("stopped early at rung") for c in stopped)
    assert all(Path(c["adapter_uri"], "adapter_model.safetensors").is_file() for c in result.candidates)
    _, _, evaluated = sweep_candidates(DatasetStore.from_settings(settings).sessions, result.sweep_id)
    assert sorted(evaluated) == sorted(c["id"] for c in result.candidates if c["status"] == "trained")
    assert result.analysis is not None and result.analysis.best is not None and result.analysis.figure
    assert len(result.analysis.results.read_text().splitlines()) == 1 + 8  # a header, one row per trial

    again = run_sweep(config, settings, show_progress=False)  # everything is done: nothing retrains
    assert again.resumed and again.candidates == result.candidates
    assert again.analysis is not None and again.analysis.chosen == result.analysis.chosen


def test_rerun_resumes_and_skips_finished_candidates(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    first = run_sweep(tiny_sweep_config(tiny_lm_dir), settings, show_progress=False)
    again = run_sweep(tiny_sweep_config(tiny_lm_dir), settings, show_progress=False)

    assert again.resumed and again.sweep_id == first.sweep_id
    assert [c["training"] for c in again.candidates] == [c["training"] for c in first.candidates]


@pytest.mark.parametrize("trainer", ["fused", "peft"])
def test_interrupted_candidates_resume_from_their_checkpoint(
    tiny_lm_dir: Path, settings: Settings, dataset: str, trainer: str
) -> None:
    config = tiny_sweep_config(tiny_lm_dir, trainer=trainer)
    polls = iter(range(1000))  # polled after every step: true from the 4th on (what Ctrl-C sets)

    with pytest.raises(TrainingInterrupted, match="step 4"):
        run_sweep(config, settings, show_progress=False, should_stop=lambda: next(polls) >= 3)
    resumed = run_sweep(config, settings, show_progress=False)

    assert resumed.resumed
    for candidate in resumed.candidates:
        assert candidate["status"] == "trained"
        assert candidate["training"]["steps"] == 6 and len(candidate["training"]["loss"]) == 6


def test_diverging_rate_stops_early_and_the_sweep_goes_on(
    tiny_lm_dir: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A random tiny model sits at chance level, so no rate can push its loss far up; make the
    # 3e-2 run's loss non-finite at step 3 instead (the real-model test diverges for real).
    real_losses, calls = fused_train.answer_token_losses, iter(range(1, 1000))

    def nan_for_the_second_at_step_3(model: Any, batch: Any, count: int) -> torch.Tensor:
        losses = real_losses(model, batch, count)
        return losses * torch.tensor([1.0, float("nan")]) if next(calls) == 3 else losses

    monkeypatch.setattr(fused_train, "answer_token_losses", nan_for_the_second_at_step_3)

    result = run_sweep(tiny_sweep_config(tiny_lm_dir, max_steps=12), settings, show_progress=False)

    _assert_second_diverged_at_step_3(result.candidates)


def test_diverging_rate_stops_early_with_the_peft_trainer(
    tiny_lm_dir: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = CurveCallback.on_log

    def nan_at_step_3(
        self: CurveCallback, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any
    ) -> None:
        if args.learning_rate == 3e-2 and state.global_step == 3 and logs and "loss" in logs:
            logs["loss"] = float("nan")
        original(self, args, state, control, logs=logs, **kw)

    monkeypatch.setattr(CurveCallback, "on_log", nan_at_step_3)

    config = tiny_sweep_config(tiny_lm_dir, max_steps=12, trainer="peft")
    _assert_second_diverged_at_step_3(run_sweep(config, settings, show_progress=False).candidates)


def _assert_second_diverged_at_step_3(candidates: list[dict[str, Any]]) -> None:
    calm, wild = candidates
    assert calm["status"] == "trained" and calm["training"]["steps"] == 12
    assert wild["status"] == "diverged" and wild["diagnosis"] == "diverged"
    assert wild["training"]["stopped_early"] and wild["training"]["steps"] == 3
    assert Path(wild["adapter_uri"]).is_dir()


def test_out_of_memory_marks_the_candidate_failed_and_continues(
    tiny_lm_dir: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_train = sweep.train_candidate

    def train_or_oom(
        model: Any, tokenizer: Any, examples: Any, config: Any, rate: float, *a: Any, **k: Any
    ) -> Any:
        if rate == 1e-3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_train(model, tokenizer, examples, config, rate, *a, **k)

    monkeypatch.setattr(sweep, "train_candidate", train_or_oom)

    result = run_sweep(tiny_sweep_config(tiny_lm_dir, trainer="peft"), settings, show_progress=False)

    failed, trained = result.candidates
    assert failed["status"] == "failed" and "out of memory" in failed["error"]
    assert trained["status"] == "trained"


def test_fused_training_out_of_memory_falls_back_to_one_rate_at_a_time(
    tiny_lm_dir: Path, settings: Settings, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(sweep, "train_fused", oom)

    result = run_sweep(tiny_sweep_config(tiny_lm_dir), settings, show_progress=False)

    assert [c["status"] for c in result.candidates] == ["trained", "trained"]


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        (
            {"lora": {"target_modules": ["c_attn"]}},
            TrainingInputError,
            r"\['c_attn'\] not found in the model",
        ),
        ({"max_seq_length": 100_000}, TrainingInputError, "exceeds the model's limit"),
        ({"lora": {"r": 4096}}, TrainingInputError, r"lora.r: rank 4096 exceeds \d+, the smallest side"),
        (
            {"search": {"lora_r": [4, 4096]}},
            TrainingInputError,
            r"search.lora_r: rank 4096 exceeds \d+, the smallest side",
        ),
        ({"base_model": "/no/such/model"}, ModelNotFoundError, "/no/such/model"),
    ],
)
def test_bad_settings_fail_before_training(
    tiny_lm_dir: Path, settings: Settings, dataset: str, overrides: dict[str, Any], error: type, pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        run_sweep(tiny_sweep_config(tiny_lm_dir, **overrides), settings, show_progress=False)


def test_empty_train_split_is_refused(
    tiny_lm_dir: Path, settings: Settings, store: DatasetStore, write_jsonl
) -> None:
    store.add("eval-only", [write_jsonl("e.jsonl", [{"id": "a", "question": "q", "reference": "r"}])])

    with pytest.raises(TrainingInputError, match="eval-only@v1 has no train rows"):
        run_sweep(tiny_sweep_config(tiny_lm_dir, dataset="eval-only"), settings, show_progress=False)


def test_a_resumed_run_measures_divergence_from_the_first_loss_of_the_whole_run() -> None:
    from transformers import TrainerControl, TrainerState

    state = TrainerState(global_step=21, log_history=[{"loss": 2.0, "step": 1}, {"loss": 0.01, "step": 20}])
    callback, control = CurveCallback(), TrainerControl()

    for loss in (0.01, 0.04):  # ordinary batch noise near the end of a good run
        callback.on_log(None, state, control, logs={"loss": loss})  # type: ignore[arg-type]

    assert callback.first_loss == 2.0 and not callback.diverged and not control.should_training_stop


def test_naming_the_dataset_by_version_or_latest_is_the_same_sweep(
    tiny_lm_dir: Path, settings: Settings, dataset: str
) -> None:
    first = run_sweep(tiny_sweep_config(tiny_lm_dir, dataset="tiny-suite"), settings, show_progress=False)
    again = run_sweep(tiny_sweep_config(tiny_lm_dir, dataset="tiny-suite@v1"), settings, show_progress=False)

    assert again.resumed and again.sweep_id == first.sweep_id


def test_a_checkpoint_cut_short_by_a_killed_process_is_skipped_and_removed(tmp_path: Path) -> None:
    from evalgate.sweep.training.peft_trainer import last_complete_checkpoint

    for step, state in [(2, '{"global_step": 2}'), (4, '{"global_step": 4}'), (6, '{"global_st')]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-8").mkdir()  # killed before its trainer state was written

    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_top_layers_adapts_only_the_last_layers(tiny_lm_dir: Path) -> None:
    from evalgate.sweep.training.peft_trainer import attach_adapter

    base, _ = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    depth = base.config.num_hidden_layers
    model = attach_adapter(base, tiny_sweep_config(tiny_lm_dir, lora={"r": 4, "top_layers": 1}))

    adapted = {
        name.split(".layers.")[1].split(".")[0] for name, _ in model.named_parameters() if "lora_A" in name
    }
    assert adapted == {str(depth - 1)}
    with pytest.raises(TrainingInputError, match="top_layers is 99"):
        attach_adapter(model.unload(), tiny_sweep_config(tiny_lm_dir, lora={"r": 4, "top_layers": 99}))


def test_asha_whose_first_rung_comes_after_the_last_step_is_refused_naming_the_key(tiny_lm_dir: Path) -> None:
    from evalgate.sweep.ray_tune import check_asha_fits

    config = tiny_sweep_config(tiny_lm_dir, max_steps=6, checkpoint_every=10)

    with pytest.raises(TrainingInputError, match="checkpoint_every is 10 but each candidate trains 6 steps"):
        check_asha_fits(config, rows=24)
    check_asha_fits(tiny_sweep_config(tiny_lm_dir, max_steps=6, checkpoint_every=2), rows=24)
