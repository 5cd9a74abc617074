"""From what InfluxDB returned to the report's numbers: the metric definitions live here.

Pure functions (no I/O, ``now`` passed in) so every rule is testable on its own; the
definitions are repeated in ``docs/reports.md`` and in the report's footnotes.

* **Clients** are field ``clients`` of measurement ``ap``, read per AP as the mean of its
  readings in each bucket of ``grain_s`` (5 min). A bucket without a reading is no data:
  it is not integrated and not averaged (a gap longer than one bucket is never bridged).
* **Client-hours** = sum over buckets with data of (mean clients x bucket length).
* **Peak** = the largest bucket value; for a site, commune or all, the largest sum over
  the APs' bucket values at the same time (APs without data in a bucket add nothing).
  Its time is the bucket's start, local time.
* **Average during opening hours** = mean of an AP's bucket values whose local start lies
  in the opening hours; for a group, the sum of its APs' averages (so an AP's missing
  data lowers nothing but its own average).
* **Hour profile** = an AP's mean bucket value per local hour of day; groups add them up.
  Busiest hours: the (up to) three highest hours with clients.
* **Traffic**: see ``counters.py`` (differences of the last counter readings per bucket,
  wrap and reboot aware, no difference across more than ``gap_s``), summed over the
  interfaces the AP reports.
* **Availability** from the ``outage`` records (each from just after the last message heard
  to the first message after it, see cloud/alerting/README.md): device-scope outages (except
  ``snmp_unreachable``, where the AP answers ping) are *down*; node- and commune-scope
  outages (its board or the commune's uplink was offline) are *unknown*; down time that
  falls within unknown time counts as unknown. Availability = (measured - unknown - down)
  / (measured - unknown); measured = the period up to now. Groups add up the times. An AP
  with neither readings nor outage records in the period is *no data* and left out.
* **Coverage** = buckets with client readings / buckets of the measured part of the period
  (summed over a group's APs), beside availability: how much of the period the figures rest on.
* **No data is None**, never 0: client-hours without client readings, traffic without counter
  readings, availability, outages and down/unknown time of an AP that was not heard at all.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cloud.inventory import Inventory
from cloud.reports import counters, intervals
from cloud.reports.period import Period
from cloud.reports.wifi_model import COMPARED, Level, Metrics, Row, Series, WifiReport
from cloud.reports.wifi_query import ApData, OutageRecord, PeriodData

#: Device problems that do not make a Wi-Fi AP "down" for its users.
NOT_DOWN = frozenset({"snmp_unreachable"})


@dataclass(frozen=True, slots=True)
class Settings:
    grain_s: int
    gap_s: int
    opening: tuple[int, int]  # minutes since local midnight, [start, end)
    series_step_s: int


@dataclass(slots=True)
class Calendar:
    """Local hour, weekday and opening flag of every bucket of a period."""

    start_ms: int
    grain_ms: int
    hour: list[int]
    weekday: list[int]
    is_open: list[bool]

    @classmethod
    def of(cls, period: Period, grain_s: int, opening: tuple[int, int]) -> Calendar:
        zone = period.zone
        n = int(period.seconds) // grain_s
        hour, weekday, is_open = [], [], []
        for i in range(n):
            t = datetime.fromtimestamp(period.start_ms / 1000 + i * grain_s, zone)
            minute = t.hour * 60 + t.minute
            hour.append(t.hour)
            weekday.append(t.weekday())
            is_open.append(opening[0] <= minute < opening[1])
        return cls(period.start_ms, grain_s * 1000, hour, weekday, is_open)


@dataclass(slots=True)
class ApFigures:
    """One AP's figures over one period, with what groups need to add them up."""

    clients: dict[int, float]
    client_hours: float = 0.0
    peak: float | None = None
    peak_ms: int | None = None
    avg_open: float | None = None
    profile: list[float | None] = field(default_factory=lambda: [None] * 24)
    heat: list[list[float | None]] = field(default_factory=lambda: [[None] * 24 for _ in range(7)])
    traffic_in: float = 0.0
    traffic_out: float = 0.0
    has_traffic: bool = False  # counter readings in the period (else traffic is "no data")
    buckets: int = 0  # buckets with client readings, of ``expected`` (the coverage)
    expected: int = 0
    judged: bool = False  # readings or outage records: availability is computed (else "no data")
    measured_ms: int = 0
    unknown_ms: int = 0
    down_ms: int = 0
    outages: int = 0
    board_outages: int = 0


