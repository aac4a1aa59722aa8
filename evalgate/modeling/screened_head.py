"""Greedy next tokens from an fp32 output layer screened in bf16 and confirmed in fp32.

Greedy decoding needs the arg-max of each row's logits, not the logits. On a CPU the output layer is
the largest product of a decoding step (576 -> 49,152 for the embedded model: 16% of stacked
generation on a 2-core AMD EPYC), and where bf16 products are fast (AVX-512 BF16 on that EPYC: 6 ms
against 39 ms for 64 rows) most of it can be skipped:

1. the screen: ``z~ = bf16(h) . bf16(W)^T`` for every token t, and an upper bound of the exact logit
   ``z_t = h . w_t``. bf16 keeps 8 significant bits (unit roundoff u = 2^-8): each input is off by at
   most u of itself, the products accumulate in fp32 (576 terms: under 2^-14 more), and the result is
   rounded to bf16 once more, so by Cauchy-Schwarz

       |z~_t - z_t| <= eps_t = 4u * ||h||_2 * ||w_t||_2 + 2u * |z~_t|      (each term twice what it needs)

2. the ``k`` tokens with the largest ``z~_t + eps_t`` get their exact fp32 logit; the best of them,
   b, is the arg-max when ``z_b`` exceeds the (k+1)-th largest upper bound, which no token outside
   the candidates can pass;
3. rows it does not settle (about 1 in 80: a near tie) try again with ``WIDE_CANDIDATES`` tokens,
   and the few left get the full fp32 product.

A bias is added exactly to both sides. The token is the fp32 product's arg-max up to fp32 rounding:
the exact logits sum the same products in another order, so two logits within a few ulps may rank
differently (as they do between batch sizes). No library offers a screened arg-max, hence this module.
Whether the screen pays is measured once per process and output shape (``screen_pays``): on CPUs
without fast bf16 products (AVX2 only, or a Xeon whose bf16 products ran slower than fp32) decoding
keeps the plain product.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

CANDIDATES = 16
"""Tokens whose exact logit is computed after the screen."""

WIDE_CANDIDATES = 512
"""Tokens confirmed exactly for the rows that ``CANDIDATES`` did not settle."""

SCREEN_SPEEDUP_NEEDED = 1.5
"""The screen is used when it measured at least this many times faster than the fp32 product."""

UNIT_ROUNDOFF = 2**-8
"""bf16's: a value rounded to bf16 is within this share of itself."""

NextTokens = Callable[[torch.Tensor], torch.Tensor]
"""``hidden [rows, width] -> token ids [rows]``: the arg-max of the output layer's logits."""


class ScreenedArgmax:
    """The arg-max of ``head(hidden)`` for an fp32 ``nn.Linear`` head, through a bf16 screen."""

    def __init__(self, head: nn.Linear):
        self.weight = head.weight.detach()
        self.bias = None if head.bias is None else head.bias.detach()
        self.screen = self.weight.to(torch.bfloat16)
        self.row_norms = self.weight.norm(dim=1)

    def upper_bounds(self, hidden: torch.Tensor) -> torch.Tensor:
        """``z~_t + eps_t`` (plus the bias) for every row and token: no exact logit is above it."""
        screened = nn.functional.linear(hidden.to(torch.bfloat16), self.screen).float()
        upper = torch.addcmul(
            screened, hidden.norm(dim=-1, keepdim=True), self.row_norms, value=4 * UNIT_ROUNDOFF
        )
        upper.add_(screened.abs_(), alpha=2 * UNIT_ROUNDOFF)
        return upper if self.bias is None else upper.add_(self.bias)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        upper = self.upper_bounds(hidden)
        tokens = torch.empty(hidden.shape[0], dtype=torch.long, device=hidden.device)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        for candidates in (CANDIDATES, WIDE_CANDIDATES):
            rows = self._confirm(hidden, upper, rows, candidates, tokens)
            if not rows.numel():
                return tokens
        tokens[rows] = nn.functional.linear(hidden[rows], self.weight, self.bias).argmax(dim=-1)
        return tokens

    def _confirm(
        self,
        hidden: torch.Tensor,
        upper: torch.Tensor,
        rows: torch.Tensor,
        candidates: int,
        tokens: torch.Tensor,
    ) -> torch.Tensor:
        """Write into ``tokens`` the arg-max of the ``rows`` that the ``candidates`` tokens with the
        largest upper bounds settle; return the rows left."""
        candidates = min(candidates, self.weight.shape[0] - 1)
        bounds, ids = upper[rows].topk(candidates + 1, dim=-1)
        ids = ids[:, :candidates]
        exact = torch.einsum("rh,rkh->rk", hidden[rows], self.weight[ids])
        if self.bias is not None:
            exact = exact + self.bias[ids]
        best, where = exact.max(dim=-1)
        settled = best > bounds[:, candidates]
        tokens[rows[settled]] = ids[settled].gather(1, where[settled, None]).squeeze(1)
        return rows[~settled]


_SCREENS: weakref.WeakKeyDictionary[nn.Module, tuple[int, ScreenedArgmax]] = weakref.WeakKeyDictionary()
"""Each head's screen with its weight's version: a generation of many batches converts the weight once."""


def screened_picker(head: nn.Module) -> NextTokens | None:
    """A ``ScreenedArgmax`` for an fp32 linear head on a CPU where the screen pays, else None. The
    screen is kept until the weight changes in place (its ``_version``)."""
    if not isinstance(head, nn.Linear):
        return None
    weight = head.weight
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not screen_pays(*weight.shape):
        return None
    version, screen = _SCREENS.get(head, (-1, None))
    if screen is None or version != weight._version:
        screen = ScreenedArgmax(head)
        _SCREENS[head] = (weight._version, screen)
    return screen


@functools.cache
def screen_pays(vocabulary: int, width: int, rows: int = 32) -> bool:
    """Whether the screen (upper bounds and a top-k) of a ``vocabulary x width`` head for ``rows``
    rows measured at least ``SCREEN_SPEEDUP_NEEDED`` times faster than the fp32 product, once a
    process. Random weights leave no margin between logits, so the confirming step is not timed: on a
    model's peaked logits it settles nearly every row at the first try."""
    generator = torch.Generator().manual_seed(0)
    head = nn.Linear(width, vocabulary, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(vocabulary, width, generator=generator))
    hidden = torch.randn(rows, width, generator=generator)
    screen = ScreenedArgmax(head)
    with torch.inference_mode():
        plain = best_time(lambda: head(hidden))
        screened = best_time(lambda: screen.upper_bounds(hidden).topk(CANDIDATES + 1, dim=-1))
    return plain >= SCREEN_SPEEDUP_NEEDED * screened


def best_time(work: Callable[[], Any], repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls of ``work``, after one warm-up call."""
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)
