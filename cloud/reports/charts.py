"""Inline SVG charts, rendered on the server: no script, no CDN, prints as vectors.

Each chart is a complete ``<svg>`` with a ``viewBox`` (it scales to the page and to A4)
and ``data-chart`` naming it, so the browser test can find and measure it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#1f6f8b", "#e07a1f", "#3a9d5d", "#b23a48", "#6c5b7b", "#8c8c2b")


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    for m in (1, 2, 2.5, 5, 10):
        step = 10 ** (len(str(int(v))) - 1) * m
        if step >= v:
            return float(step)
    return float(v)


def line_chart(
    lines: dict[str, list[float | None]],
    labels: dict[str, str],
    x_labels: Sequence[tuple[int, str]],
    fmt: Callable[[float], str],
    *,
    width: int = 900,
    height: int = 280,
) -> str:
    """One polyline per series; gaps (None) break the line instead of bridging it."""
    pad_l, pad_r, pad_t, pad_b = 48, 12, 12, 40
    n = max((len(v) for v in lines.values()), default=0)
    top = _nice_max(max((x for v in lines.values() for x in v if x is not None), default=0.0))
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def xy(i: int, v: float) -> str:
        x = pad_l + (w * i / max(1, n - 1))
        y = pad_t + h - h * v / top
        return f"{x:.1f},{y:.1f}"

    out = [
        f'<svg class="chart" data-chart="clients-line" viewBox="0 0 {width} {height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for k in range(5):
        y = pad_t + h - h * k / 4
        out.append(f'<line class="grid" x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="axis" x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(top * k / 4)}</text>'
        )
    for i, lab in x_labels:
        x = pad_l + (w * i / max(1, n - 1))
        out.append(
            f'<text class="axis" x="{x:.1f}" y="{height - pad_b + 16}" '
            f'text-anchor="middle">{escape(lab)}</text>'
        )
    for idx, (name, values) in enumerate(lines.items()):
        colour = PALETTE[idx % len(PALETTE)]
        width_px = 2.2 if idx == 0 else 1.2
        segs: list[list[str]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                if segs[-1]:
                    segs.append([])
                continue
            segs[-1].append(xy(i, v))
        d = " ".join("M" + " L".join(s) for s in segs if s)
        if d:
            out.append(
                f'<path class="series" data-series="{escape(name)}" d="{d}" fill="none" '
                f'stroke="{colour}" stroke-width="{width_px}"/>'
            )
        lx = pad_l + 8 + idx * 150
        out.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
        out.append(
            f'<text class="legend" x="{lx + 14}" y="{height - 5}">{escape(labels.get(name, name))}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    bars: Sequence[tuple[str, float, str]],
    fmt: Callable[[float], str],
    *,
    colours: dict[str, str] | None = None,
    width: int = 900,
    row_h: int = 18,
) -> str:
    """Horizontal bars (label, value, group): one per village, coloured by commune (``colours``:
    group -> colour, so the bars match the line chart's legend)."""
    pad_l, pad_r, pad_t = 280, 70, 6
    height = pad_t * 2 + row_h * max(1, len(bars))
    top = _nice_max(max((v for _, v, _ in bars), default=0.0))
    groups: dict[str, str] = dict(colours or {})
    out = [
        f'<svg class="chart" data-chart="village-bars" viewBox="0 0 {width} {height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    w = width - pad_l - pad_r
    for i, (label, value, group) in enumerate(bars):
        colour = groups.setdefault(group, PALETTE[len(groups) % len(PALETTE)])
        y = pad_t + i * row_h
        bw = max(0.0, w * value / top)
        out.append(
            f'<text class="axis" x="{pad_l - 6}" y="{y + row_h * 0.7:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
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