def _mean(s: float, n: int) -> float | None:
    return s / n if n else None


def ap_figures(
    data: ApData | None,
    records: Sequence[OutageRecord],
    cal: Calendar,
    settings: Settings,
    start_ms: int,
    measured_end_ms: int,
) -> ApFigures:
    data = data or ApData()
    f = ApFigures(clients=data.clients)
    grain_ms = cal.grain_ms
    open_s = open_n = 0.0
    hs = [0.0] * 24
    hn = [0] * 24
    ws = [[0.0] * 24 for _ in range(7)]
    wn = [[0] * 24 for _ in range(7)]
    total = 0.0
    hour, weekday, is_open = cal.hour, cal.weekday, cal.is_open
    n = len(hour)
    f.expected = max(0, min(n, (measured_end_ms - start_ms) // grain_ms))
    for ms in sorted(data.clients):
        v = data.clients[ms]
        i = (ms - cal.start_ms) // grain_ms
        if not 0 <= i < n:
            continue
        if i < f.expected:
            f.buckets += 1
        total += v
        if f.peak is None or v > f.peak:
            f.peak, f.peak_ms = v, ms
        if is_open[i]:
            open_s += v
            open_n += 1
        h, w = hour[i], weekday[i]
        hs[h] += v
        hn[h] += 1
        ws[w][h] += v
        wn[w][h] += 1
    f.client_hours = total * grain_ms / 3_600_000
    f.avg_open = _mean(open_s, int(open_n))
    f.profile = [_mean(hs[h], hn[h]) for h in range(24)]
    f.heat = [[_mean(ws[w][h], wn[w][h]) for h in range(24)] for w in range(7)]
    for readings in data.counters.values():
        f.has_traffic = f.has_traffic or any(t >= start_ms for t, _, _ in readings)
        up = data.uptime
        rin = [(t, a, up.get(t)) for t, a, _ in readings if a is not None]
        rout = [(t, b, up.get(t)) for t, _, b in readings if b is not None]
        f.traffic_in += counters.total(rin, settings.gap_s)
        f.traffic_out += counters.total(rout, settings.gap_s)
    if data.clients or data.counters or records:  # else "no data": left out of availability
        f.judged = True
        _availability(f, records, start_ms, measured_end_ms)
    return f


def _availability(f: ApFigures, records: Sequence[OutageRecord], start: int, end: int) -> None:
    f.measured_ms = max(0, end - start)
    if end <= start:
        return
    down_raw: list[intervals.Span] = []
    unknown_raw: list[intervals.Span] = []
    for r in records:
        span = (max(r.start_ms, start), min(r.end_ms if r.end_ms else end, end))
        if span[1] <= span[0]:
            continue
        if r.scope == "device":
            if r.problem in NOT_DOWN:
                continue
            down_raw.append(span)
            f.outages += 1
        else:
            unknown_raw.append(span)
            f.board_outages += 1
    unknown = intervals.union(unknown_raw)
    f.unknown_ms = intervals.length(unknown)
    f.down_ms = intervals.length(intervals.minus(down_raw, unknown))


def _busiest(profile: list[float | None]) -> list[int]:
    ranked = heapq.nlargest(3, ((v, -h) for h, v in enumerate(profile) if v))
    return [-h for _, h in ranked]


def _sum_opt(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return sum(vs) if vs else None


def _sum_if(
    figs: Sequence[ApFigures], has: Callable[[ApFigures], bool], value: Callable[[ApFigures], float]
) -> float | None:
    """The sum over the figures that have the data; None (no data) when none has."""
    with_data = [value(f) for f in figs if has(f)]
    return sum(with_data) if with_data else None


def metrics_of(figs: Sequence[ApFigures], period: Period) -> Metrics:
    """Group figures (one AP is a group of one) as the report's Metrics; None = no data."""
    if len(figs) == 1:
        f = figs[0]
        peak, peak_ms = f.peak, f.peak_ms
    else:
        summed: dict[int, float] = {}
        for f in figs:
            for ms, v in f.clients.items():
                summed[ms] = summed.get(ms, 0.0) + v
        peak = peak_ms = None
        for ms in sorted(summed):
            if peak is None or summed[ms] > peak:
                peak, peak_ms = summed[ms], ms
    profile = [_sum_opt(f.profile[h] for f in figs) for h in range(24)]
    judged = [f for f in figs if f.judged]
    measured = sum(f.measured_ms for f in judged)
    unknown = sum(f.unknown_ms for f in judged)
    down = sum(f.down_ms for f in judged)
    known = measured - unknown
    expected = sum(f.expected for f in figs)
    return Metrics(
        aps=len(figs),
        peak_clients=peak,
        peak_at=period.local(peak_ms) if peak_ms is not None else None,
        avg_clients_open=_sum_opt(f.avg_open for f in figs),
        client_hours=_sum_if(figs, lambda f: bool(f.clients), lambda f: f.client_hours),
        traffic_in_bytes=_sum_if(figs, lambda f: f.has_traffic, lambda f: f.traffic_in),
        traffic_out_bytes=_sum_if(figs, lambda f: f.has_traffic, lambda f: f.traffic_out),
        availability_pct=(known - down) / known * 100 if known > 0 else None,
        coverage_pct=sum(f.buckets for f in figs) / expected * 100 if expected else None,
        down_s=down / 1000 if judged else None,
        unknown_s=unknown / 1000 if judged else None,
        outages=sum(f.outages for f in judged) if judged else None,
        board_outages=sum(f.board_outages for f in judged) if judged else None,
        hourly_profile=profile,
        busiest_hours=_busiest(profile),
    )


def _pct(cur: float | None, prev: float | None) -> float | None:
    if cur is None or prev is None or prev == 0:
        return None
    return (cur - prev) / prev * 100


def _row(
    level: Level,
    id_: str,
    name: str,
    commune: str,
    site: str,
    figs: Sequence[ApFigures],
    prev: Sequence[ApFigures],
    period: Period,
) -> Row:
    m = metrics_of(figs, period)
    p = metrics_of(prev, period.previous())
    has_prev = any(f.clients for f in prev) or any(f.traffic_in or f.traffic_out for f in prev)
    change = {k: _pct(getattr(m, k), getattr(p, k)) if has_prev else None for k in COMPARED}
    pts = None
    if m.availability_pct is not None and p.availability_pct is not None:
        pts = m.availability_pct - p.availability_pct
    return Row(
        level=level,
        id=id_,
        name=name,
        commune=commune,
        site=site,
        metrics=m,
        previous=p,
        change_pct=change,
        change_availability_pts=pts,
    )


def _series(figs: dict[str, ApFigures], groups: dict[str, list[str]], period: Period, step_s: int) -> Series:
    n = max(1, int(period.seconds) // step_s)
    step_ms = step_s * 1000
    per_ap: dict[str, list[float | None]] = {}
    for ap, f in figs.items():
        s = [0.0] * n
        c = [0] * n
        for ms, v in f.clients.items():
            i = (ms - period.start_ms) // step_ms
            if 0 <= i < n:
                s[i] += v
                c[i] += 1
        per_ap[ap] = [s[i] / c[i] if c[i] else None for i in range(n)]
    lines = {
        name: [_sum_opt(per_ap[ap][i] for ap in members) for i in range(n)]
        for name, members in groups.items()
    }
    return Series(start=period.start, step_s=step_s, lines=lines)


def build(
    inventory: Inventory,
    period: Period,
    current: PeriodData,
    previous: PeriodData,
    settings: Settings,
    *,
    commune: str | None,
    now_ms: int,
    generated_at: datetime,
) -> WifiReport:
    # APs decommissioned during the period still count for it (their history is kept)
    in_service = inventory.devices_since(period.start_ms / 1000)
    aps = [d for d in in_service if d.kind == "ap" and (commune is None or d.commune == commune)]
    prev_period = period.previous()
    opening = settings.opening
    cal = Calendar.of(period, settings.grain_s, opening)
    pcal = Calendar.of(prev_period, settings.grain_s, opening)
    by_dev: dict[str, list[OutageRecord]] = {}
    for r in current.outages:
        by_dev.setdefault(r.device, []).append(r)
    pby_dev: dict[str, list[OutageRecord]] = {}
    for r in previous.outages:
        pby_dev.setdefault(r.device, []).append(r)
    end = min(period.end_ms, now_ms)
    pend = min(prev_period.end_ms, now_ms)
    cur = {
        d.id: ap_figures(current.aps.get(d.id), by_dev.get(d.id, []), cal, settings, period.start_ms, end)
        for d in aps
    }
    prv = {
        d.id: ap_figures(
            previous.aps.get(d.id), pby_dev.get(d.id, []), pcal, settings, prev_period.start_ms, pend
        )
        for d in aps
    }

    def row(level: Level, id_: str, name: str, commune_id: str, site: str, ids: list[str]) -> Row:
        return _row(level, id_, name, commune_id, site, [cur[i] for i in ids], [prv[i] for i in ids], period)

    ids = [d.id for d in aps]
    # grouped in one pass: matching every site against every AP took minutes for a province
    members: dict[str, list[str]] = {}
    site_members: dict[str, list[str]] = {}
    for d in aps:
        members.setdefault(d.commune, []).append(d.id)
        site_members.setdefault(d.site, []).append(d.id)
    communes = [c for c in inventory.communes if c.id in members]
    sites = [s for s in inventory.sites if s.id in site_members]
    commune_members = {c.id: members[c.id] for c in communes}
    site_name = {s.id: s.name or s.id for s in inventory.sites}
    total = row("all", "all", "all", "", "", ids)
    commune_rows = [row("commune", c.id, c.name or c.id, c.id, "", commune_members[c.id]) for c in communes]
    site_rows = [row("site", s.id, s.name or s.id, s.commune, s.id, site_members[s.id]) for s in sites]
    ap_rows = [row("ap", d.id, d.id, d.commune, d.site, [d.id]) for d in aps]
    for ap_row, d in zip(ap_rows, aps, strict=True):
        ap_row.name = f"{d.id} ({site_name.get(d.site, d.site)})"
    lines = {"all": ids, **(commune_members if len(communes) > 1 else {})}  # one commune: just "all"
    heat = [[_sum_opt(cur[i].heat[w][h] for i in ids) for h in range(24)] for w in range(7)]
    return WifiReport(
        first=period.first,
        last=period.last,
        timezone=period.tz,
        commune=commune,
        previous_first=prev_period.first,
        previous_last=prev_period.last,
        generated_at=generated_at,
        grain_s=settings.grain_s,
        gap_s=settings.gap_s,
        opening_hours=(
            f"{opening[0] // 60:02d}:{opening[0] % 60:02d}",
            f"{opening[1] // 60:02d}:{opening[1] % 60:02d}",
        ),
        measured_until=period.local(max(period.start_ms, end)),
        total=total,
        communes=commune_rows,
        sites=site_rows,
        aps=ap_rows,
        series=_series(cur, lines, period, settings.series_step_s),
        heatmap=heat,
    )
