"""bench/gate_calibration.py --part margin: the deltas it draws and the verdicts it counts."""

from __future__ import annotations

import numpy as np
import pytest

from bench.gate_calibration import (
    DEFAULT_MARGIN,
    margin_cases,
    margin_deltas,
    margin_verdicts,
    rate_with_error,
)


@pytest.mark.parametrize(("shape", "skewness"), [("normal", 0.0), ("skewed", -2.0)])
def test_margin_deltas_have_mean_exactly_minus_delta_and_the_stated_skewness(
    shape: str, skewness: float
) -> None:
    deltas = margin_deltas(np.random.default_rng(5), 400_000, shape, sd=0.2)
    centred = deltas - deltas.mean()

    assert abs(deltas.mean() + DEFAULT_MARGIN) < 5 * 0.2 / np.sqrt(deltas.size)
    assert deltas.std() == pytest.approx(0.2, rel=0.01)
    assert np.mean(centred**3) / deltas.std() ** 3 == pytest.approx(skewness, abs=0.1)
    if shape == "skewed":
        assert deltas.max() <= -DEFAULT_MARGIN + 0.2  # bounded above: the long tail is below
    with pytest.raises(ValueError):
        margin_deltas(np.random.default_rng(5), 10, "uniform")


def test_the_gate_passes_at_the_margin_exactly_when_both_bootstrap_t_and_student_t_do() -> None:
    rng = np.random.default_rng(6)
    seen = set()
    for trial in range(60):
        deltas = margin_deltas(rng, 30, "skewed" if trial % 2 else "normal")
        deltas += 0.1 * rng.uniform()  # some samples well inside the margin, so all verdicts occur
        gate, bootstrap_t, student, _ = margin_verdicts(deltas, seed=trial)
        assert gate == (bootstrap_t and student)
        seen.add((bootstrap_t, student))
    assert (True, True) in seen and len(seen) >= 3


def test_verdicts_far_from_the_margin() -> None:
    rng = np.random.default_rng(7)
    assert margin_verdicts(rng.normal(0.0, 0.05, 100), seed=1) == (True, True, True, True)
    assert margin_verdicts(rng.normal(-0.1, 0.05, 100), seed=1) == (False, False, False, False)


def test_rate_with_error_is_the_binomial_standard_error() -> None:
    assert rate_with_error(250, 10_000) == "2.50% ± 0.16%"  # sqrt(0.025 * 0.975 / 10000) = 0.156%
    assert rate_with_error(0, 50) == "0.00% ± 0.00%"


def test_a_margin_cell_gives_the_same_rates_whichever_other_cells_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def rows_of(rows: list[int]) -> dict[str, str]:
        margin_cases(8, seed=3, rows_list=rows, shapes=["skewed"])
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| skewed")]
        return {line.split(" | ")[1]: line.rsplit(" | ", 1)[0] for line in lines}  # without the seconds

    alone = rows_of([12])
    together = rows_of([20, 12])
    assert alone["12"] == together["12"] and set(together) == {"12", "20"}
