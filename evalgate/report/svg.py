"""Inline SVG charts of a sweep report: the per-rate trade-off chart and the training-loss curves.

Plain SVG markup (no script, no external reference); every text is escaped here, which is why the
templates embed these charts unescaped (``evalgate.report.templating`` marks them ``Markup``). Hovering a
point shows its ``<title>`` (numbers and verdict) in any browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from evalgate.report.model import CandidateView, Estimate, SweepView
from evalgate.sweep.diagnosis import smooth, smoothing_span

VERDICT_COLOURS = {"pass": "#1a7f37", "block": "#cf222e", None: "#6e7781"}
DIAGNOSIS_COLOURS = {"healthy": "#1a7f37", "flat": "#57606a", "oscillating": "#bc4c00", "diverged": "#cf222e"}
WIDTH, HEIGHT = 900, 500
LEFT, RIGHT, TOP, BOTTOM = 86, 150, 24, 64


@dataclass(frozen=True)
class Scale:
    """A linear map from data values ``[lo, hi]`` to pixels ``[start, end]``."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        """The pixel of ``value``."""
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 x 10^k) covering ``[lo, hi]``."""
    span = hi - lo if hi > lo else 1.0
    raw = span / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def padded(values: Sequence[float], pad: float = 0.08) -> tuple[float, float]:
    """``[min, max]`` of ``values`` widened by ``pad`` of the span on each side (never empty)."""
    lo, hi = min(values), max(values)
    span = hi - lo if hi > lo else max(abs(hi), 0.05)
    return lo - pad * span, hi + pad * span


def trade_off_chart(view: SweepView) -> str:
    """x: oriented ood delta, y: oriented target gain, one point per candidate with 95% whiskers."""
    points = [c for c in view.candidates if c.plottable]
    if not points or view.objective_check is None or view.ood_check is None:
        return '<p class="muted">No candidate has both an objective and an out-of-domain delta yet.</p>'
    xs = [v for c in points for v in _span(c.ood)] + [0.0]
    if view.ood_margin is not None:
        xs.append(-view.ood_margin)
    ys = [v for c in points for v in _span(c.objective)] + [0.0]
    x = Scale(*padded(xs), LEFT, WIDTH - RIGHT)
    y = Scale(*padded(ys), HEIGHT - BOTTOM, TOP)
    parts = [_grid(x, y), _margin_line(view, x, y), *(_point(c, x, y) for c in points), _legend(view)]
    x_label = f"out-of-domain Δ ({view.ood_check}, Δ mean score, + = better)"
    y_label = f"target gain ({view.objective_check}, Δ mean score, + = better)"
    parts.append(_axis_labels(x_label, y_label))
    title = f"Trade-off per candidate: {view.objective_check} gain against {view.ood_check} change"
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>" + "".join(parts) + "</svg>"
    )


def _span(estimate: Estimate | None) -> list[float]:
    if estimate is None:
        return []
    return [v for v in (estimate.mean, estimate.low, estimate.high) if v is not None]


def _grid(x: Scale, y: Scale) -> str:
    """Grid lines, tick labels, the plot frame, and solid zero lines."""
    out = []
    for tick in nice_ticks(x.lo, x.hi):
        if x.lo <= tick <= x.hi:
            px = x(tick)
            out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" class="grid"/>')
            out.append(
                f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{_tick(tick)}</text>'
            )
    for tick in nice_ticks(y.lo, y.hi):
        if y.lo <= tick <= y.hi:
            py = y(tick)
            out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" class="grid"/>')
            out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_tick(tick)}</text>')
    box_w, box_h = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{box_w}" height="{box_h}" fill="none" stroke="#8c959f"/>')
    out.append(f'<line x1="{x(0):.1f}" y1="{TOP}" x2="{x(0):.1f}" y2="{HEIGHT - BOTTOM}" class="zero"/>')
    out.append(f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}" class="zero"/>')
    return "".join(out)


