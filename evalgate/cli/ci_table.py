"""What ``evalgate ci`` prints when it is done: the per-rate table and why each other rate lost.

The table has one row per candidate (rate, training diagnosis or status, verdict, the objective's gain
and the deciding out-of-domain delta, each with the Holm interval its verdict was tested at); beneath
it, per candidate that was not recommended, one line per check that blocks it. Every line fits the
console's width (80 columns in a plain terminal): a line too long ends in an ellipsis, never wraps.

    print_result(Console(), result)
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalgate.ci.result import (
    CandidateResult,
    CiResult,
    compact_estimate,
    decisive_ood,
    failing_checks,
    rate_label,
    reason_note,
)

FIGURE_COLUMNS = 70
"""Columns of a table row besides the rate: training, verdict, both estimates and the gaps."""


def print_result(out: Console, result: CiResult) -> None:
    """The per-rate table, then why each other candidate was not recommended: one line per check that
    blocks it (label, verdict, oriented delta and Holm interval, margin, what the gate adds). Every line
    fits the console's width (80 columns in a plain terminal): long lines end in an ellipsis."""
    out.print(result_table(result, out.width))
    for line in why_lines(result, out.width):
        out.print(escape(line), no_wrap=True, overflow="ellipsis", highlight=False)


def result_table(result: CiResult, width: int = 80) -> Table:
    """One row per candidate: rate, training (diagnosis or status), verdict, the objective's gain and the
    deciding out-of-domain delta, each with the interval its verdict was tested at. The rate column
    takes what the figures leave of ``width`` (10 columns at 80; a search trial's whole label when wider)."""
    swept = result.sweep_id is not None
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("rate", max_width=max(10, width - FIGURE_COLUMNS), overflow="ellipsis", no_wrap=True)
    table.add_column("training", max_width=11, overflow="ellipsis", no_wrap=True)
    table.add_column("verdict", min_width=7, no_wrap=True)
    table.add_column("gain [CI]", min_width=22, no_wrap=True)  # the figures are never cut
    table.add_column("ood Δ [CI]", min_width=22, no_wrap=True)
    for candidate in result.candidates:
        verdict = candidate.decision["verdict"] if candidate.decision else "-"
        table.add_row(
            escape(rate_label(candidate, swept)),
            escape(candidate.diagnosis or candidate.status),
            f"[bold]{verdict}[/]" if candidate is result.recommended else verdict,
            compact_estimate(_check(candidate, result.recommendation.objective)),
            compact_estimate(decisive_ood(candidate)),
        )
    return table


def why_lines(result: CiResult, width: int = 80) -> list[str]:
    """The legend of the table's columns, then per candidate why it was (not) recommended; a check's
    note that does not fit ``width`` beside its figures goes on the next line, indented."""
    swept = result.sweep_id is not None
    lines = [f"gain: {result.recommendation.objective}", *_ood_legend(result, swept)]
    lines.append("oriented deltas (+ = better) [the Holm interval each verdict was tested at]")
    for candidate in result.candidates:
        lines += _candidate_lines(result, candidate, rate_label(candidate, swept), width)
    return lines


def _candidate_lines(result: CiResult, candidate: CandidateResult, rate: str, width: int) -> list[str]:
    """``RATE: recommended``, ``RATE: passed, smaller gain ...``, ``RATE: not evaluated (...)``, or
    ``RATE: blocked by N checks`` and one indented line per blocking check."""
    if candidate is result.recommended:
        return [f"{rate}: recommended (the largest gain among the rates that passed)"]
    failing = failing_checks(result, candidate)
    if candidate.decision is None or not failing:
        gains, chosen = result.recommendation.gains, result.recommended
        mine, best = gains.get(candidate.label), gains.get(chosen.label) if chosen else None
        if candidate.decision is not None and mine is not None and best is not None:
            return [f"{rate}: passed, smaller gain {mine:+.3f} (vs {best:+.3f})"]
        return [f"{rate}: {result.recommendation.reasons.get(candidate.label, '-')}"]
    label_width = max(len(str(c["check"])) for c in failing)
    verdict_width = max(len(str(c["verdict"])) for c in failing)
    lines = [f"{rate}: blocked by {len(failing)} check{'s' * (len(failing) > 1)}"]
    for check in failing:
        line = (
            f"  {check['check']:<{label_width}} {check['verdict']:<{verdict_width}} "
            f"{compact_estimate(check)} \u03b4 {float(check['margin']):.3g}"
        )
        note = reason_note(check)
        if not note:
            lines.append(line)
        elif len(line) + 2 + len(note) <= width:
            lines.append(f"{line}  {note}")
        else:
            lines += [line, f"      {note}"]
    return lines


def _ood_legend(result: CiResult, swept: bool) -> list[str]:
    """Which out-of-domain check each row's ood delta is (the one that decides it)."""
    by_check: dict[str, list[str]] = {}
    for candidate in result.candidates:
        check = decisive_ood(candidate)
        if check is not None:
            by_check.setdefault(str(check["check"]), []).append(rate_label(candidate, swept))
    if not by_check:
        return ["ood \u0394: no out-of-domain check in the policy"]
    if len(by_check) == 1:
        return [f"ood \u0394: {next(iter(by_check))} (the deciding out-of-domain check)"]
    return [f"ood \u0394 of {', '.join(rates)}: {label}" for label, rates in by_check.items()]


def _check(candidate: CandidateResult, label: str) -> dict[str, Any] | None:
    return next((c for c in candidate.checks if c["check"] == label), None)
