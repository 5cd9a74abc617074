"""Garbage is dead-lettered with a reason; the worker keeps going; valid traffic is unaffected."""

from __future__ import annotations

import hashlib
import json

import httpx
from cloud_helpers import count, encoded, eventually, health, metrics, motion, publish, topic
from sqlalchemy import select
from support import admin_headers

from cloud.api.app import create_app
from cloud.runtime import Runtime
from cloud.storage.sql import dead_letters, snapshots
from commune_iot.localsvc import InfluxDB, Mosquitto
from edge.collectors.snapshot import tiny_jpeg
from wire import Channel
from wire.compression import pack

JPEG = tiny_jpeg("ev-7")  # a real (tiny) JPEG: the cloud checks its headers


def _garbage() -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected words in the reason)."""
    h = topic("da-ron", "dr-ap-02", Channel.HEALTH)
    good = json.loads(encoded(health("dr-ap-02", 1)))
    wrong_type = dict(good, cpu_pct="very busy")
    wrong_node = dict(good, node="dr-ap-03")
    extra = dict(good, sneaky=1)
    bad_metric = json.loads(encoded(metrics("dr-ap-02", 2)))
    bad_metric["points"][0]["measurement"] = "secrets"
    return [
        (h, b"not json at all", "Invalid JSON"),
        (h, json.dumps({"hello": "world"}).encode(), "Field required"),
        (h, json.dumps(wrong_type).encode(), "cpu_pct"),
        (h, json.dumps(wrong_node).encode(), "differs from topic node"),
        (h, json.dumps(extra).encode(), "sneaky"),
        (h, b"{" + b" " * 70_000 + b"}", "too large"),
        # a board on 3G packs its JSON (wire/compression.py): the same checks see through it
        (h, pack(json.dumps(wrong_type).encode()), "cpu_pct"),
        (h, b"\x02" + pack(encoded(health("dr-ap-02", 5)))[1:], "upgrade the cloud"),
        (
            topic("da-ron", "dr-ap-02", Channel.METRICS),
            json.dumps(bad_metric).encode(),
            "unknown measurement",
        ),
        ("ciot/v1/da-ron/dr-ap-02/nonsense", b"{}", "unknown channel"),
        ("ciot/v1/da-ron/dr-ap-02/health/extra", encoded(health("dr-ap-02", 4)), "unexpected suffix"),
        ("ciot/v1/tu-tra/dr-ap-02/health", encoded(health("dr-ap-02", 3)), "belongs to commune da-ron"),
        (topic("da-ron", "dr-ap-02", Channel.SNAPSHOT, "ev-1"), b"GIF89a not a jpeg", "not a JPEG"),
    ]


async def test_garbage_dead_lettered_and_valid_traffic_unaffected(
    runtime: Runtime, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    garbage = _garbage()
    traffic: list[tuple[str, bytes]] = []
    for i, (t, p, _) in enumerate(garbage):  # interleave garbage with valid messages, half of them packed
        traffic.append((t, p))
        valid = encoded(health("dr-ap-01", i + 1))
        traffic.append((topic("da-ron", "dr-ap-01", Channel.HEALTH), pack(valid) if i % 2 else valid))
    # an unknown node is accepted but flagged
    traffic.append((topic("lac-xuan", "lx-ap-99", Channel.HEALTH), encoded(health("lx-ap-99", 1))))
    event = motion("tt-cam-02", 7).model_copy(update={"snapshot_sha256": hashlib.sha256(JPEG).hexdigest()})
    traffic.append((topic("tu-tra", "tt-cam-02", Channel.EVENT), encoded(event)))
    traffic.append((topic("tu-tra", "tt-cam-02", Channel.SNAPSHOT, "ev-7"), JPEG))
    publish(mosquitto, traffic)

    def dead() -> list[dict[str, object]]:
        with runtime.sql.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(dead_letters).order_by(dead_letters.c.id))]

    rows = await eventually(dead, lambda r: len(r) >= len(garbage), what="dead letters")
    assert len(rows) == len(garbage)
    for row, (t, p, reason) in zip(rows, garbage, strict=True):
        assert row["topic"] == t
        assert reason in str(row["reason"]), (reason, row["reason"])
        assert row["payload"] == p and row["size"] == len(p)
        assert row["node_guess"] == "dr-ap-02"

    n_valid = len(garbage) + 1  # dr-ap-01 plus the unknown node
    await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == n_valid, what="valid")
    await eventually(lambda: count(influx_server, influx_db, "motion"), lambda n: n == 1, what="motion")

    states = await eventually(
        runtime.sql.node_states, lambda s: s.get("dr-ap-02", {}).get("dead_letters") == len(garbage)
    )
    assert states["dr-ap-01"]["messages"] == len(garbage)
    assert states["lx-ap-99"]["known"] == 0
    assert runtime.worker.connected  # still consuming after all of that

    sha = hashlib.sha256(JPEG).hexdigest()
    assert runtime.snapshots.path_for(sha).read_bytes() == JPEG
    with runtime.sql.engine.connect() as conn:
        snap = conn.execute(select(snapshots)).one()
    assert (snap.sha256, snap.event_id, snap.node) == (sha, "ev-7", "tt-cam-02")
    assert sum(runtime.stats.dead_lettered.values()) == len(garbage)

    app = create_app(runtime, manage_runtime=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=admin_headers(runtime.sql.engine)
    ) as api:
        listed = (await api.get("/api/v1/dead-letters", params={"node": "dr-ap-02", "limit": 3})).json()
        assert [d["reason"] for d in listed] == [str(r["reason"]) for r in rows[::-1][:3]]
        assert listed[0]["preview"] == "GIF89a not a jpeg"
        packed = (await api.get("/api/v1/dead-letters", params={"node": "dr-ap-02", "limit": 50})).json()
        wrong = [d for d in packed if "cpu_pct" in d["reason"]]
        assert len(wrong) == 2 and all(d["preview"].startswith('{"v": 1, "node": "dr-ap-02"') for d in wrong)
        devices = {d["id"]: d for d in (await api.get("/api/v1/devices")).json()}
        assert devices["dr-ap-02"]["dead_letters"] == len(garbage)
        assert devices["lx-ap-99"]["known"] is False and devices["lx-ap-99"]["kind"] is None