def _tick(value: float) -> str:
    """A signed tick label; exactly 0 for values that are 0 up to rounding."""
    return "0" if abs(value) < 1e-9 else f"{value:+.2f}"


def _margin_line(view: SweepView, x: Scale, y: Scale) -> str:
    """The dashed vertical line at -δ of the ood check, the area beyond it lightly shaded."""
    if view.ood_margin is None:
        return ""
    px = x(-view.ood_margin)
    label = f"&#8722;δ = {-view.ood_margin:+.3f}"
    return (
        f'<rect x="{LEFT}" y="{TOP}" width="{max(0.0, px - LEFT):.1f}" height="{HEIGHT - BOTTOM - TOP}" '
        'fill="#cf222e" fill-opacity="0.05"/>'
        f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#cf222e" '
        'stroke-width="1.5" stroke-dasharray="6 4"/>'
        f'<text x="{px + 4:.1f}" y="{TOP + 14}" fill="#cf222e">{label}</text>'
    )


def _point(candidate: CandidateView, x: Scale, y: Scale) -> str:
    """One candidate: whiskers on both axes (95% interval), a marker coloured by verdict, its label."""
    assert candidate.ood is not None and candidate.objective is not None
    ood, gain = candidate.ood, candidate.objective
    colour = VERDICT_COLOURS.get(candidate.verdict, VERDICT_COLOURS[None])
    cx, cy = x(ood.mean), y(gain.mean)
    out = [f'<g class="point" stroke="{colour}" fill="{colour}">']
    if ood.low is not None and ood.high is not None:
        x0, x1 = x(ood.low), x(ood.high)
        out.append(f'<line x1="{x0:.1f}" y1="{cy:.1f}" x2="{x1:.1f}" y2="{cy:.1f}" stroke-width="1.5"/>')
        out += [f'<line x1="{v:.1f}" y1="{cy - 4:.1f}" x2="{v:.1f}" y2="{cy + 4:.1f}"/>' for v in (x0, x1)]
    if gain.low is not None and gain.high is not None:
        y0, y1 = y(gain.low), y(gain.high)
        out.append(f'<line x1="{cx:.1f}" y1="{y0:.1f}" x2="{cx:.1f}" y2="{y1:.1f}" stroke-width="1.5"/>')
        out += [f'<line x1="{cx - 4:.1f}" y1="{v:.1f}" x2="{cx + 4:.1f}" y2="{v:.1f}"/>' for v in (y0, y1)]
    out.append(marker(candidate.verdict, cx, cy))
    verdict = candidate.verdict or "no decision"
    out.append(f'<text x="{cx + 9:.1f}" y="{cy - 8:.1f}" stroke="none">{escape(candidate.label)}</text>')
    tip = f"{candidate.label}: {verdict}; target gain {_fmt(gain)}; ood Δ {_fmt(ood)}"
    out.append(f"<title>{escape(tip)}</title></g>")
    return "".join(out)


def marker(verdict: str | None, cx: float, cy: float, size: float = 6.0) -> str:
    """A circle for pass, a square for block, a hollow circle without a decision (shape as well as
    colour); ``size``: the radius, half the square's side."""
    if verdict == "pass":
        return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{size}" stroke="white"/>'
    if verdict == "block":
        side = 2 * size
        return (
            f'<rect x="{cx - size:.1f}" y="{cy - size:.1f}" width="{side}" height="{side}" stroke="white"/>'
        )
    return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{size}" fill="white" stroke-width="2"/>'


def _fmt(estimate: Estimate) -> str:
    if estimate.low is None or estimate.high is None:
        return f"{estimate.mean:+.4f}"
    return f"{estimate.mean:+.4f} [{estimate.low:+.4f}, {estimate.high:+.4f}]"


