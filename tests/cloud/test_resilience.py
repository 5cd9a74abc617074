"""Outages and scale-out: InfluxDB down, two workers sharing the load, a worker restarted."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from cloud_helpers import MakeConfig, count, encoded, eventually, health, publish, topic
from support import admin_headers

from cloud.api.app import create_app
from cloud.config import CloudConfig
from cloud.runtime import Runtime
from commune_iot.localsvc import InfluxDB, Mosquitto
from wire import Channel

NODES = [("da-ron", "dr-ap-01"), ("tu-tra", "tt-cam-03"), ("lac-xuan", "lx-ap-07")]


def health_traffic(start: int, n: int) -> list[tuple[str, bytes]]:
    """``n`` health messages per node with seq start..start+n-1 (distinct timestamps)."""
    return [
        (topic(c, node, Channel.HEALTH), encoded(health(node, seq)))
        for seq in range(start, start + n)
        for c, node in NODES
    ]


async def test_influx_outage_reported_and_nothing_lost(
    make_config: MakeConfig, fresh_influx: InfluxDB, mosquitto: Mosquitto, influx_db: str
) -> None:
    rt = Runtime(make_config(fresh_influx))
    app = create_app(rt)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=admin_headers(rt.sql.engine)
        ) as api,
    ):
        assert rt.worker.wait_connected(10)
        publish(mosquitto, health_traffic(1, 50))
        await eventually(
            lambda: count(fresh_influx, influx_db, "health"), lambda n: n == 150, what="first 150"
        )
        assert (await api.get("/readyz")).status_code == 200

        fresh_influx.stop()
        deadline = time.monotonic() + 10  # ~10 s outage with traffic flowing
        seq = 51
        while time.monotonic() < deadline:
            await asyncio.to_thread(publish, mosquitto, health_traffic(seq, 20))
            seq += 20
            await asyncio.sleep(0.5)
        r = await api.get("/readyz")
        assert r.status_code == 503
        assert r.json()["dependencies"]["mqtt"] == "ok"
        assert "InfluxDB" in r.json()["dependencies"]["influxdb"]
        assert "connection refused" in r.json()["dependencies"]["influxdb"]
        metrics = (await api.get("/metrics")).text
        spooled = next(float(x.split()[1]) for x in metrics.splitlines() if x.startswith("ciot_spool_lines "))
        assert spooled > 0

        fresh_influx.start()
        expected = (seq - 1) * len(NODES)
        await eventually(
            lambda: count(fresh_influx, influx_db, "health"), lambda n: n == expected, within_s=30, what="all"
        )
        await eventually(lambda: api.get("/readyz"), lambda r: r.status_code == 200, what="ready again")
        assert rt.journal.depth_lines == 0


async def test_two_workers_share_the_load_exactly_once(
    make_config: MakeConfig, influx_server: InfluxDB, mosquitto: Mosquitto, influx_db: str
) -> None:
    workers = [Runtime(make_config(influx_server, client_id=f"w{i}", share_group="ingest")) for i in range(2)]
    for w in workers:
        await w.start()
        assert w.worker.wait_connected(10)
    await asyncio.sleep(0.3)  # both subscriptions in place before traffic
    try:
        n = publish(mosquitto, health_traffic(1, 400))
        await eventually(
            lambda: count(influx_server, influx_db, "health"), lambda c: c == n, what=f"{n} points"
        )
        await eventually(lambda: sum(w.stats.committed for w in workers), lambda c: c == n, what="commits")
    finally:
        for w in workers:
            await w.stop()
    shares = [w.stats.committed for w in workers]
    assert sum(shares) == n  # exactly once across the group
    assert all(s > n // 10 for s in shares), shares  # and each worker took a real share
    assert count(influx_server, influx_db, "health") == n


async def test_restarted_worker_gets_what_was_queued(
    make_config: MakeConfig, influx_server: InfluxDB, mosquitto: Mosquitto, influx_db: str
) -> None:
    cfg = make_config(influx_server, client_id="restart-me")
    rt = Runtime(cfg)
    await rt.start()
    assert rt.worker.wait_connected(10)
    publish(mosquitto, health_traffic(1, 10))
    await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 30, what="30")
    await rt.stop()

    publish(mosquitto, health_traffic(11, 200))  # the worker is down: the broker queues them

    rt = Runtime(cfg)
    await rt.start()
    try:
        await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 630, what="630")
    finally:
        await rt.stop()
    assert rt.stats.committed >= 600


async def test_broker_restart_worker_reconnects_and_resumes(
    runtime: Runtime, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    publish(mosquitto, health_traffic(1, 20))
    await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 60, what="60")
    mosquitto.stop()
    await eventually(lambda: runtime.worker.connected, lambda c: not c, what="disconnect seen")
    mosquitto.start()
    await eventually(lambda: runtime.worker.connected, lambda c: c, what="reconnected")
    await asyncio.sleep(0.3)  # re-subscription acknowledged
    publish(mosquitto, health_traffic(21, 20))
    await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 120, what="120")


async def _restart_broker_while_worker_away(
    cfg: CloudConfig, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    rt = Runtime(cfg)
    await rt.start()
    assert rt.worker.wait_connected(10)
    await rt.stop()  # worker away while the broker restarts
    mosquitto.stop()
    mosquitto.start()
    publish(mosquitto, health_traffic(1, 10))
    rt = Runtime(cfg)
    await rt.start()
    try:
        await eventually(
            lambda: count(influx_server, influx_db, "health"), lambda n: n == 30, within_s=5, what="30"
        )
    finally:
        await rt.stop()


async def test_broker_restart_keeps_the_exclusive_subscription_and_its_queue(
    make_config: MakeConfig, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    """One worker (the default): what was published while it was away arrives after the broker restarted."""
    await _restart_broker_while_worker_away(make_config(influx_server), mosquitto, influx_server, influx_db)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Mosquitto 2.0.11 restores a persistent session after a restart but not its SHARED "
    "subscription, so messages published before the worker re-subscribes are dropped by the broker "
    "(nodes hold their data until a worker announces itself, so this hits only bare publishers)",
)
async def test_broker_restart_keeps_shared_subscription(
    make_config: MakeConfig, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    cfg = make_config(influx_server, share_group="ingest")
    await _restart_broker_while_worker_away(cfg, mosquitto, influx_server, influx_db)
