"""Inline SVG charts of a search: each varied hyperparameter against target gain and out-of-domain delta,
and a heatmap of the target gain over two varied hyperparameters.

- ``hyperparameter_scatter``: per hyperparameter that takes two values or more among the candidates, two
  panels side by side: its value (x) against the oriented target gain (y, the policy's objective check)
  and against the oriented out-of-domain delta (y, its first ood check), one point per evaluated
  candidate with its 95% interval, coloured and shaped by verdict as in the trade-off chart. The ood
  panel draws ``-δ`` dashed. A rate is on a log axis; a text value (a schedule) and a number with few
  values get one column per value; points of one value spread side by side.
- ``gain_heatmap``: when two hyperparameters vary or more, the first two (in the trials' order): one
  cell per pair of values, coloured by the mean target gain of its evaluated candidates (green above
  zero, red below, white at zero, darker further away), with the mean and how many passed. A number
  with more than ``MAX_LEVELS`` values is cut into ``BINS`` equal (for a rate: log-equal) ranges.

Candidates that were not evaluated (stopped early, diverged, failed) have no delta and are not drawn;
the templates say how many. Every text is escaped here, as in ``evalgate.report.svg``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from evalgate.report.model import CandidateView, Estimate, SweepView
from evalgate.report.svg import VERDICT_COLOURS, Scale, marker, nice_ticks, padded
from evalgate.sweep.analysis import LOG_SCALE

PANEL_W, PANEL_H = 440, 230
P_LEFT, P_RIGHT, P_TOP, P_BOTTOM = 58, 12, 26, 44
MAX_LEVELS = 8
"""A numeric hyperparameter with more values than this is binned in the heatmap."""
BINS = 5
CELL_W, CELL_H = 120, 54
H_LEFT, H_TOP = 150, 56


def varied_hyperparameters(view: SweepView) -> list[str]:
    """The hyperparameters that take two values or more across the candidates, in the trials' order."""
    return [
        name
        for name in view.hyperparameter_names
        if len({repr(c.hyperparameters.get(name)) for c in view.candidates}) > 1
    ]


def evaluated(view: SweepView) -> list[CandidateView]:
    """The candidates with a target gain (those the charts can place)."""
    return [c for c in view.candidates if c.objective is not None]


# ------------------------------------------------------------------------------------------ x axes


@dataclass(frozen=True)
class XAxis:
    """Where a hyperparameter's values go on a panel: ``position`` maps a value to ``[0, 1]``."""

    name: str
    position: Callable[[object], float]
    ticks: tuple[tuple[float, str], ...]
    """(position, label) of each tick."""
    categorical: bool


def x_axis(name: str, values: Sequence[object]) -> XAxis:
    """A log axis for a rate, a linear one for a number with many values, else one column per value."""
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    distinct = sorted(set(numbers)) if len(numbers) == len(values) else []
    if distinct and (name in LOG_SCALE or len(distinct) > MAX_LEVELS) and distinct[0] != distinct[-1]:
        return _numeric_axis(name, distinct, log=name in LOG_SCALE and distinct[0] > 0)
    levels: list[float | str] = [*distinct] if distinct else list(dict.fromkeys(str(v) for v in values))
    spot: dict[float | str, float] = {level: (i + 0.5) / len(levels) for i, level in enumerate(levels)}
    ticks = tuple((spot[level], _value_text(level)) for level in levels)

    def position(value: object) -> float:
        key = float(value) if distinct and isinstance(value, int | float) else str(value)
        return spot[key]

    return XAxis(name, position, ticks, categorical=True)


