"""How long InfluxDB keeps what: raw points for days, rollups and outage records for years.

Two retention policies in the cloud's database:

* the default one (``autogen``, which every write without a policy goes to): raw points
  (``health``, ``ap``, ``ap_radio``, ``ap_ssid``, ``ap_if``, ``camera``, ``motion``,
  ``status``, ``device_state``, ``cloud``) for ``influx.retention.raw_days``. It stays the
  default under its own name, so dashboards and queries that name no policy, and the data
  written before this policy existed, keep working;
* ``rollups``: what reports and availability read over months and years, for
  ``influx.retention.rollup_days``: the Wi-Fi report's 15-minute rollups (``ap_15m``,
  ``ap_if_15m``, filled by continuous queries, ``cloud/reports/wifi_query.py``) and the
  ``outage`` records (``cloud/alerting/outages.py``).

InfluxDB drops data a whole shard group at a time, once the group's end is older than the
policy (checked every 30 min): a point lives between ``raw_days`` and ``raw_days`` plus one
shard group (1 day for policies up to 180 days, 7 days beyond).

A database made before the policies existed keeps everything in ``autogen`` forever; the
first start of this release copies its rollups and outage records into ``rollups`` (once,
when it creates that policy), then shortens ``autogen``. Measured disk per board: see
docs/scaling.md (``commune-iot bench disk``).
"""

from __future__ import annotations

import logging
from typing import Final

from cloud.storage.influx import InfluxClient

log = logging.getLogger(__name__)

RAW_POLICY: Final = "autogen"
ROLLUP_POLICY: Final = "rollups"
#: Default: the monthly Wi-Fi report re-aggregates the month just ended from raw points on
#: the 1st (late replays included), so raw points must outlive a month; a margin beyond.
RAW_DAYS: Final = 45.0
#: Shortest raw retention that keeps that working.
RAW_DAYS_MIN: Final = 35.0
ROLLUP_DAYS: Final = 3650.0
#: Measurements kept in the rollup policy.
LONG_LIVED: Final = ("ap_15m", "ap_if_15m", "outage")


def _ident(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def duration(days: float) -> str:
    """InfluxQL duration of ``days`` (0: forever)."""
    return "INF" if days <= 0 else f"{round(days * 24)}h"


def shard_duration(days: float) -> str:
    """InfluxDB's own choice for a policy of this length (1 h up to 2 days, 1 day up to
    180 days, 7 days beyond), said explicitly so that shortening ``autogen`` (made with
    7-day groups) also shortens how long expired data lingers."""
    if 0 < days <= 2:
        return "1h"
    if 0 < days <= 180:
        return "24h"
    return "168h"


def _hours(text: str) -> float:
    """An InfluxDB duration as SHOW RETENTION POLICIES prints it (``2160h0m0s``; ``0s`` forever)."""
    total = 0.0
    num = ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            num += ch
            continue
        total += float(num or 0) * {"h": 1.0, "m": 1 / 60, "s": 1 / 3600}.get(ch, 0.0)
        num = ""
    return total


async def ensure_retention(
    influx: InfluxClient, db: str, *, raw_days: float | None, rollup_days: float
) -> None:
    """Create or adjust the policies (idempotent, safe from several cloud nodes at once).

    ``raw_days`` None leaves the raw policy as it is: only ingest, which writes the raw points,
    sets it (reports and the outage records only need the rollup policy to exist)."""
    await influx.create_database(db)
    rows = await influx.query(f"SHOW RETENTION POLICIES ON {_ident(db)}")
    policies = {v[0]: v for s in rows for v in s.get("values", [])}  # name, duration, shard, n, default
    rollups = policies.get(ROLLUP_POLICY)
    if rollups is None:
        await influx.query(
            f"CREATE RETENTION POLICY {_ident(ROLLUP_POLICY)} ON {_ident(db)} "
            f"DURATION {duration(rollup_days)} REPLICATION 1 SHARD DURATION {shard_duration(rollup_days)}"
        )
        if RAW_POLICY in policies:  # a database from before: its rollups and outages move once
            wanted = "|".join(LONG_LIVED)
            await influx.query(
                f"SELECT * INTO {_ident(db)}.{_ident(ROLLUP_POLICY)}.:MEASUREMENT "
                f"FROM {_ident(db)}.{_ident(RAW_POLICY)}./^({wanted})$/ GROUP BY *",
                db=db,
            )
            log.info(
                "copied the rollups and outage records of %s into retention policy %s", db, ROLLUP_POLICY
            )
    elif abs(_hours(rollups[1]) - (rollup_days * 24 if rollup_days > 0 else 0)) > 0.5:
        await influx.query(
            f"ALTER RETENTION POLICY {_ident(ROLLUP_POLICY)} ON {_ident(db)} "
            f"DURATION {duration(rollup_days)} SHARD DURATION {shard_duration(rollup_days)}"
        )
    if raw_days is None:
        return
    raw = policies.get(RAW_POLICY)
    want_h = raw_days * 24 if raw_days > 0 else 0
    if raw is None:
        await influx.query(
            f"CREATE RETENTION POLICY {_ident(RAW_POLICY)} ON {_ident(db)} DURATION {duration(raw_days)} "
            f"REPLICATION 1 SHARD DURATION {shard_duration(raw_days)} DEFAULT"
        )
    elif abs(_hours(raw[1]) - want_h) > 0.5 or not raw[4]:
        await influx.query(
            f"ALTER RETENTION POLICY {_ident(RAW_POLICY)} ON {_ident(db)} DURATION {duration(raw_days)} "
            f"SHARD DURATION {shard_duration(raw_days)} DEFAULT"
        )
        log.info("raw points in %s are now kept %s", db, f"{raw_days:g} days" if raw_days > 0 else "forever")
