"""Generation with the tiny model: greedy, deterministic, batching-invariant, per adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model

from evalgate.modeling.generation import (
    DecodingSettings,
    _decode,
    cache_key,
    candidate_fingerprint,
    end_of_turn_ids,
    generate_answers,
    generate_per_adapter,
)
from evalgate.modeling.stacked_generation import CannotStack, generate_mixed_adapters, stacked_adapters
from tests.support.adapters import ROWS, load_perturbed

DECODING = DecodingSettings(max_new_tokens=12, batch_size=4)


@pytest.fixture(scope="module")
def tiny(tiny_lm_dir: Path) -> tuple[Any, Any]:
    return load_perturbed(tiny_lm_dir)


def test_greedy_answers_are_deterministic_and_batching_does_not_change_them(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny

    batched = generate_answers(model, tokenizer, ROWS, DECODING)
    again = generate_answers(model, tokenizer, ROWS, DECODING)
    one_by_one = generate_answers(model, tokenizer, ROWS, DecodingSettings(max_new_tokens=12, batch_size=1))

    assert batched == again == one_by_one
    assert all(0 < answer.new_tokens <= 12 for answer in batched)
    assert len({answer.text for answer in batched}) > 1


def test_answers_come_back_in_row_order(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny

    answers = generate_answers(model, tokenizer, ROWS, DECODING)
    reversed_answers = generate_answers(model, tokenizer, ROWS[::-1], DECODING)

    assert reversed_answers == answers[::-1]


def test_generation_stops_at_the_chat_templates_end_of_turn(tiny: tuple[Any, Any]) -> None:
    _, tokenizer = tiny
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    words = tokenizer("Paris", add_special_tokens=False)["input_ids"]

    answer = _decode(tokenizer, [*words, end, *words], end_of_turn_ids(tokenizer))

    assert end_of_turn_ids(tokenizer) == [end]
    assert answer.text == "Paris" and answer.new_tokens == len(words) + 1


def test_progress_callback_counts_every_row(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    done: list[int] = []

    generate_answers(model, tokenizer, ROWS, DECODING, on_batch=done.append)

    assert done == [4, 1]


def test_a_cohort_budget_cuts_its_answers_as_a_run_at_that_budget_would(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    rows = [{**row, "cohort": "short" if row["id"] in {"a", "c"} else "long"} for row in ROWS]
    budgeted = DecodingSettings(max_new_tokens=12, cohort_max_new_tokens={"short": 3}, batch_size=4)

    generated = generate_answers(model, tokenizer, rows, budgeted)
    answers = dict(zip([row["id"] for row in rows], generated, strict=True))
    short = generate_answers(model, tokenizer, [rows[0], rows[2]], DecodingSettings(max_new_tokens=3))
    long = generate_answers(model, tokenizer, rows, DECODING)

    assert [answers["a"], answers["c"]] == short
    assert all(answer.new_tokens <= 3 for answer in short)
    assert [answers[key] for key in "bde"] == [long[1], long[3], long[4]]


def test_cohort_budgets_are_recorded_only_when_set() -> None:
    assert "cohort_max_new_tokens" not in DECODING.to_dict()
    budgeted = DecodingSettings(cohort_max_new_tokens={"ood": 24, "safety": 32})
    assert budgeted.to_dict()["cohort_max_new_tokens"] == {"ood": 24, "safety": 32}
    assert budgeted.budget("ood") == 24 and budgeted.budget("target") == budgeted.max_new_tokens
    with pytest.raises(ValueError, match="cohort_max_new_tokens\\['ood'\\]"):
        DecodingSettings(cohort_max_new_tokens={"ood": 0})


def test_per_adapter_generation_matches_the_base_with_adapters_disabled(tiny_lm_dir: Path) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    base_answers = generate_answers(model, tokenizer, ROWS, DECODING)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config, adapter_name="noisy")
    peft_model.add_adapter("identity", LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))

    answers = generate_per_adapter(peft_model, tokenizer, ROWS, [None, "identity", "noisy"], DECODING)

    assert answers[None] == base_answers == answers["identity"]
    assert answers["noisy"] != base_answers
    assert peft_model.active_adapter == "noisy"


def _random_lora(alpha: int) -> LoraConfig:
    return LoraConfig(r=4, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], init_lora_weights=False)


def test_mixed_adapter_batches_give_each_adapter_the_answers_of_the_loop(tiny_lm_dir: Path) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    torch.manual_seed(0)
    model = get_peft_model(model, _random_lora(alpha=64), adapter_name="noisy")
    model.add_adapter("louder", _random_lora(alpha=256))
    model.eval()
    adapters: list[str | None] = [None, "noisy", "louder"]
    progress: list[int] = []

    looped = generate_per_adapter(model, tokenizer, ROWS, adapters, DECODING)
    mixed = generate_mixed_adapters(model, tokenizer, ROWS, adapters, DECODING, progress.append)

    assert mixed == looped
    assert looped["noisy"] != looped[None] != looped["louder"]
    assert sum(progress) == len(ROWS) * len(adapters)


def test_adapters_of_different_ranks_fall_back_to_the_loop(tiny_lm_dir: Path) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    torch.manual_seed(0)
    model = get_peft_model(model, _random_lora(alpha=64), adapter_name="rank4")
    model.add_adapter(
        "rank8", LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj"], init_lora_weights=False)
    )
    model.eval()
    adapters: list[str | None] = [None, "rank4", "rank8"]

    with pytest.raises(CannotStack, match="ranks"), stacked_adapters(model, adapters):
        pass
    assert generate_mixed_adapters(model, tokenizer, ROWS, adapters, DECODING) == generate_per_adapter(
        model, tokenizer, ROWS, adapters, DECODING
    )


def test_cache_key_depends_on_model_dataset_and_decoding() -> None:
    base = cache_key("model", "data", DECODING)

    assert base == cache_key("model", "data", DecodingSettings(max_new_tokens=12, batch_size=4))
    assert base != cache_key("other", "data", DECODING)
    assert base != cache_key("model", "other", DECODING)
    assert base != cache_key("model", "data", DecodingSettings(max_new_tokens=13, batch_size=4))
    assert candidate_fingerprint("model", "adapter") != candidate_fingerprint("model", "adapter2")


def test_sampling_is_refused() -> None:
    with pytest.raises(ValueError, match="greedy"):
        DecodingSettings(do_sample=True)
