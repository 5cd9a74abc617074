"""The InfluxQL behind a Wi-Fi report: 15-minute rollups kept by InfluxDB, read per period.

Why rollups: measured on this project's 2-core test machine with InfluxDB 1.6, a month of
35 APs polled every minute (1.5 million ``ap`` and as many ``ap_if`` points) takes 5-8 s to
aggregate at query time with ``GROUP BY time()`` (InfluxDB's per-bucket cost, not the
scan), twice that with the previous period; reading the same month from 15-minute rollups
takes well under a second. So the cloud keeps two rollup measurements:

* ``ap_15m``: per AP (all ingest tags kept) and 15-minute bucket, ``clients`` =
  ``mean(clients)``, ``uptime_s`` = ``last(uptime_s)`` and ``readings`` = ``count(clients)``
  of measurement ``ap`` (the count tells how fresh the rollup is, see ``stale_days``);
* ``ap_if_15m``: per AP, interface and bucket, ``in_octets``/``out_octets`` = the last
  counter readings of measurement ``ap_if``.

Continuous queries (``ensure_rollups``, run by the cloud at start) fill them every 15 min
and re-aggregate the last ``rollup_resample_h`` hours (``RESAMPLE ... FOR``), so replays up
to that late are included. ``refresh`` runs the same aggregation for any range
(``SELECT ... INTO``, inside InfluxDB): the monthly job refreshes the month before it
builds, and the API and CLI can ask for it, so boards that replay days late are counted.

Before reading, ``stale_days`` compares the readings per local day in ``ap`` with the sum
of ``readings`` in ``ap_15m`` (two counts: about 0.3 s for two months of 35 APs at 1-minute
polls); the days where the rollup holds fewer are refreshed first, so a report never shows
"no data" for readings that are stored.

The report then reads the rollups' rows and the ``outage`` records (one point per device
and outage, at its start, ``end_ms`` 0 while ongoing) overlapping the period.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final

from cloud.storage.influx import InfluxClient
from cloud.storage.retention import RAW_POLICY, ROLLUP_DAYS, ROLLUP_POLICY, ensure_retention

GRAIN_S: Final = 900
CLIENTS_RU: Final = "ap_15m"
COUNTERS_RU: Final = "ap_if_15m"
#: Outages longer than this that began before the period are not looked for.
OUTAGE_LOOKBACK_MS: Final = 400 * 86400 * 1000

#: The rollups and outage records live in their own retention policy (kept for years, the raw
#: points for days: cloud/storage/retention.py); the database is substituted at run time.
_RU = f'"{ROLLUP_POLICY}"'
#: What an up-to-date CQ's stored text contains (InfluxDB keeps it without quotes); one
#: made before a field was added lacks it and is replaced.
_CQ_MARKS = {"cq_ap_15m": "count(clients) AS readings", "cq_ap_if_15m": "last(in_octets) AS in_octets"}


def _clients_select(db: str) -> str:
    return (
        'SELECT mean("clients") AS "clients", last("uptime_s") AS "uptime_s", count("clients") AS "readings" '
        f'INTO "{_ident(db)}".{_RU}."{CLIENTS_RU}" FROM "{_ident(db)}"."{RAW_POLICY}"."ap"'
    )


def _counters_select(db: str) -> str:
    return (
        'SELECT last("in_octets") AS "in_octets", last("out_octets") AS "out_octets" '
        f'INTO "{_ident(db)}".{_RU}."{COUNTERS_RU}" FROM "{_ident(db)}"."{RAW_POLICY}"."ap_if"'
    )


@dataclass(slots=True)
class ApData:
    """What InfluxDB returned for one AP over one period."""

    clients: dict[int, float] = field(default_factory=dict)  # bucket start ms -> mean clients
    uptime: dict[int, float] = field(default_factory=dict)  # bucket start ms -> last uptime_s
    counters: dict[str, list[tuple[int, float | None, float | None]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutageRecord:
    device: str
    scope: str  # device | node | commune
    problem: str
    start_ms: int
    end_ms: int  # 0 while ongoing


@dataclass(slots=True)
class PeriodData:
    aps: dict[str, ApData]
    outages: list[OutageRecord]


def _q(s: str) -> str:
    return s.replace("\\", "\\\\").replace("'", "\\'")


def _ident(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _where(start_ms: int, end_ms: int, commune: str | None) -> str:
    w = f"time >= {start_ms}ms AND time < {end_ms}ms"
    if commune:
        w += f" AND \"commune\" = '{_q(commune)}'"
    return w


def continuous_queries(db: str, resample_h: int) -> list[str]:
    """DDL of the two rollup CQs (idempotent: same name and text is accepted again)."""
    out = []
    for name, select in (("cq_ap_15m", _clients_select(db)), ("cq_ap_if_15m", _counters_select(db))):
        out.append(
            f'CREATE CONTINUOUS QUERY "{name}" ON "{_ident(db)}" RESAMPLE EVERY {GRAIN_S}s '
            f"FOR {resample_h}h BEGIN {select} GROUP BY time({GRAIN_S}s), * END"
        )
    return out


async def ensure_rollups(
    influx: InfluxClient, db: str, resample_h: int, rollup_days: float = ROLLUP_DAYS
) -> None:
    """Create the database, its rollup retention policy and the rollup CQs when missing (safe
    from several workers); a CQ of an older release (another text) is replaced."""
    await ensure_retention(influx, db, raw_days=None, rollup_days=rollup_days)
    existing = await influx.query("SHOW CONTINUOUS QUERIES")
    have = {row[0]: row[1] for s in existing if s.get("name") == db for row in s.get("values", [])}
    for ddl in continuous_queries(db, resample_h):
        name = ddl.split('"')[1]
        if name in have:
            text = have[name].replace('"', "")
            if f"FOR {resample_h}h" in text and _CQ_MARKS[name] in text and f".{ROLLUP_POLICY}." in text:
                continue
            await influx.query(f'DROP CONTINUOUS QUERY "{name}" ON "{_ident(db)}"')
        await influx.query(ddl)


async def refresh(influx: InfluxClient, db: str, start_ms: int, end_ms: int) -> None:
    """Recompute the rollups of ``[start, end)`` (whole 15-minute buckets) inside InfluxDB."""
    a = start_ms - start_ms % (GRAIN_S * 1000) - GRAIN_S * 1000  # the bucket before: its last reading
    w = f"WHERE time >= {a}ms AND time < {end_ms}ms GROUP BY time({GRAIN_S}s), *"
    await asyncio.gather(
        influx.query(f"{_clients_select(db)} {w}", db=db), influx.query(f"{_counters_select(db)} {w}", db=db)
    )


def readings_queries(start_ms: int, end_ms: int, commune: str | None, day_offset_s: int) -> tuple[str, str]:
    """Readings per local day (``day_offset_s``: where local midnight falls after UTC midnight)
    in the raw measurement and in the rollup, for :func:`stale_days`."""
    group = f"GROUP BY time(1d, {day_offset_s}s)"
    w = _where(start_ms, end_ms, commune)
    return (
        f'SELECT count("clients") FROM "{RAW_POLICY}"."ap" WHERE {w} {group}',
        f'SELECT sum("readings") FROM {_RU}."{CLIENTS_RU}" WHERE {w} {group}',
    )


async def stale_days(
    influx: InfluxClient, db: str, start_ms: int, end_ms: int, commune: str | None, day_offset_s: int
) -> list[int]:
    """Start (ms) of every local day in ``[start, end)`` whose rollup holds fewer readings than
    the raw measurement (``end`` a bucket boundary: the bucket still filling is left out).

    Fewer raw readings than rolled up is not stale: raw data may have been deleted while the
    rollups are kept.
    """
    raw_q, ru_q = readings_queries(start_ms, end_ms, commune, day_offset_s)
    raw, rolled = await asyncio.gather(influx.query(raw_q, db=db), influx.query(ru_q, db=db))

    def per_day(series: list[dict[str, Any]]) -> dict[int, float]:
        return {int(t): float(v or 0) for s in series for t, v in s.get("values", [])}

    have = per_day(rolled)
    return sorted(t for t, n in per_day(raw).items() if n > have.get(t, 0.0))


def clients_query(start_ms: int, end_ms: int, commune: str | None) -> str:
    return (
        f'SELECT "clients", "uptime_s" FROM {_RU}."{CLIENTS_RU}" '
        f'WHERE {_where(start_ms - GRAIN_S * 1000, end_ms, commune)} GROUP BY "device"'
    )


def counters_query(start_ms: int, end_ms: int, commune: str | None) -> str:
    return (
        f'SELECT "in_octets", "out_octets" FROM {_RU}."{COUNTERS_RU}" '
        f'WHERE {_where(start_ms - GRAIN_S * 1000, end_ms, commune)} GROUP BY "device", "ifname"'
    )


def outages_query(start_ms: int, end_ms: int, commune: str | None) -> str:
    w = _where(start_ms - OUTAGE_LOOKBACK_MS, end_ms, commune)
    return (
        f'SELECT "end_ms" FROM {_RU}."outage" WHERE {w} AND ("end_ms" = 0 OR "end_ms" > {start_ms}) '
        'GROUP BY "device", "scope", "problem"'
    )


async def fetch(influx: InfluxClient, db: str, start_ms: int, end_ms: int, commune: str | None) -> PeriodData:
    """The three reads, concurrently. The bucket before the start gives the first counter reading."""
    clients, counters, outages = await asyncio.gather(
        influx.query(clients_query(start_ms, end_ms, commune), db=db),
        influx.query(counters_query(start_ms, end_ms, commune), db=db),
        influx.query(outages_query(start_ms, end_ms, commune), db=db),
    )
    return parse(clients, counters, outages, start_ms)


def parse(
    clients: list[dict[str, Any]],
    counters: list[dict[str, Any]],
    outages: list[dict[str, Any]],
    start_ms: int,
) -> PeriodData:
    aps: dict[str, ApData] = {}
    for s in clients:
        ap = aps.setdefault(s["tags"]["device"], ApData())
        cl, up = ap.clients, ap.uptime
        for t, mean, last_up in s["values"]:
            if mean is not None and t >= start_ms:
                cl[t] = mean
            if last_up is not None:
                up[t] = last_up
    for s in counters:
        ap = aps.setdefault(s["tags"]["device"], ApData())
        ap.counters[s["tags"].get("ifname") or ""] = [(v[0], v[1], v[2]) for v in s["values"]]
    records = [
        OutageRecord(
            s["tags"]["device"],
            s["tags"].get("scope") or "device",
            s["tags"].get("problem") or "",
            int(v[0]),
            int(v[1] or 0),
        )
        for s in outages
        for v in s["values"]
    ]
    return PeriodData(aps, records)