def _numeric_axis(name: str, values: Sequence[float], log: bool) -> XAxis:
    lo, hi = (math.log10(values[0]), math.log10(values[-1])) if log else (values[0], values[-1])
    pad = (hi - lo) * 0.08

    def position(value: object) -> float:
        v = math.log10(float(value)) if log else float(value)  # type: ignore[arg-type]
        return (v - lo + pad) / (hi - lo + 2 * pad)

    decades = [10.0**k for k in range(math.floor(lo), math.ceil(hi) + 1)]
    ticks = (values if len(values) <= MAX_LEVELS else decades) if log else nice_ticks(lo, hi, 5)
    shown = tuple((position(t), _value_text(t)) for t in ticks if 0 <= position(t) <= 1)
    return XAxis(name, position, shown, categorical=False)


def _value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------------ scatter


def hyperparameter_scatter(view: SweepView) -> str:
    """Two panels per varied hyperparameter (target gain, ood delta); empty when none varies or no
    candidate was evaluated."""
    names, points = varied_hyperparameters(view), evaluated(view)
    if not names or not points or view.objective_check is None:
        return ""
    rows = []
    for name in names:
        axis = x_axis(name, [c.hyperparameters.get(name) for c in points])
        gain = _panel(axis, points, lambda c: c.objective, f"target gain ({view.objective_check})", None)
        ood_label = f"ood Δ ({view.ood_check})" if view.ood_check else "ood Δ"
        ood = _panel(axis, points, lambda c: c.ood, ood_label, view.ood_margin)
        rows.append(f'<div class="panels">{gain}{ood}</div>')
    return "".join(rows)


def _panel(
    axis: XAxis,
    points: Sequence[CandidateView],
    estimate_of: Callable[[CandidateView], Estimate | None],
    y_label: str,
    margin: float | None,
) -> str:
    placed = [(c, e) for c in points if (e := estimate_of(c)) is not None]
    title = f"{axis.name} against {y_label}"
    head = (
        f'<svg class="chart panel" viewBox="0 0 {PANEL_W} {PANEL_H}" width="{PANEL_W}" height="{PANEL_H}" '
        f'role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
    )
    if not placed:
        return head + f'<text x="{P_LEFT}" y="{PANEL_H / 2}">no {escape(y_label)} measured</text></svg>'
    ys = [v for _, e in placed for v in (e.mean, e.low, e.high) if v is not None] + [0.0]
    if margin is not None:
        ys.append(-margin)
    y = Scale(*padded(ys), PANEL_H - P_BOTTOM, P_TOP)
    x = Scale(0.0, 1.0, P_LEFT, PANEL_W - P_RIGHT)
    parts = [_frame(axis, x, y), _margin(margin, y), *_points(axis, placed, x, y)]
    parts.append(f'<text x="{P_LEFT}" y="{P_TOP - 9}" font-weight="600">{escape(title)}</text>')
    parts.append(
        f'<text x="{(P_LEFT + PANEL_W - P_RIGHT) / 2:.1f}" y="{PANEL_H - 8}" text-anchor="middle">'
        f"{escape(axis.name)}</text>"
    )
    return head + "".join(parts) + "</svg>"