def _legend(view: SweepView) -> str:
    """Marker meanings, whiskers and the margin line, right of the plot."""
    left, top = WIDTH - RIGHT + 14, TOP + 10
    rows = [("pass", "pass"), ("block", "block"), (None, "no decision")]
    out = [f'<text x="{left}" y="{top}" font-weight="600">verdict</text>']
    for index, (verdict, text) in enumerate(rows):
        cy = top + 20 + index * 20
        colour = VERDICT_COLOURS[verdict]
        shape = marker(verdict, left + 6, cy - 4)
        out.append(f'<g stroke="{colour}" fill="{colour}">{shape}</g>')
        out.append(f'<text x="{left + 18}" y="{cy}">{text}</text>')
    base = top + 90
    out.append(f'<line x1="{left}" y1="{base}" x2="{left + 14}" y2="{base}" stroke="#24292f"/>')
    out.append(f'<text x="{left + 18}" y="{base + 4}">95% interval</text>')
    if view.ood_margin is not None:
        out.append(
            f'<line x1="{left}" y1="{base + 20}" x2="{left + 14}" y2="{base + 20}" stroke="#cf222e" '
            'stroke-dasharray="4 3"/>'
        )
        out.append(f'<text x="{left + 18}" y="{base + 24}">&#8722;δ of ood check</text>')
    return "".join(out)


def _axis_labels(x_label: str, y_label: str) -> str:
    cx, cy = (LEFT + WIDTH - RIGHT) / 2, (TOP + HEIGHT - BOTTOM) / 2
    return (
        f'<text x="{cx:.1f}" y="{HEIGHT - 18}" text-anchor="middle" font-size="13">{escape(x_label)}</text>'
        f'<text transform="translate(20 {cy:.1f}) rotate(-90)" text-anchor="middle" font-size="13">'
        f"{escape(y_label)}</text>"
    )


def loss_chart(candidate: CandidateView, width: int = 240, height: int = 120) -> str:
    """The candidate's per-step training loss on its own scale: the raw curve thin and faint, the
    smoothed curve the diagnosis judges (``evalgate.sweep.diagnosis.smooth``, a bias-corrected EMA) bold
    over it, coloured by diagnosis."""
    losses = [v for v in candidate.losses if math.isfinite(v)]
    if len(losses) < 2:
        return '<p class="muted">no loss curve</p>'
    pad = 8
    x = Scale(0, len(losses) - 1, pad + 34, width - pad)
    y = Scale(*padded(losses, 0.05), height - pad - 14, pad)
    raw = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(losses))
    smoothed = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(smooth(losses)))
    colour = DIAGNOSIS_COLOURS.get(candidate.diagnosis or "", "#57606a")
    text = (
        f"{candidate.label}: loss {losses[0]:.3g} → {losses[-1]:.3g} over {len(losses)} steps "
        f"(thin: per step; bold: smoothed, EMA span {smoothing_span(len(losses))})"
    )
    return (
        f'<svg class="loss" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(text)}" font-family="system-ui, sans-serif" '
        f'font-size="10"><title>{escape(text)}</title>'
        f'<rect x="{x.start:.1f}" y="{pad}" width="{x.end - x.start:.1f}" height="{y.start - pad:.1f}" '
        'fill="none" stroke="#d0d7de"/>'
        f'<text x="{x.start - 3:.1f}" y="{y(max(losses)) + 4:.1f}" text-anchor="end">{max(losses):.3g}</text>'
        f'<text x="{x.start - 3:.1f}" y="{y(min(losses)) + 4:.1f}" text-anchor="end">{min(losses):.3g}</text>'
        f'<text x="{x.end:.1f}" y="{height - 4}" text-anchor="end">step {len(losses)}</text>'
        f'<polyline class="raw" points="{raw}" fill="none" stroke="{colour}" stroke-width="0.8" '
        'stroke-opacity="0.35"/>'
        f'<polyline class="smoothed" points="{smoothed}" fill="none" stroke="{colour}" stroke-width="2.2"/>'
        "</svg>"
    )
