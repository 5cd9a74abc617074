"""Inline SVG charts, rendered on the server: no script, no CDN, prints as vectors.

Each chart is a complete ``<svg>`` with a ``viewBox`` (it scales to the page and to A4)
and ``data-chart`` naming it, so the browser test can find and measure it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from html import escape

PALETTE = ("#1f6f8b", "#e07a1f", "#3a9d5d", "#b23a48", "#6c5b7b", "#8c8c2b")


def nice_ticks(vmax: float, most: int = 5) -> tuple[list[float], int]:
    """Axis ticks from 0 in steps of 1, 2 or 5 x 10^k, the smallest step that reaches ``vmax``
    in at most ``most`` steps, and the decimals a label needs so that no two ticks read the
    same (0; 0,2; 0,4 ... rather than 0, 0, 1, 1)."""
    if not math.isfinite(vmax) or vmax <= 0:
        return [0.0, 1.0], 0
    mag = 10.0 ** math.floor(math.log10(vmax / most))
    step = next(m * mag for m in (1, 2, 5, 10) if math.ceil(vmax / (m * mag) - 1e-9) <= most)
    n = max(1, math.ceil(vmax / step - 1e-9))
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return [round(i * step, digits + 6) for i in range(n + 1)], digits


def day_ticks(
    start: datetime, step_s: int, n: int, label: Callable[[datetime], str], *, most: int = 10
) -> list[tuple[float, str]]:
    """Ticks at the local midnights of a series of ``n`` steps from ``start`` (an aware local
    time): (position in steps, label), at most ``most`` of them, every k-th day. Ranges of up
    to two days add 06:00, 12:00 and 18:00 (``label`` gets those times too)."""
    end = start + timedelta(seconds=step_s * n)
    midnight = datetime.combine(start.date(), datetime.min.time(), start.tzinfo)
    if midnight < start:
        midnight += timedelta(days=1)
    days = []
    while midnight <= end:
        days.append(midnight)
        midnight = datetime.combine(midnight.date() + timedelta(days=1), datetime.min.time(), start.tzinfo)
    every = max(1, math.ceil(len(days) / most))
    marks = days[::every]
    if len(days) <= 3:
        marks = sorted(
            {m for d in days for m in (d + timedelta(hours=h) for h in (0, 6, 12, 18)) if start <= m <= end}
        )
    return [((m - start).total_seconds() / step_s, label(m)) for m in marks]


def line_chart(
    lines: dict[str, list[float | None]],
    labels: dict[str, str],
    x_ticks: Sequence[tuple[float, str]],
    fmt: Callable[[float, int], str],
    *,
    empty: str = "",
    width: int = 900,
    height: int = 280,
) -> str:
    """One polyline per series, each value drawn in the middle of its step (so a tick at a
    step boundary, e.g. midnight, sits where that time is); gaps (None) break the line
    instead of bridging it, and a value with no neighbour is drawn as a dot. ``x_ticks``:
    (position in steps from the start, label). Without any value the chart says ``empty``."""
    pad_l, pad_r, pad_t, pad_b = 48, 24, 12, 40
    n = max((len(v) for v in lines.values()), default=0)
    values = [x for v in lines.values() for x in v if x is not None]
    ticks, digits = nice_ticks(max(values, default=0.0))
    top = ticks[-1]
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def x_at(pos: float) -> float:
        return pad_l + w * pos / max(1, n)

    def xy(i: int, v: float) -> str:
        return f"{x_at(i + 0.5):.1f},{pad_t + h - h * v / top:.1f}"

    out = [
        f'<svg class="chart" data-chart="clients-line" viewBox="0 0 {width} {height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in ticks if values else ticks[:1]:
        y = pad_t + h - h * tick / top
        out.append(f'<line class="grid" x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="axis y-tick" x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{fmt(tick, digits)}</text>"
        )
    for pos, lab in x_ticks:
        x = x_at(pos)
        out.append(f'<line class="grid x-grid" x1="{x:.1f}" y1="{pad_t}" x2="{x:.1f}" y2="{pad_t + h}"/>')
        out.append(
            f'<text class="axis x-tick" data-pos="{pos:g}" x="{x:.1f}" y="{height - pad_b + 16}" '
            f'text-anchor="middle">{escape(lab)}</text>'
        )
    if not values and empty:
        out.append(
            f'<text class="empty" x="{pad_l + w / 2:.1f}" y="{pad_t + h / 2:.1f}" '
            f'text-anchor="middle">{escape(empty)}</text>'
        )
    for idx, (name, series) in enumerate(lines.items()):
        colour = PALETTE[idx % len(PALETTE)]
        width_px = 2.2 if idx == 0 else 1.2
        segs: list[list[str]] = [[]]
        for i, v in enumerate(series):
            if v is None:
                if segs[-1]:
                    segs.append([])
                continue
            segs[-1].append(xy(i, v))
        d = " ".join("M" + " L".join(s) for s in segs if len(s) > 1)
        if d:
            out.append(
                f'<path class="series" data-series="{escape(name)}" d="{d}" fill="none" '
                f'stroke="{colour}" stroke-width="{width_px}"/>'
            )
        for s in segs:
            if len(s) == 1:
                cx, cy = s[0].split(",")
                out.append(
                    f'<circle class="series point" data-series="{escape(name)}" cx="{cx}" cy="{cy}" '
                    f'r="{width_px + 1.3:.1f}" fill="{colour}"/>'
                )
        lx = pad_l + 8 + idx * 150
        out.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
        out.append(
            f'<text class="legend" x="{lx + 14}" y="{height - 5}">{escape(labels.get(name, name))}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    bars: Sequence[tuple[str, float | None, str]],
    fmt: Callable[[float | None], str],
    *,
    colours: dict[str, str] | None = None,
    width: int = 900,
    row_h: int = 18,
) -> str:
    """Horizontal bars (label, value, group): one per village, coloured by commune (``colours``:
    group -> colour, so the bars match the line chart's legend). A None value (no data) gets
    no bar, only its label and ``fmt(None)``."""
    pad_l, pad_r, pad_t = 280, 70, 6
    height = pad_t * 2 + row_h * max(1, len(bars))
    top = nice_ticks(max((v for _, v, _ in bars if v is not None), default=0.0))[0][-1]
    groups: dict[str, str] = dict(colours or {})
    out = [
        f'<svg class="chart" data-chart="village-bars" viewBox="0 0 {width} {height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    w = width - pad_l - pad_r
    for i, (label, value, group) in enumerate(bars):
        colour = groups.setdefault(group, PALETTE[len(groups) % len(PALETTE)])
        y = pad_t + i * row_h
        bw = max(0.0, w * value / top) if value is not None else 0.0
        out.append(
            f'<text class="axis" x="{pad_l - 6}" y="{y + row_h * 0.7:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        if value is not None:
            out.append(
                f'<rect class="bar" data-value="{value!r}" x="{pad_l}" y="{y + 2}" width="{bw:.1f}" '
                f'height="{row_h - 4}" fill="{colour}"/>'
            )
        out.append(
            f'<text class="axis" x="{pad_l + bw + 4:.1f}" y="{y + row_h * 0.7:.1f}">{fmt(value)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def heatmap(
    cells: list[list[float | None]], rows: Sequence[str], fmt: Callable[[float], str], *, width: int = 900
) -> str:
    """Weekday x hour grid; darker = more clients; empty cells hatched grey."""
    pad_l, pad_t = 40, 18
    cw = (width - pad_l - 4) / 24
    ch = 24
    height = pad_t + ch * len(rows) + 4
    top = max((v for r in cells for v in r if v is not None), default=0.0) or 1.0
    out = [
        f'<svg class="chart" data-chart="heatmap" viewBox="0 0 {width} {height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for hcol in range(24):
        out.append(
            f'<text class="axis" x="{pad_l + cw * hcol + cw / 2:.1f}" y="{pad_t - 5}" '
            f'text-anchor="middle">{hcol:02d}</text>'
        )
    for r, name in enumerate(rows):
        y = pad_t + r * ch
        out.append(
            f'<text class="axis" x="{pad_l - 6}" y="{y + ch * 0.65:.1f}" '
            f'text-anchor="end">{escape(name)}</text>'
        )
        for hcol in range(24):
            v = cells[r][hcol] if r < len(cells) else None
            x = pad_l + cw * hcol
            if v is None:
                out.append(
                    f'<rect class="cell empty" x="{x:.1f}" y="{y}" width="{cw - 1:.1f}" '
                    f'height="{ch - 1}" fill="#eee"/>'
                )
                continue
            alpha = 0.08 + 0.92 * v / top
            out.append(
                f'<rect class="cell" data-value="{v!r}" x="{x:.1f}" y="{y}" width="{cw - 1:.1f}" '
                f'height="{ch - 1}" fill="#1f6f8b" fill-opacity="{alpha:.3f}"><title>{fmt(v)}</title></rect>'
            )
    out.append("</svg>")
    return "".join(out)