def _frame(axis: XAxis, x: Scale, y: Scale) -> str:
    bottom, top = PANEL_H - P_BOTTOM, P_TOP
    out = [f'<rect x="{P_LEFT}" y="{top}" width="{x.end - P_LEFT}" height="{bottom - top}" fill="none" '
           'stroke="#8c959f"/>']  # fmt: skip
    for tick in nice_ticks(y.lo, y.hi, 5):
        if y.lo <= tick <= y.hi:
            out.append(
                f'<line x1="{P_LEFT}" y1="{y(tick):.1f}" x2="{x.end}" y2="{y(tick):.1f}" class="grid"/>'
            )
            label = "0" if abs(tick) < 1e-9 else f"{tick:+.2f}"
            out.append(f'<text x="{P_LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(f'<line x1="{P_LEFT}" y1="{y(0):.1f}" x2="{x.end}" y2="{y(0):.1f}" class="zero"/>')
    for spot, label in axis.ticks:
        out.append(f'<text x="{x(spot):.1f}" y="{bottom + 15}" text-anchor="middle">{escape(label)}</text>')
    return "".join(out)


def _margin(margin: float | None, y: Scale) -> str:
    if margin is None:
        return ""
    py = y(-margin)
    return (
        f'<line x1="{P_LEFT}" y1="{py:.1f}" x2="{PANEL_W - P_RIGHT}" y2="{py:.1f}" stroke="#cf222e" '
        'stroke-dasharray="6 4"/>'
        f'<text x="{PANEL_W - P_RIGHT - 4}" y="{py - 4:.1f}" text-anchor="end" fill="#cf222e">&#8722;δ</text>'
    )


def _points(axis: XAxis, placed: Sequence[tuple[CandidateView, Estimate]], x: Scale, y: Scale) -> list[str]:
    """One marker per candidate with its vertical 95% whisker; points of one value spread side by side."""
    spots = [axis.position(c.hyperparameters.get(axis.name)) for c, _ in placed]
    width = (x.end - x.start) / max(1, len(axis.ticks)) * 0.7 if axis.categorical else 24.0
    out = []
    for index, ((candidate, estimate), spot) in enumerate(zip(placed, spots, strict=True)):
        column = [i for i, s in enumerate(spots) if s == spot]
        offset = (column.index(index) - (len(column) - 1) / 2) * min(12.0, width / max(1, len(column)))
        cx, cy = x(spot) + offset, y(estimate.mean)
        colour = VERDICT_COLOURS.get(candidate.verdict, VERDICT_COLOURS[None])
        whisker = ""
        if estimate.low is not None and estimate.high is not None:
            whisker = (
                f'<line x1="{cx:.1f}" y1="{y(estimate.low):.1f}" x2="{cx:.1f}" y2="{y(estimate.high):.1f}"/>'
            )
        tip = f"{candidate.label}: {candidate.verdict or 'no decision'}; {estimate.mean:+.4f}"
        out.append(
            f'<g class="point" stroke="{colour}" fill="{colour}">{whisker}'
            f"{marker(candidate.verdict, cx, cy, 4.5)}<title>{escape(tip)}</title></g>"
        )
    return out


# ------------------------------------------------------------------------------------------ heatmap


@dataclass(frozen=True)
class Levels:
    """The rows (or columns) of the heatmap for one hyperparameter: labels and each value's index."""

    name: str
    labels: tuple[str, ...]
    index: Callable[[object], int]


def levels(name: str, values: Sequence[object]) -> Levels:
    """One level per value, or ``BINS`` equal ranges (log-equal for a rate) for a number with more
    than ``MAX_LEVELS`` values."""
    numbers = sorted({float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)})
    if len(numbers) > MAX_LEVELS and len(numbers) == len(set(map(repr, values))):
        return _binned(name, numbers)
    order = list(dict.fromkeys(repr(v) for v in sorted(values, key=_sort_key)))
    labels = tuple(_value_text(next(v for v in values if repr(v) == key)) for key in order)
    return Levels(name, labels, lambda value: order.index(repr(value)))


