"""Messages through the real broker end up queryable in InfluxDB and visible in the API."""

from __future__ import annotations

import httpx
from cloud_helpers import (
    count,
    encoded,
    eventually,
    health,
    influx_query,
    metrics,
    motion,
    publish,
    status,
    topic,
)
from support import admin_headers

from cloud.api.app import create_app
from cloud.runtime import Runtime
from commune_iot.localsvc import InfluxDB, Mosquitto
from wire import Channel


async def test_messages_queryable_with_tags_and_devices_online(
    runtime: Runtime, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    msgs: list[tuple[str, bytes] | tuple[str, bytes, bool]] = [
        (topic("da-ron", "dr-ap-01", Channel.STATUS), encoded(status("dr-ap-01", "online")), True),
        (topic("tu-tra", "tt-cam-01", Channel.STATUS), encoded(status("tt-cam-01", "online")), True),
    ]
    for seq in range(1, 21):
        msgs.append((topic("da-ron", "dr-ap-01", Channel.HEALTH), encoded(health("dr-ap-01", seq))))
    msgs.append((topic("da-ron", "dr-ap-01", Channel.METRICS), encoded(metrics("dr-ap-01", 21))))
    msgs.append((topic("tu-tra", "tt-cam-01", Channel.EVENT), encoded(motion("tt-cam-01", 5))))  # no frames
    counted = motion("tt-cam-02", 6).model_copy(update={"frames": 17})  # an agent that sends frames
    msgs.append((topic("tu-tra", "tt-cam-02", Channel.EVENT), encoded(counted)))
    publish(mosquitto, msgs)

    await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 20, what="20 health")
    series = influx_query(
        influx_server,
        influx_db,
        'SELECT last("cpu_pct") FROM "health" GROUP BY "node","commune","site","kind","known"',
    )
    assert series[0]["tags"] == {
        "node": "dr-ap-01",
        "commune": "da-ron",
        "site": "dr-thon-01",
        "kind": "ap",
        "known": "true",
    }
    assert series[0]["values"][0][1] == 12.5
    await eventually(lambda: count(influx_server, influx_db, "ap_radio"), lambda n: n == 1, what="ap_radio")
    radio = influx_query(influx_server, influx_db, 'SELECT "clients" FROM "ap_radio" GROUP BY *')
    assert radio[0]["tags"] == {
        "band": "5g",
        "device": "dr-ap-01",
        "node": "dr-ap-01",
        "commune": "da-ron",
        "site": "dr-thon-01",
        "kind": "ap",
    }
    await eventually(lambda: count(influx_server, influx_db, "motion"), lambda n: n == 2, what="motion")
    ev = influx_query(
        influx_server,
        influx_db,
        'SELECT "duration_s", "replay", "frames" FROM "motion" WHERE "device"=\'tt-cam-01\'',
    )
    assert ev[0]["values"][0][1:] == [3.0, False, None]  # an older agent: no frames field
    ev = influx_query(influx_server, influx_db, 'SELECT "frames" FROM "motion" WHERE "device"=\'tt-cam-02\'')
    assert ev[0]["values"][0][1:] == [17.0]

    app = create_app(runtime, manage_runtime=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=admin_headers(runtime.sql.engine)
    ) as api:

        async def device_list() -> dict[str, dict[str, object]]:
            r = await api.get("/api/v1/devices")
            assert r.status_code == 200
            return {d["id"]: d for d in r.json()}

        devs = await eventually(device_list, lambda d: d["dr-ap-01"]["messages"] == 21, what="21 messages")
        assert len(devs) == 59
        assert devs["dr-ap-01"]["status"] == "online"
        assert devs["dr-ap-01"]["gaps"] == 0
        assert devs["tt-cam-01"]["status"] == "online"
        assert devs["lx-ap-11"]["status"] == "never_seen"

        publish(
            mosquitto,
            [(topic("da-ron", "dr-ap-01", Channel.STATUS), encoded(status("dr-ap-01", "offline")), True)],
        )
        devs = await eventually(device_list, lambda d: d["dr-ap-01"]["status"] == "offline", what="offline")
        assert devs["tt-cam-01"]["status"] == "online"

        cams = (await api.get("/api/v1/devices", params={"commune": "tu-tra", "kind": "camera"})).json()
        assert cams and all(d["commune"] == "tu-tra" and d["kind"] == "camera" for d in cams)
        assert (await api.get("/readyz")).status_code == 200


async def test_replay_is_idempotent_and_gaps_are_counted(
    runtime: Runtime, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    t = topic("lac-xuan", "lx-ap-03", Channel.HEALTH)
    first = [(t, encoded(health("lx-ap-03", seq))) for seq in (1, 2, 3, 7, 8)]  # 4, 5, 6 missing
    publish(mosquitto, first)
    await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 5, what="5 points")
    states = await eventually(
        runtime.sql.node_states, lambda s: s.get("lx-ap-03", {}).get("messages") == 5, what="5 messages"
    )
    assert states["lx-ap-03"]["gaps"] == 3
    assert states["lx-ap-03"]["last_seq"] == 8
    # the edge replays 2 and 3 from its outbox: same series and timestamp, so no new points
    publish(mosquitto, [(t, encoded(health("lx-ap-03", seq, replay=True))) for seq in (2, 3)])
    await eventually(
        runtime.sql.node_states, lambda s: s.get("lx-ap-03", {}).get("messages") == 7, what="7 messages"
    )
    # counted in SQL before the ack, written to InfluxDB by the drainer a moment later
    replayed = await eventually(
        lambda: influx_query(influx_server, influx_db, 'SELECT "replay" FROM "health" WHERE "seq" = 2'),
        lambda r: r[0]["values"][0][1] is True,
        what="the replayed flag stored",
    )
    assert replayed[0]["values"][0][1] is True
    assert count(influx_server, influx_db, "health") == 5
    assert len(influx_query(influx_server, influx_db, 'SHOW SERIES FROM "health"')[0]["values"]) == 1


async def test_metrics_healthz_and_broker_down_readiness(
    runtime: Runtime, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    publish(mosquitto, [(topic("da-ron", "dr-ap-05", Channel.HEALTH), encoded(health("dr-ap-05", 1)))])
    publish(mosquitto, [(topic("da-ron", "dr-ap-05", Channel.HEALTH), b"garbage")])
    app = create_app(runtime, manage_runtime=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=admin_headers(runtime.sql.engine)
    ) as api:
        assert (await api.get("/healthz")).json() == {"status": "ok"}

        async def metric_values() -> dict[str, float]:
            text = (await api.get("/metrics")).text
            return {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line and not line.startswith("#")
            }

        m = await eventually(metric_values, lambda m: m.get("ciot_points_written_total", 0) >= 1)
        assert m["ciot_messages_received_total"] == 2
        assert m['ciot_messages_dead_lettered_total{channel="health"}'] == 1
        assert m["ciot_broker_connected"] == 1
        assert m["ciot_influx_write_seconds_count"] >= 1
        assert "ciot_spool_bytes" in m and "ciot_ingest_lag_seconds" in m
        assert 0 <= m["ciot_ingest_backlog_seconds"] < 60  # ingest keeps up with the broker
        assert (await api.get("/openapi.json")).status_code == 200

        mosquitto.stop()
        r = await eventually(lambda: api.get("/readyz"), lambda r: r.status_code == 503, what="not ready")
        assert r.json()["dependencies"]["mqtt"]
        assert r.json()["dependencies"]["influxdb"] == "ok"
        mosquitto.start()
        await eventually(lambda: api.get("/readyz"), lambda r: r.status_code == 200, what="ready again")
