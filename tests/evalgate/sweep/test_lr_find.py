"""The range test ramps the rate, stops at divergence, and proposes an increasing grid."""

from __future__ import annotations

from pathlib import Path

import torch

from evalgate.modeling.loading import load_model
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.lr_find import RangeTest, find_rates, save_plot
from evalgate.sweep.training.peft_trainer import AnswerOnlyCollator, tokenize_rows


def test_grid_spans_from_under_fit_to_the_edge() -> None:
    test = RangeTest(rates=[1e-5, 1e-4, 1e-3, 1e-2, 1e-1], losses=[2, 1.8, 1.0, 1.5, 9.0])
    test.smoothed = list(map(float, test.losses))

    test.propose(4)

    assert test.valley == 1e-3 and test.edge == 1e-1
    assert test.proposed[0] == 1e-5 and test.proposed[-1] == 1e-1
    assert list(test.proposed) == sorted(test.proposed) and len(set(test.proposed)) == 4


def _memorise(model: torch.nn.Module, examples: list[dict[str, list[int]]], steps: int = 60) -> None:
    """Full fine-tune so the random tiny model sits well below chance loss (room to diverge)."""
    batch = AnswerOnlyCollator(0)(examples)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def test_range_test_on_a_real_model_stops_and_leaves_the_base_unchanged(
    tiny_lm_dir: Path, tmp_path: Path
) -> None:
    base, tokenizer = load_model(str(tiny_lm_dir), tiny_lm_dir, dtype=torch.float32)
    rows = [{"id": str(i), "question": f"q {i}", "reference": f"answer {i % 3}"} for i in range(16)]
    examples = tokenize_rows(tokenizer, rows, 64)
    _memorise(base, examples)
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    config = SweepConfig(dataset="d", batch_size=4, max_grad_norm=1e6)

    test = find_rates(
        base,
        tokenizer,
        examples,
        config,
        device="cpu",
        dtype=torch.float32,
        steps=40,
        lr_min=1e-5,
        lr_max=1e3,
    )

    assert test.diverged and len(test.rates) < 40
    assert test.rates == sorted(test.rates) and len(test.proposed) == 4
    after = base.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    plot = save_plot(test, tmp_path / "lr.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
