"""A device's recent past: its outages with their real durations, and a state timeline drawn
on the server as SVG (like ``cloud/reports/charts.py``: no script, no chart library).

An outage is an alert that stood for the device (``cloud.api.alerts.covers``): its board's or
its commune's (the device was unheard: ``board``), or its own problem (``down`` for the
problems that make it unavailable, ``warning`` for the others). Its span runs from the last
message heard before it to the first one after it, as availability counts it; maintenance
windows are drawn underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Literal

from cloud.alerting.maintenance import Window, occurrences
from cloud.alerting.outages import availability
from cloud.api.alerts import DOWN_PROBLEMS, covers
from cloud.storage.alerts_sql import AlertRow
from cloud.web.i18n import LOCAL_TZ, Translator

Kind = Literal["board", "down", "warning"]
#: Drawn in this order, the worst last (on top).
_ORDER: dict[Kind, int] = {"warning": 0, "down": 1, "board": 2}
COLOURS = {
    "up": "#3a9d5d",
    "never_seen": "#c8ced4",
    "down": "#b23a48",
    "board": "#5f6b78",
    "warning": "#e0a31f",
    "maint": "#1f6f8b",
}
RANGES = {"24h": 86400.0, "7d": 7 * 86400.0}


@dataclass(frozen=True, slots=True)
class Outage:
    alert: AlertRow
    kind: Kind
    start: float
    end: float | None  # None while it lasts

    def duration(self, now: float) -> float:
        return max(0.0, (self.end if self.end is not None else now) - self.start)


def outages(rows: list[AlertRow], device: str, node: str, since: float, now: float) -> list[Outage]:
    """The device's outages overlapping [since, now], newest first."""
    out = []
    for x in rows:
        if not covers(x, device, node) or x.started_at > now:
            continue
        end = x.end
        if end is not None and end < since:
            continue
        kind: Kind = "board" if x.scope != "device" else ("down" if x.problem in DOWN_PROBLEMS else "warning")
        out.append(Outage(x, kind, x.started_at, end))
    return sorted(out, key=lambda o: o.start, reverse=True)


def uptime(found: list[Outage], since: float, now: float) -> float:
    """Share of [since, now) the device was available (warnings do not count against it)."""
    return availability([(o.start, o.end) for o in found if o.kind != "warning"], since, now)


def _ticks(since: float, until: float) -> list[tuple[float, str]]:
    """Every 3 hours over a day, every day over a week, in local time."""
    span = until - since
    step = timedelta(hours=3) if span <= 2 * 86400 else timedelta(days=1)
    t = datetime.fromtimestamp(since, LOCAL_TZ).replace(minute=0, second=0, microsecond=0)
    t = t.replace(hour=0) if step == timedelta(days=1) else t.replace(hour=t.hour - t.hour % 3)
    out = []
    while t.timestamp() <= until:
        if t.timestamp() >= since:
            out.append(
                (t.timestamp(), t.strftime("%H:%M") if step < timedelta(days=1) else t.strftime("%d/%m"))
            )
        t += step
    return out


def timeline_svg(
    found: list[Outage],
    windows: list[Window],
    since: float,
    until: float,
    t: Translator,
    *,
    never_seen: bool = False,
    width: int = 1000,
) -> str:
    """One band: green while available (grey for a device never heard), a coloured span per
    outage; maintenance as a thin band below; local-time ticks. Each span has a tooltip with
    its times and duration."""
    pad_l, pad_r, top, band, gap, maint = 4, 4, 4, 34, 4, 8
    height = top + band + gap + maint + 22
    w = width - pad_l - pad_r
    base = "never_seen" if never_seen else "up"

    def x(ts: float) -> float:
        return pad_l + w * (min(max(ts, since), until) - since) / (until - since)

    out = [
        f'<svg class="chart timeline-svg" data-chart="state-history" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(t("state_history"))}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="span" data-kind="{base}" x="{pad_l}" y="{top}" width="{w}" height="{band}" '
        f'fill="{COLOURS[base]}"/>',
    ]
    for o in sorted(found, key=lambda o: _ORDER[o.kind]):
        x0, x1 = x(o.start), x(o.end if o.end is not None else until)
        end = t.dt(o.end) if o.end else t("ongoing")
        tip = f"{t(f'outage_{o.kind}')}: {t.dt(o.start)} → {end} ({t.duration(o.duration(until))})"
        out.append(
            f'<rect class="span" data-kind="{o.kind}" data-alert="{o.alert.id}" x="{x0:.2f}" y="{top}" '
            f'width="{max(1.0, x1 - x0):.2f}" height="{band}" fill="{COLOURS[o.kind]}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    y = top + band + gap
    for win in windows:
        for s, e in occurrences(win, since, until):
            x0, x1 = x(s), x(e)
            tip = f"{t('maintenance')}: {t.dt(s, False)} → {t.dt(e, False)}"
            out.append(
                f'<rect class="span" data-kind="maintenance" x="{x0:.2f}" y="{y}" '
                f'width="{max(1.0, x1 - x0):.2f}" height="{maint}" fill="{COLOURS["maint"]}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    for ts, label in _ticks(since, until):
        tx = x(ts)
        out.append(f'<line class="grid" x1="{tx:.2f}" y1="{top}" x2="{tx:.2f}" y2="{y + maint}"/>')
        out.append(f'<text class="axis" x="{tx:.2f}" y="{height - 6}" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    return "".join(out)
