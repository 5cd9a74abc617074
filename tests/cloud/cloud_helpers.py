"""Test traffic: realistic wire messages and a plain paho publisher, plus polling helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from support import influx_query

from cloud.config import CloudConfig
from commune_iot.localsvc import InfluxDB, Mosquitto
from wire import Channel, Health, Metrics, MotionEvent, Point, Status, encode, topic_for

T = TypeVar("T")
#: make_config fixture: (influx server, client_id=..., **mqtt overrides) -> CloudConfig
MakeConfig = Callable[..., CloudConfig]
BASE = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
SESSION = "a1b2c3d4"


def health(node: str, seq: int, *, session: str = SESSION, replay: bool = False) -> Health:
    return Health(
        node=node,
        session=session,
        seq=seq,
        ts=BASE + timedelta(seconds=seq),
        replay=replay,
        cpu_pct=12.5,
        load1=0.4,
        mem_used_pct=41.0,
        temp_c=48.5,
        agent_uptime_s=float(seq),
        outbox_depth=0,
    )


def metrics(node: str, seq: int, device: str | None = None) -> Metrics:
    return Metrics(
        node=node,
        session=SESSION,
        seq=seq,
        ts=BASE + timedelta(seconds=seq),
        points=[
            Point(measurement="ap", device=device or node, fields={"reachable": True, "clients": 7}),
            Point(measurement="ap_radio", device=device or node, tags={"band": "5g"}, fields={"clients": 4}),
        ],
    )


def motion(node: str, seq: int, device: str | None = None) -> MotionEvent:
    start = BASE + timedelta(seconds=seq)
    return MotionEvent(
        node=node,
        session=SESSION,
        seq=seq,
        ts=start + timedelta(seconds=3),
        event_id=f"ev-{seq}",
        device=device or node,
        phase="end",
        start=start,
        end=start + timedelta(seconds=3),
        peak_area_pct=12.0,
        score=0.8,
    )


def status(node: str, state: str, *, at: datetime | None = None) -> Status:
    return Status(
        node=node,
        session=SESSION,
        seq=0,
        ts=at or datetime.now(UTC),
        state=state,  # type: ignore[arg-type]
        reason="birth" if state == "online" else "will",
    )


def topic(commune: str, node: str, channel: Channel, suffix: str | None = None) -> str:
    return topic_for(commune, node, channel, suffix)


def publish(
    broker: Mosquitto, messages: Iterable[tuple[str, bytes] | tuple[str, bytes, bool]], *, qos: int = 1
) -> int:
    """Publish through the real broker and wait until every message is acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    infos = []
    try:
        for m in messages:
            retain = bool(m[2]) if len(m) == 3 else False  # type: ignore[misc]
            infos.append(c.publish(m[0], m[1], qos=qos, retain=retain))
        for info in infos:
            info.wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()
    return len(infos)


def count(server: InfluxDB, db: str, measurement: str, field: str = "*") -> int:
    try:
        series = influx_query(server, db, f'SELECT COUNT({field}) FROM "{measurement}"')
    except AssertionError as exc:
        if "database not found" in str(exc):
            return 0
        raise
    if not series:
        return 0
    return int(max(v for v in series[0]["values"][0][1:] if v is not None))


async def eventually(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    ok: Callable[[T], bool],
    *,
    within_s: float = 60.0,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until ``ok`` holds; fail with the last value after ``within_s``.

    60 s: under a loaded CI machine (two test workers on two cores) the PostgreSQL variants
    of the ingest tests once took longer than 20 s to store their first points."""
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if ok(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {str(value)[:1500]}")
        await asyncio.sleep(0.1)


def encoded(m: Health | Metrics | MotionEvent | Status) -> bytes:
    return encode(m)
