"""The fused multi-LoRA trainer matches K plain peft runs, one per trial, trained alone (fp32, CPU).

The reference is the obvious sequential loop: a peft model per trial (its own rank and alpha), the
model's own loss (``labels=``), torch AdamW, per-run gradient clipping and transformers' own schedule
(its min-lr cosine and warmup-stable-decay schedules for a final fraction), on the same batches. Its
adapter weights after N steps must equal the fused trainer's exported ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from peft import get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import get_scheduler
from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup, get_wsd_schedule

from evalgate.modeling.loading import load_model
from evalgate.sweep.config import SchedulerSettings, SweepConfig
from evalgate.sweep.schedule import schedule_factor
from evalgate.sweep.training import fused as fused_train
from evalgate.sweep.training.fused import FusedRun, batch_indices, rungs, train_fused
from evalgate.sweep.training.peft_trainer import (
    AnswerOnlyCollator,
    TrainingInterrupted,
    attach_adapter,
    tokenize_rows,
)
from evalgate.sweep.trials import Point, make_trial, sweep_trials
from tests.support.tiny_sweep import tiny_sweep_config, train_rows

STEPS = 6


def _setup(tiny_lm_dir: Path, **overrides: Any) -> tuple[Any, Any, SweepConfig, list[Any]]:
    config = tiny_sweep_config(tiny_lm_dir, max_steps=STEPS, **overrides)
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32, device="cpu")
    tokenizer.padding_side = "right"
    rows = [row for row in train_rows() if row["split"] == "train"]
    return base, tokenizer, config, tokenize_rows(tokenizer, rows, config.max_seq_length)


def _fused_run(config: SweepConfig, examples: list[Any], tokenizer: Any, folder: Path, **kw: Any) -> FusedRun:
    kw.setdefault("trials", sweep_trials(config, config.learning_rates))
    return FusedRun(
        config=config,
        examples=examples,
        collator=AnswerOnlyCollator(tokenizer.pad_token_id),
        device="cpu",
        dtype=torch.float32,
        checkpoint=folder / "fused-checkpoint.pt",
        **kw,
    )


def _transformers_schedule(optimizer: Any, config: SweepConfig) -> Any:
    """transformers' own schedule for the config's (a final fraction: min-lr cosine, or a linear
    warmup-stable-decay without warmup or stable phase)."""
    settings, steps = config.scheduler, config.max_steps
    if settings.final_fraction and settings.kind == "cosine":
        return get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, settings.warmup_steps, steps, min_lr_rate=settings.final_fraction
        )
    if settings.final_fraction and settings.kind == "linear":
        assert settings.warmup_steps == 0
        return get_wsd_schedule(
            optimizer, 0, steps, num_stable_steps=0, decay_type="linear", min_lr_ratio=settings.final_fraction
        )
    names = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
    return get_scheduler(names[settings.kind], optimizer, settings.warmup_steps, steps)


def _plain_peft_weights(
    base: Any, tokenizer: Any, config: SweepConfig, examples: list[Any], rate: float
) -> dict[str, torch.Tensor]:
    """One adapter trained alone, the way a plain peft training loop does it."""
    model = attach_adapter(base, config)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=rate, weight_decay=0.0
    )
    scheduler = _transformers_schedule(optimizer, config)
    collator = AnswerOnlyCollator(tokenizer.pad_token_id)
    batches = batch_indices(len(examples), config.batch_size, config.seed)
    for _ in range(config.max_steps):
        batch = collator([examples[i] for i in next(batches)])
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    model.unload()
    return weights


def _assert_same_adapter(folder: Path, expected: dict[str, torch.Tensor]) -> None:
    found = load_file(str(folder / "adapter_model.safetensors"))
    assert sorted(found) == sorted(expected)
    for key, tensor in expected.items():
        torch.testing.assert_close(found[key], tensor, rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="all-layers-constant"),
        pytest.param(
            {
                "lora": {
                    "r": 4,
                    "alpha": 8,
                    "target_modules": ["q_proj", "v_proj", "o_proj"],
                    "top_layers": 1,
                },
                "scheduler": {"kind": "cosine", "warmup_steps": 2},
            },
            id="top-layer-cosine",
        ),
    ],
)
def test_each_fused_adapter_matches_a_plain_peft_run_at_its_rate(
    tiny_lm_dir: Path, tmp_path: Path, overrides: dict[str, Any]
) -> None:
    base, tokenizer, config, examples = _setup(tiny_lm_dir, learning_rates=(1e-3, 3e-3, 3e-2), **overrides)
    reference = {
        rate: _plain_peft_weights(base, tokenizer, config, examples, rate) for rate in config.learning_rates
    }

    base, outcomes = train_fused(base, _fused_run(config, examples, tokenizer, tmp_path), tmp_path)

    for outcome, rate in zip(outcomes, config.learning_rates, strict=True):
        assert outcome.steps == STEPS and outcome.diagnosis != "diverged"
        _assert_same_adapter(outcome.adapter_dir, reference[rate])
    assert not any("lora" in name for name, _ in base.named_modules())  # the base model is bare again


def test_a_diverging_rate_stops_alone_and_the_others_are_unaffected(
    tiny_lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A random tiny model sits at chance level and its norms absorb any rate, so make the second
    # adapter's loss NaN at the third step inside the graph: NaN gradients then reach its weights,
    # and must reach nothing else.
    base, tokenizer, config, examples = _setup(tiny_lm_dir, learning_rates=(1e-3, 3e-2))
    reference = _plain_peft_weights(base, tokenizer, config, examples, 1e-3)
    real_losses, calls = fused_train.answer_token_losses, iter(range(1, 1000))

    def nan_for_the_second_at_step_3(model: Any, batch: Any, count: int) -> torch.Tensor:
        losses = real_losses(model, batch, count)
        return losses * torch.tensor([1.0, float("nan")]) if next(calls) == 3 else losses

    monkeypatch.setattr(fused_train, "answer_token_losses", nan_for_the_second_at_step_3)
    base, (kept, diverged) = train_fused(base, _fused_run(config, examples, tokenizer, tmp_path), tmp_path)

    assert diverged.diagnosis == "diverged" and diverged.steps == 3 and "stopped at step 3" in diverged.reason
    assert (diverged.adapter_dir / "adapter_model.safetensors").is_file()
    assert kept.steps == STEPS
    _assert_same_adapter(kept.adapter_dir, reference)


def test_an_interrupted_fused_run_resumes_to_the_same_weights(tiny_lm_dir: Path, tmp_path: Path) -> None:
    base, tokenizer, config, examples = _setup(tiny_lm_dir, checkpoint_every=100)
    base, straight = train_fused(
        base, _fused_run(config, examples, tokenizer, tmp_path / "a"), tmp_path / "a"
    )
    calls = iter(range(1000))

    with pytest.raises(TrainingInterrupted, match="step 3"):
        train_fused(
            base,
            _fused_run(config, examples, tokenizer, tmp_path / "b", should_stop=lambda: next(calls) >= 2),
            tmp_path / "b",
        )
    base, resumed = train_fused(base, _fused_run(config, examples, tokenizer, tmp_path / "b"), tmp_path / "b")

    for first, second in zip(straight, resumed, strict=True):
        assert second.losses == first.losses
        _assert_same_adapter(
            second.adapter_dir, load_file(str(first.adapter_dir / "adapter_model.safetensors"))
        )


def test_trials_of_other_schedules_ranks_and_alphas_each_match_their_own_peft_run(
    tiny_lm_dir: Path, tmp_path: Path
) -> None:
    base, tokenizer, config, examples = _setup(tiny_lm_dir, scheduler={"kind": "constant", "warmup_steps": 2})
    trials = [
        make_trial(config, Point(1e-3, lora_r=4, lora_alpha=8)),
        make_trial(config, Point(3e-3, scheduler="cosine", final_fraction=0.1, lora_r=8, lora_alpha=32)),
        make_trial(config, Point(1e-2, scheduler="linear", warmup_ratio=0.0, final_fraction=0.2, lora_r=2)),
        make_trial(config, Point(3e-3, scheduler="cosine", lora_r=8, lora_alpha=8)),
    ]
    reference = [
        _plain_peft_weights(base, tokenizer, trial.config(config), examples, trial.learning_rate)
        for trial in trials
    ]

    base, outcomes = train_fused(
        base, _fused_run(config, examples, tokenizer, tmp_path, trials=trials), tmp_path
    )

    for outcome, trial, expected in zip(outcomes, trials, reference, strict=True):
        assert outcome.steps == STEPS, trial.label
        assert outcome.learning_rates[-1] == pytest.approx(
            trial.learning_rate * schedule_factor(trial.scheduler, STEPS - 1, STEPS)
        )
        _assert_same_adapter(outcome.adapter_dir, expected)
    assert {t.shape[0] for k, t in reference[2].items() if "lora_A" in k} == {2}  # trained at its own rank


def test_halving_stops_the_worst_at_each_rung_and_the_survivor_trains_as_without_it(
    tiny_lm_dir: Path, tmp_path: Path
) -> None:
    base, tokenizer, config, examples = _setup(
        tiny_lm_dir,
        learning_rates=(1e-4, 1e-3, 1e-2, 1e-1),
        halving={"grace_steps": 2, "reduction_factor": 2},
    )
    train, held_out = examples[8:], examples[:8]
    assert rungs(config.halving, STEPS) == [2, 4]  # type: ignore[arg-type]
    base, full = train_fused(base, _fused_run(config, train, tokenizer, tmp_path / "full"), tmp_path / "full")

    base, halved = train_fused(
        base,
        _fused_run(config, train, tokenizer, tmp_path / "halved", validation=held_out),
        tmp_path / "halved",
    )

    assert sorted(outcome.steps for outcome in halved if outcome.halted) == [2, 2, 4]
    survivor = next(outcome for outcome in halved if not outcome.halted)
    assert survivor.steps == STEPS and survivor.validation_loss[-1][0] == STEPS
    for rung, step in enumerate((2, 4)):
        at_rung = {id(o): loss for o in halved for s, loss in o.validation_loss if s == step}
        losers = [o for o in halved if o.halted and o.steps == step]
        winners = [o for o in halved if o.steps > step]
        assert losers and all(f"rung {rung} (step {step})" in o.halted for o in losers)
        assert max(at_rung[id(o)] for o in winners) <= min(at_rung[id(o)] for o in losers)
        assert len(winners) == max(1, (len(winners) + len(losers)) // 2)
    for outcome in halved:
        assert (outcome.adapter_dir / "adapter_model.safetensors").is_file()
    same = halved.index(survivor)
    assert survivor.losses == pytest.approx(full[same].losses, rel=1e-5)
    _assert_same_adapter(
        survivor.adapter_dir, load_file(str(full[same].adapter_dir / "adapter_model.safetensors"))
    )


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_schedule_factors_match_transformers(kind: str) -> None:
    names = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = get_scheduler(names[kind], optimizer, num_warmup_steps=3, num_training_steps=20)
    settings = SchedulerSettings(kind=kind, warmup_steps=3)

    for step in range(20):
        assert schedule_factor(settings, step, 20) == pytest.approx(reference.get_last_lr()[0])
        optimizer.step()
        reference.step()


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_a_final_fraction_matches_transformers_min_lr_schedules(kind: str) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    config = tiny_sweep_config(Path("."), max_steps=20, scheduler={"kind": kind, "final_fraction": 0.1})
    reference = _transformers_schedule(optimizer, config)

    for step in range(20):
        assert schedule_factor(config.scheduler, step, 20) == pytest.approx(reference.get_last_lr()[0])
        optimizer.step()
        reference.step()
    assert schedule_factor(config.scheduler, 20, 20) == pytest.approx(0.1)


def test_step_decay_stops_at_its_final_fraction() -> None:
    settings = SchedulerSettings(kind="step", step_size=2, gamma=0.5, final_fraction=0.2)
    assert [schedule_factor(settings, step, 10) for step in range(0, 10, 2)] == [1.0, 0.5, 0.25, 0.2, 0.2]


def test_bf16_products_train_close_to_fp32_products_and_leave_the_model_as_it_was(
    tiny_lm_dir: Path, tmp_path: Path
) -> None:
    """With bf16 products the projections' forward and input gradients are rounded to bf16: each
    adapter ends near the fp32 one (not equal), and no layer stays patched."""
    base, tokenizer, config, examples = _setup(tiny_lm_dir, learning_rates=(1e-3, 3e-3))
    exact_run = _fused_run(config, examples, tokenizer, tmp_path / "fp32")
    base, exact = train_fused(base, exact_run, tmp_path / "a")
    reduced_run = _fused_run(config, examples, tokenizer, tmp_path / "bf16", products="bfloat16")

    base, reduced = train_fused(base, reduced_run, tmp_path / "b")

    for plain, rounded in zip(exact, reduced, strict=True):
        assert rounded.steps == STEPS and rounded.diagnosis != "diverged"
        a = load_file(str(plain.adapter_dir / "adapter_model.safetensors"))
        b = load_file(str(rounded.adapter_dir / "adapter_model.safetensors"))
        lora_b = [key for key in a if "lora_B" in key]
        assert any(not torch.equal(a[key], b[key]) for key in lora_b), "bf16 products changed nothing"
        for key in lora_b:  # B starts at zero: what it learned, against the rounding's share of it
            assert float((a[key] - b[key]).norm()) <= 0.1 * float(a[key].norm()) + 1e-6, key
    assert not any("forward" in vars(module) for module in base.modules())
