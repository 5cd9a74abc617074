"""The InfluxDB v1 client against a real InfluxDB 1.x with auth on."""

from __future__ import annotations

from pathlib import Path

from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.lineproto import join, line
from commune_iot.localsvc import InfluxDB, free_port

TAGS = {"node": "dr-ap-01", "site": "thôn 1, a=b"}  # space, comma and '=' all need escaping


def _client(server: InfluxDB, password: str | None = None) -> InfluxClient:
    return InfluxClient(server.url, username=server.username, password=password or server.password)


async def test_create_write_query_with_escaped_tags(influx_server: InfluxDB, influx_db: str) -> None:
    async with _client(influx_server) as c:
        assert await c.ping() is None
        missing = await c.write(influx_db, join([line("m", {}, {"v": 1}, 1000)]))
        assert missing.outcome is WriteOutcome.NO_DATABASE
        await c.create_database(influx_db)
        await c.create_database(influx_db)  # idempotent
        body = join(
            [
                line("health", {"node": "dr-ap-01", "site": "thôn 1, a=b"}, {"cpu_pct": 3, "ok": True}, 1000),
                line(
                    "health", {"node": "dr-ap-01", "site": "thôn 1, a=b"}, {"cpu_pct": 4.5, "ok": False}, 2000
                ),
            ]
        )
        res = await c.write(influx_db, body)
        assert res.outcome is WriteOutcome.OK, res
        series = await c.query('SELECT "cpu_pct", "ok" FROM "health" GROUP BY "site"', db=influx_db)
    assert series[0]["tags"] == {"site": "thôn 1, a=b"}
    assert series[0]["values"] == [[1000, 3.0, True], [2000, 4.5, False]]


async def test_bad_lines_are_bad_data_and_valid_ones_still_land(
    influx_server: InfluxDB, influx_db: str
) -> None:
    async with _client(influx_server) as c:
        await c.create_database(influx_db)
        assert (await c.write(influx_db, b"m v=1.0 1000\n")).outcome is WriteOutcome.OK
        # a string into a float field (type conflict) next to a valid point
        res = await c.write(influx_db, b'm v="text" 2000\nm v=3.0 3000\n')
        assert res.outcome is WriteOutcome.BAD_DATA
        assert res.status == 400 and "conflict" in res.error
        garbage = await c.write(influx_db, b"this is not line protocol\n")
        assert garbage.outcome is WriteOutcome.BAD_DATA
        series = await c.query('SELECT "v" FROM "m"', db=influx_db)
    assert [row[0] for row in series[0]["values"]] == [1000, 3000]


async def test_wrong_password_is_retried_not_dropped(influx_server: InfluxDB, influx_db: str) -> None:
    async with _client(influx_server, password="wrong") as c:
        res = await c.write(influx_db, b"m v=1.0 1000\n")
    assert res.outcome is WriteOutcome.RETRY
    assert res.status == 401


async def test_connection_refused_is_retry_without_status(tmp_path: Path) -> None:
    async with InfluxClient(f"http://127.0.0.1:{free_port()}") as c:
        res = await c.write("db", b"m v=1.0 1000\n")
        ping = await c.ping()
    assert res.outcome is WriteOutcome.RETRY and res.status is None
    assert res.error == "connection refused"
    assert ping == "connection refused"
