"""The terminal output of `evalgate ci` in an 80-column console, on a CI result decided by the real gate."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.console import Console

from evalgate.ci.result import CiResult, decisive_ood, failing_checks, reason_note
from evalgate.cli.ci_table import print_result
from tests.support.ci_synthetic import synthetic_result


def _render(result: CiResult, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    print_result(console, result)
    return console.export_text().splitlines()


def test_the_table_and_every_blocking_check_fit_80_columns() -> None:
    result = synthetic_result()

    lines = _render(result)

    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["rate", "training", "verdict", "gain", "[CI]", "ood", "Δ", "[CI]"]
    rows = {line.split()[0]: line for line in lines[2:6]}
    assert rows["0.002"].split()[1:3] == ["healthy", "block"] and rows["0.0003"].split()[2] == "pass"
    assert rows["0.1"].split() == ["0.1", "diverged", "-", "-", "-"]
    for candidate, rate in zip(result.candidates[:3], ["3e-05", "0.0003", "0.002"], strict=True):
        failing = failing_checks(result, candidate)
        assert (f"{rate}: blocked by {len(failing)} check{'s' * (len(failing) > 1)}" in lines) == bool(
            failing
        )
        for check in failing:
            low, high = check["ci_holm_regress" if check["verdict"] == "regress" else "ci_holm_pass"]
            expected = [check["check"], check["verdict"], f"{check['oriented_delta']:+.3f}",
                        f"[{low:+.3f},{high:+.3f}]", "δ", "0.05"]  # fmt: skip
            assert any(line.split() == expected for line in lines), expected
    regressed = {
        c["check"] for c in failing_checks(result, result.candidates[2]) if c["verdict"] == "regress"
    }
    assert "hallucination_score/ood_grounded" in regressed
    assert "0.1: not evaluated (training diverged)" in lines
    assert "0.0003: recommended (the largest gain among the rates that passed)" in lines


def test_the_ood_column_shows_the_check_that_decides_each_rate() -> None:
    result = synthetic_result()
    blocked = result.candidates[2]

    lines = _render(result)

    decisive = decisive_ood(blocked)
    assert decisive is not None and decisive["verdict"] == "regress"
    others = [c for c in blocked.checks if c["check"].split("/")[1].startswith("ood") and c is not decisive]
    assert all(c["verdict"] != "regress" or c["ci_holm_regress"][0] + c["margin"] >= (
        decisive["ci_holm_regress"][0] + decisive["margin"]) for c in others)  # fmt: skip
    assert f"ood Δ of 0.002: {decisive['check']}" in lines or f"ood Δ: {decisive['check']}" in lines[6]
    assert f"{decisive['oriented_delta']:+.3f}" in next(line for line in lines if line.startswith("0.002 "))
    assert decisive_ood(result.candidates[3]) is None


def _with_evidence(result: CiResult, candidate: int, check: str, **evidence: Any) -> CiResult:
    """``result`` with extra evidence on one check of one candidate."""
    chosen = result.candidates[candidate]
    assert chosen.decision is not None
    checks = [{**c, **evidence} if c["check"] == check else c for c in chosen.checks]
    decision = {**chosen.decision, "evidence": {**chosen.decision["evidence"], "checks": checks}}
    candidates = list(result.candidates)
    candidates[candidate] = chosen.with_decision(decision)
    return replace(result, candidates=candidates)


def test_an_inconclusive_check_says_how_many_rows_would_decide_it() -> None:
    straddles = "oriented delta -0.0500, Holm interval [-0.1090, -0.0137] straddles -0.0500"
    result = _with_evidence(
        synthetic_result(),
        2,
        "answer_accuracy/ood",
        verdict="inconclusive",
        reason=straddles,
        rows_needed=420,
    )

    lines = _render(result)

    block = lines.index("0.002: blocked by 3 checks")
    at = next(i for i in range(block, len(lines)) if lines[i].strip().startswith("answer_accuracy/ood"))
    assert lines[at].endswith("δ 0.05") and lines[at + 1] == "      needs about 420 rows"
    assert max(len(line) for line in lines) <= 80
    wide = _render(result, width=100)
    assert any(line.endswith("δ 0.05  needs about 420 rows") for line in wide)


def test_a_long_reason_ends_in_an_ellipsis_instead_of_wrapping() -> None:
    reason = "mean 0.4100 below floor 0.5 " + "and a very long explanation " * 6
    result = _with_evidence(
        synthetic_result(), 2, "faithfulness/ood_grounded", verdict="below_floor", reason=reason
    )

    lines = _render(result)

    at = next(i for i, line in enumerate(lines) if line.strip().startswith("faithfulness/ood_grounded"))
    assert "below_floor" in lines[at] and lines[at].endswith("δ 0.05")
    assert lines[at + 1].startswith("      mean 0.4100 below floor 0.5") and lines[at + 1].endswith("…")
    assert max(len(line) for line in lines) <= 80
    assert not any(line.startswith("and a very long") for line in lines)


def test_the_reason_note_drops_what_the_line_already_shows() -> None:
    interval = "oriented delta -0.0300, Holm interval [-0.0800, +0.0250]"

    assert reason_note({"reason": f"{interval} straddles -0.0500"}) == ""
    assert reason_note({"reason": f"{interval}: upper bound < -0.0500"}) == ""
    assert reason_note({"reason": f"{interval} straddles -0.0500; about 400 rows would decide it"}) == (
        "about 400 rows would decide it"
    )
    needs = "needs about 4,700 rows to show non-inferiority at δ = 0.05, or δ >= 0.088 with these 160 rows"
    assert reason_note({"reason": f"{interval} straddles -0.0500; {needs}", "rows_needed": 4672}) == (
        "needs about 4,700 rows (or δ >= 0.088)"
    )
    edge = "its delta sits on the margin: no number of rows shows non-inferiority at δ = 0.05"
    assert reason_note(
        {"reason": f"{interval} straddles -0.0500; {edge}; no positive δ is decided with these 9 rows"}
    ) == ("on the margin: no number of rows decides it")
    assert reason_note({"reason": "3 rows flipped from pass to fail (at most 0)"}).startswith(
        "3 rows flipped"
    )


def test_a_search_trials_label_takes_the_width_a_wider_console_leaves() -> None:
    result = synthetic_result()
    trial = replace(result.candidates[2], label="lr=0.002 cosine lrf=0.1 r=16")
    result = replace(result, candidates=[*result.candidates[:2], trial, *result.candidates[3:]])

    narrow, wide = _render(result), _render(result, width=120)

    assert max(len(line) for line in narrow) <= 80 and any(line.startswith("lr=0.002 …") for line in narrow)
    assert any(line.startswith("lr=0.002 cosine lrf=0.1 r=16 ") for line in wide)
    assert max(len(line) for line in wide) <= 120
