"""Learning-rate range test: ramp the rate exponentially, watch the loss, propose a sweep grid.

    evalgate lr-find examples/sweep.yaml --plot lr_find.png

Step ``i`` of ``n`` trains at ``lr_i = lr_min * (lr_max / lr_min) ** (i / (n - 1))`` on the sweep's
batches (fresh seeded adapter). The loss is smoothed with an exponential moving average
(``s_i = beta * s_{i-1} + (1 - beta) * loss_i``, bias-corrected); the test stops once ``s_i`` exceeds
``STOP_FACTOR`` x its minimum or a loss is not finite. The rate at the minimum smoothed loss is the
*valley*; the last rate reached is the *edge* of divergence. The proposed grid is ``k`` log-spaced
rates from ``valley / 100`` (expected to under-fit) to the edge (expected to over-fit or diverge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import PeftModel
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalgate.sweep.config import SweepConfig
from evalgate.sweep.training.peft_trainer import AnswerOnlyCollator, attach_adapter

STOP_FACTOR = 4.0
SMOOTHING = 0.7
UNDERFIT_DIVISOR = 100.0


@dataclass
class RangeTest:
    """Rates tried, raw and smoothed losses, and what they suggest."""

    rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    valley: float = 0.0
    edge: float = 0.0
    proposed: tuple[float, ...] = ()
    diverged: bool = False

    def propose(self, count: int) -> None:
        """Fill ``valley``, ``edge`` and ``proposed`` from the recorded curve."""
        finite = [
            (rate, loss) for rate, loss in zip(self.rates, self.smoothed, strict=True) if math.isfinite(loss)
        ]
        self.valley = min(finite, key=lambda pair: pair[1])[0]
        self.edge = self.rates[-1]
        low = min(self.valley / UNDERFIT_DIVISOR, self.edge / UNDERFIT_DIVISOR)
        ratio = (self.edge / low) ** (1 / max(count - 1, 1))
        self.proposed = tuple(float(f"{low * ratio**i:.1g}") for i in range(count))


def find_rates(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict[str, list[int]]],
    config: SweepConfig,
    *,
    device: str,
    dtype: torch.dtype,
    steps: int = 40,
    lr_min: float = 1e-6,
    lr_max: float = 1.0,
    count: int = 4,
) -> RangeTest:
    """Run the range test on a temporary adapter; ``base`` is left unchanged."""
    model = attach_adapter(base, config)
    try:
        test = _ramp(model, tokenizer, examples, config, device, steps, lr_min, lr_max)
    finally:
        model.unload()
    test.propose(count)
    return test


def _ramp(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict[str, list[int]]],
    config: SweepConfig,
    device: str,
    steps: int,
    lr_min: float,
    lr_max: float,
) -> RangeTest:
    model.train()
    params = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr_min)
    generator = torch.Generator().manual_seed(config.seed)
    loader: DataLoader[dict[str, list[int]]] = DataLoader(
        examples,  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=AnswerOnlyCollator(tokenizer.pad_token_id or 0),
    )
    test, average, batches = RangeTest(), 0.0, iter(loader)
    for step in range(steps):
        rate = lr_min * (lr_max / lr_min) ** (step / max(steps - 1, 1))
        for group in optimizer.param_groups:
            group["lr"] = rate
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        loss = model(**{key: value.to(device) for key, value in batch.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        test.rates.append(rate)
        test.losses.append(value)
        test.smoothed.append(smoothed)
        if not math.isfinite(value) or smoothed > STOP_FACTOR * min(test.smoothed):
            test.diverged = True
            break
    model.eval()
    return test


def save_plot(test: RangeTest, path: Path) -> Path:
    """Loss against rate (log scale) with the valley, edge and proposed grid marked, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    axes.plot(test.rates, test.losses, color="#bbbbbb", label="loss per step")
    axes.plot(test.rates, test.smoothed, color="#1f77b4", label="smoothed loss")
    axes.axvline(test.valley, color="#2ca02c", linestyle="--", label=f"valley {test.valley:.1g}")
    axes.axvline(test.edge, color="#d62728", linestyle="--", label=f"edge {test.edge:.1g}")
    for rate in test.proposed:
        axes.axvline(rate, color="#ff7f0e", alpha=0.5, linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title("learning-rate range test (orange: proposed sweep grid)")
    axes.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
