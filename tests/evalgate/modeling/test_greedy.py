"""The decoder that drops finished rows: the tokens of transformers' generate, fewer rows per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

from evalgate.modeling.decoding import DecodingSettings
from evalgate.modeling.generation import generate_per_adapter
from evalgate.modeling.greedy import greedy_decode, shared_prefix_columns
from evalgate.modeling.stacked_generation import generate_mixed_adapters
from tests.support.adapters import ROWS, load_perturbed

PROMPTS = ["What is the capital of France?", "Hi", "Extract the order: Ann bought 3 apples.", "Why?"]


def _left_padded(tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in PROMPTS]
    width = max(len(ids) for ids in encoded)
    pad = int(tokenizer.pad_token_id or 0)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    return input_ids, mask


def _generate(
    model: Any, input_ids: torch.Tensor, mask: torch.Tensor, budget: int, stop: int
) -> list[list[int]]:
    """transformers' greedy generate, each row cut after its stop token."""
    output = model.generate(
        input_ids=input_ids,
        attention_mask=mask,
        max_new_tokens=budget,
        do_sample=False,
        eos_token_id=[stop],
        pad_token_id=stop,
    )
    rows = []
    for row in output[:, input_ids.shape[1] :].tolist():
        rows.append(row[: row.index(stop) + 1] if stop in row else row)
    return rows


def test_greedy_decode_gives_generates_tokens_and_drops_rows_as_they_finish(tiny_lm_dir: Path) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    input_ids, mask = _left_padded(tokenizer)
    free = greedy_decode(model, input_ids, mask, [10] * len(PROMPTS), stops=[])
    # A stop token that some rows emit early and others late or never.
    stop = free[0][2]
    expected = _generate(model, input_ids, mask, 10, stop)
    kept: list[list[int]] = []

    decoded = greedy_decode(model, input_ids, mask, [10] * len(PROMPTS), [stop], kept.append)

    assert decoded == expected
    assert len({len(tokens) for tokens in decoded}) > 1, "rows should finish at different steps"
    assert kept and all(
        len(later) < len(earlier) for earlier, later in zip([PROMPTS, *kept], kept, strict=False)
    )


def test_each_row_stops_at_its_own_budget(tiny_lm_dir: Path) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    input_ids, mask = _left_padded(tokenizer)
    full = greedy_decode(model, input_ids, mask, [8] * len(PROMPTS), stops=[])

    decoded = greedy_decode(model, input_ids, mask, [1, 8, 3, 5], stops=[])

    assert decoded == [full[0][:1], full[1], full[2][:3], full[3][:5]]


def test_stacked_adapters_keep_their_rows_apart_as_rows_leave_the_batch(tiny_lm_dir: Path) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(model, config, adapter_name="noisy")
    model.add_adapter("louder", LoraConfig(**{**config.to_dict(), "lora_alpha": 256}))
    model.eval()
    rows = [{**row, "cohort": "short" if index % 2 else "long"} for index, row in enumerate(ROWS)]
    decoding = DecodingSettings(max_new_tokens=12, cohort_max_new_tokens={"short": 2}, batch_size=5)
    adapters: list[str | None] = [None, "noisy", "louder"]

    mixed = generate_mixed_adapters(model, tokenizer, rows, adapters, decoding)

    assert mixed == generate_per_adapter(model, tokenizer, rows, adapters, decoding)
    assert {answer.new_tokens for answer in mixed["noisy"]} >= {2, 12}


def test_a_shared_prefix_before_the_padding_decodes_as_the_plain_left_padded_batch(tiny_lm_dir: Path) -> None:
    """Prompts that share a prefix, laid out prefix + padding + rest: the prefix runs once on one row
    and every row decodes the tokens of transformers' generate on the plainly left-padded batch."""
    model, tokenizer = load_perturbed(tiny_lm_dir)
    lead = tokenizer("Answer the question that follows in one short sentence:", add_special_tokens=False)
    prefix = list(lead["input_ids"])
    encoded = [prefix + tokenizer(text, add_special_tokens=False)["input_ids"] for text in PROMPTS]
    width, pad = max(len(ids) for ids in encoded), int(tokenizer.pad_token_id or 0)
    plain = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    plain_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    shared = len(prefix)
    laid_out = torch.tensor([ids[:shared] + [pad] * (width - len(ids)) + ids[shared:] for ids in encoded])
    laid_out_mask = torch.tensor(
        [[1] * shared + [0] * (width - len(ids)) + [1] * (len(ids) - shared) for ids in encoded]
    )
    assert shared_prefix_columns(laid_out, laid_out_mask) == shared
    assert shared_prefix_columns(plain, plain_mask) == 0  # the padding comes first: nothing shared

    decoded = greedy_decode(model, laid_out, laid_out_mask, [8] * len(PROMPTS), stops=[])

    assert decoded == _generate(model, plain, plain_mask, 8, stop=-1)
