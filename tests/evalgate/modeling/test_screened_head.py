"""The output layer's arg-max through a bf16 screen: the fp32 product's tokens, on clear and tied rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import evalgate.modeling.screened_head as screened_head
from evalgate.modeling.greedy import greedy_decode
from evalgate.modeling.screened_head import ScreenedArgmax
from tests.evalgate.modeling.test_greedy import PROMPTS, _left_padded
from tests.support.adapters import load_perturbed


def _head(vocabulary: int, width: int, bias: bool) -> nn.Linear:
    generator = torch.Generator().manual_seed(0)
    head = nn.Linear(width, vocabulary, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(vocabulary, width, generator=generator) / width**0.5)
        if bias:
            head.bias.copy_(torch.randn(vocabulary, generator=generator))
    return head


class CountingScreen(ScreenedArgmax):
    """Counts the rows each confirming round was given."""

    def __init__(self, head: nn.Linear):
        super().__init__(head)
        self.rounds: list[int] = []

    def _confirm(self, hidden, upper, rows, candidates, tokens):  # type: ignore[no-untyped-def]
        self.rounds.append(int(rows.numel()))
        return super()._confirm(hidden, upper, rows, candidates, tokens)


@pytest.mark.parametrize("bias", [False, True])
def test_peaked_rows_are_settled_by_the_first_candidates_with_the_fp32_tokens(bias: bool) -> None:
    head = _head(4000, 64, bias)
    generator = torch.Generator().manual_seed(1)
    winners = torch.randint(0, 4000, (32,), generator=generator)
    # A model's hidden state points at its next token: a clear winner, as in decoding.
    hidden = 8 * head.weight.detach()[winners] + torch.randn(32, 64, generator=generator) * 0.1
    screen = CountingScreen(head)

    with torch.inference_mode():
        tokens = screen(hidden)
        expected = head(hidden).argmax(dim=-1)

    assert torch.equal(tokens, expected)
    assert screen.rounds == [32], "every clear row should be settled by the first candidates"


def test_near_ties_go_to_wider_candidates_then_to_the_full_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    head = _head(4000, 64, bias=False)
    near = torch.randn(24, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # more tokens than the first candidates, closer than the screen's error
        head.weight[7:31] = head.weight[7] + 1e-4 * near
    generator = torch.Generator().manual_seed(3)
    hidden = 8 * head.weight.detach()[[7] * 6 + [100] * 6] + torch.randn(12, 64, generator=generator)
    monkeypatch.setattr(screened_head, "WIDE_CANDIDATES", 1)  # the wide round cannot settle a tie
    screen = CountingScreen(head)

    with torch.inference_mode():
        tokens = screen(hidden)
        expected = head(hidden).argmax(dim=-1)

    assert torch.equal(tokens, expected)
    tied = int(((expected >= 7) & (expected < 31)).sum())
    assert tied >= 6 and screen.rounds == [12, tied], "the tied rows should be left to the full product"


def test_greedy_decoding_gives_the_same_tokens_with_the_screen_as_with_the_whole_model(
    tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = load_perturbed(tiny_lm_dir)
    input_ids, mask = _left_padded(tokenizer)
    budgets = [12] * len(PROMPTS)
    calls: list[int] = []
    screen_call = ScreenedArgmax.__call__

    def counted(self: ScreenedArgmax, hidden: torch.Tensor) -> torch.Tensor:
        calls.append(hidden.shape[0])
        return screen_call(self, hidden)

    monkeypatch.setattr(ScreenedArgmax, "__call__", counted)
    monkeypatch.setattr(screened_head, "screen_pays", lambda vocabulary, width: False)
    whole_model = greedy_decode(model, input_ids, mask, budgets, stops=[])
    assert not calls
    monkeypatch.setattr(screened_head, "screen_pays", lambda vocabulary, width: True)

    screened = greedy_decode(model, input_ids, mask, budgets, stops=[])

    assert screened == whole_model
    assert len(calls) == 11, "every step after the prompt pass should pick its tokens through the screen"


def test_a_head_keeps_its_screen_until_its_weight_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screened_head, "screen_pays", lambda vocabulary, width: True)
    head = _head(500, 32, bias=False)
    hidden = 8 * head.weight.detach()[[3, 4, 5]]
    first = screened_head.screened_picker(head)
    assert first is not None and screened_head.screened_picker(head) is first

    with torch.no_grad():
        head.weight.neg_()  # the winners become the losers
    again = screened_head.screened_picker(head)

    assert again is not None and again is not first
    with torch.inference_mode():
        assert torch.equal(again(hidden), head(hidden).argmax(dim=-1))