def _sort_key(value: object) -> tuple[int, float, str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _binned(name: str, numbers: Sequence[float]) -> Levels:
    log = name in LOG_SCALE and numbers[0] > 0
    lo, hi = (math.log10(numbers[0]), math.log10(numbers[-1])) if log else (numbers[0], numbers[-1])
    edges = [lo + (hi - lo) * i / BINS for i in range(BINS + 1)]
    shown = [10**e for e in edges] if log else edges
    labels = tuple(f"{shown[i]:.2g}\N{EN DASH}{shown[i + 1]:.2g}" for i in range(BINS))

    def index(value: object) -> int:
        v = math.log10(float(value)) if log else float(value)  # type: ignore[arg-type]
        return min(BINS - 1, int((v - lo) / (hi - lo) * BINS))

    return Levels(name, labels, index)


def gain_heatmap(view: SweepView) -> str:
    """Mean target gain over the first two varied hyperparameters; empty when fewer than two vary or
    no candidate was evaluated."""
    names, points = varied_hyperparameters(view), evaluated(view)
    if len(names) < 2 or not points or view.objective_check is None:
        return ""
    rows = levels(names[0], [c.hyperparameters.get(names[0]) for c in points])
    columns = levels(names[1], [c.hyperparameters.get(names[1]) for c in points])
    cells: dict[tuple[int, int], list[CandidateView]] = {}
    for c in points:
        key = (rows.index(c.hyperparameters.get(names[0])), columns.index(c.hyperparameters.get(names[1])))
        cells.setdefault(key, []).append(c)
    means = {
        key: sum(c.objective.mean for c in group if c.objective) / len(group) for key, group in cells.items()
    }
    extent = max((abs(m) for m in means.values()), default=0.0) or 1.0
    title = f"mean {view.objective_check} gain by {rows.name} and {columns.name}"
    width = max(H_LEFT + CELL_W * len(columns.labels) + 20, 8 * len(title) + 16)
    height = H_TOP + CELL_H * len(rows.labels) + 30
    parts = [
        f'<svg class="chart heatmap" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="18" font-weight="600">{escape(title)}</text>',
        f'<text x="{H_LEFT}" y="{H_TOP - 22}">{escape(columns.name)} &#8594;</text>',
        f'<text x="8" y="{H_TOP - 6}">{escape(rows.name)} &#8595;</text>',
    ]
    for j, label in enumerate(columns.labels):
        cx = H_LEFT + CELL_W * (j + 0.5)
        parts.append(f'<text x="{cx:.1f}" y="{H_TOP - 6}" text-anchor="middle">{escape(label)}</text>')
    for i, label in enumerate(rows.labels):
        cy = H_TOP + CELL_H * (i + 0.5)
        parts.append(f'<text x="{H_LEFT - 8}" y="{cy + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        for j in range(len(columns.labels)):
            parts.append(_cell(i, j, cells.get((i, j), []), means.get((i, j)), extent))
    return "".join(parts) + "</svg>"


def _cell(i: int, j: int, group: Sequence[CandidateView], mean: float | None, extent: float) -> str:
    x, y = H_LEFT + CELL_W * j, H_TOP + CELL_H * i
    box = f'x="{x}" y="{y}" width="{CELL_W - 2}" height="{CELL_H - 2}"'
    if mean is None:
        centre = f'x="{x + CELL_W / 2:.1f}" y="{y + 31}" text-anchor="middle"'
        return f'<rect {box} fill="#f6f8fa" stroke="#d0d7de"/><text {centre} fill="#8c959f">&#8211;</text>'
    passed = sum(1 for c in group if c.verdict == "pass")
    tip = "; ".join(f"{c.label}: {c.verdict or 'no decision'}" for c in group)
    ink = "white" if abs(mean) / extent > 0.6 else "#24292f"
    return (
        f'<g class="cell"><rect {box} fill="{diverging_colour(mean / extent)}" stroke="white"/>'
        f'<text x="{x + CELL_W / 2:.1f}" y="{y + 24}" text-anchor="middle" font-weight="600" fill="{ink}">'
        f"{mean:+.3f}</text>"
        f'<text x="{x + CELL_W / 2:.1f}" y="{y + 41}" text-anchor="middle" font-size="10" fill="{ink}">'
        f"{passed}/{len(group)} pass</text><title>{escape(tip)}</title></g>"
    )


def diverging_colour(share: float) -> str:
    """White at 0, towards green (+1) or red (-1): ``share`` clipped to [-1, 1]."""
    share = max(-1.0, min(1.0, share))
    end = (26, 127, 55) if share >= 0 else (207, 34, 46)
    mixed = [round(255 + (channel - 255) * abs(share)) for channel in end]
    return "#" + "".join(f"{channel:02x}" for channel in mixed)
