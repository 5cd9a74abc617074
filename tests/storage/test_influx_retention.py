"""InfluxDB keeps raw points for ``raw_days`` and rollups and outages for ``rollup_days``
(cloud/storage/retention.py), on a real InfluxDB 1.6: what the cloud creates, what a database
of an older release becomes, and what a write older than the raw policy gets."""

from __future__ import annotations

import time

from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.retention import ensure_retention
from commune_iot.localsvc import InfluxDB


async def _policies(c: InfluxClient, db: str) -> dict[str, tuple[str, str, bool]]:
    rows = await c.query(f'SHOW RETENTION POLICIES ON "{db}"')
    return {v[0]: (v[1], v[2], bool(v[4])) for s in rows for v in s["values"]}


async def test_raw_points_expire_after_raw_days_and_rollups_live_for_years(
    influx_server: InfluxDB, influx_db: str
) -> None:
    async with InfluxClient(
        influx_server.url, username=influx_server.username, password=influx_server.password
    ) as c:
        await ensure_retention(c, influx_db, raw_days=45, rollup_days=3650)
        assert await _policies(c, influx_db) == {
            "autogen": ("1080h0m0s", "24h0m0s", True),  # still the default: queries naming none work
            "rollups": ("87600h0m0s", "168h0m0s", False),
        }
        now_ms = int(time.time() * 1000)
        old_ms = now_ms - 50 * 86_400_000
        # a board replaying 50-day-old data: beyond the raw policy, InfluxDB refuses the points
        res = await c.write(
            influx_db, f"health,node=a seq=1 {old_ms}\nhealth,node=a seq=2 {now_ms}\n".encode()
        )
        assert res.outcome is WriteOutcome.BAD_DATA and res.dropped == 1
        # the rollup policy takes them: a report can still be rebuilt for that month
        res = await c.write(influx_db, f"ap_15m,device=a clients=3 {old_ms}\n".encode(), rp="rollups")
        assert res.outcome is WriteOutcome.OK
        rows = await c.query('SELECT "clients" FROM "rollups"."ap_15m"', db=influx_db)
        assert rows[0]["values"] == [[old_ms, 3]]
        # a configuration change is applied at the next start; running it twice changes nothing
        await ensure_retention(c, influx_db, raw_days=0, rollup_days=3650)
        await ensure_retention(c, influx_db, raw_days=0, rollup_days=3650)
        assert (await _policies(c, influx_db))["autogen"] == ("0s", "168h0m0s", True)


async def test_a_database_of_an_older_release_keeps_its_rollups_and_outages(
    influx_server: InfluxDB, influx_db: str
) -> None:
    """Before the policies existed everything lived in autogen, forever: the first start copies
    the rollups and outage records into the rollup policy before autogen is shortened."""
    async with InfluxClient(
        influx_server.url, username=influx_server.username, password=influx_server.password
    ) as c:
        await c.create_database(influx_db)
        t = int(time.time() * 1000) - 10 * 86_400_000
        lines = (
            f"ap_15m,device=dr-ap-01,commune=da-ron clients=4.5,uptime_s=100 {t}\n"
            f"ap_if_15m,device=dr-ap-01,ifname=eth0 in_octets=10,out_octets=20 {t}\n"
            f'outage,device=dr-ap-01,scope=node,problem=silent end_ms=0,text="x" {t}\n'
            f"health,node=dr-ap-01 seq=1 {t}\n"
        )
        assert (await c.write(influx_db, lines.encode())).outcome is WriteOutcome.OK
        await ensure_retention(c, influx_db, raw_days=45, rollup_days=3650)
        for m, cols in (
            ("ap_15m", ["time", "clients", "commune", "device", "uptime_s"]),
            ("ap_if_15m", ["time", "device", "ifname", "in_octets", "out_octets"]),
            ("outage", ["time", "device", "end_ms", "problem", "scope", "text"]),
        ):
            rows = await c.query(f'SELECT * FROM "rollups"."{m}"', db=influx_db)
            assert rows and sorted(rows[0]["columns"]) == sorted(cols), m
            assert rows[0]["values"][0][0] == t
        tags = await c.query('SHOW TAG KEYS FROM "rollups"."ap_15m"', db=influx_db)
        assert {v[0] for v in tags[0]["values"]} == {"commune", "device"}  # tags stay tags
        assert await c.query('SELECT * FROM "rollups"."health"', db=influx_db) == []  # raw stays raw
