"""An independent MQTT observer and checks that compare what agents sent with InfluxDB."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import influx_query

from commune_iot.localsvc import InfluxDB
from wire import Channel, parse_topic
from wire.compression import unpack
from wire.messages import MAX_JSON_BYTES
from wire.topics import SEQUENCED

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(iso: str) -> int:
    """Milliseconds since the epoch of a wire timestamp, truncated as the cloud stores it."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (dt - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class Seen:
    topic: str
    channel: Channel
    node: str
    body: dict[str, Any] | None  # None for a snapshot
    arrived: float


class Observer:
    """Subscribes to everything with a persistent session, like a second, independent
    consumer: it sees what the broker delivered, whatever the cloud did with it."""

    def __init__(self, port: int) -> None:
        self.seen: list[Seen] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"observer-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self._connected = threading.Event()
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("observer could not connect")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe("ciot/v1/#", qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        t = parse_topic(msg.topic)
        body = None if t.channel is Channel.SNAPSHOT else json.loads(unpack(msg.payload, MAX_JSON_BYTES))
        with self._cond:
            self.seen.append(Seen(msg.topic, t.channel, t.node, body, time.time()))
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[Seen]], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def snapshot(self) -> list[Seen]:
        with self._cond:
            return list(self.seen)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def data_messages(seen: list[Seen], node: str | None = None) -> list[Seen]:
    """Sequenced messages (health, metrics, event), one per (node, session, seq)."""
    out: dict[tuple[str, str, int], Seen] = {}
    for s in seen:
        if s.body is None or s.channel not in SEQUENCED or (node and s.node != node):
            continue
        out.setdefault((s.node, s.body["session"], s.body["seq"]), s)
    return list(out.values())


HO_CHI_MINH = ZoneInfo("Asia/Ho_Chi_Minh")

#: A point's identity in InfluxDB: measurement, device (node for health), its own tags, time.
PointKey = tuple[str, str, frozenset[tuple[str, str]], int]
#: Tags the cloud adds itself; the rest come from the point.
CLOUD_TAGS = frozenset({"device", "node", "commune", "site", "kind", "known"})


def expected_points(messages: list[Seen]) -> set[PointKey]:
    """Every point the cloud must have written for these messages."""
    points: set[PointKey] = set()
    none: frozenset[tuple[str, str]] = frozenset()
    for s in messages:
        b = s.body
        assert b is not None
        if s.channel is Channel.HEALTH:
            points.add(("health", s.node, none, ms(b["ts"])))
        elif s.channel is Channel.METRICS:
            for p in b["points"]:
                tags = frozenset(p.get("tags", {}).items())
                points.add((p["measurement"], p["device"], tags, ms(p.get("ts") or b["ts"])))
        elif s.channel is Channel.EVENT:
            start = ms(b["start"])
            hour = datetime.fromtimestamp(start / 1000, HO_CHI_MINH).strftime("%H")  # the cloud's tag
            points.add(("motion", b["device"], frozenset({("hour", hour)}), start))
    return points


def stored_points(influx: InfluxDB, db: str, measurements: set[str]) -> dict[PointKey, dict[str, Any]]:
    """Every point of ``measurements`` in InfluxDB, keyed like ``expected_points``, with its row."""
    out: dict[PointKey, dict[str, Any]] = {}
    for m in sorted(measurements):
        tag = "node" if m == "health" else "device"
        for series in influx_query(influx, db, f'SELECT * FROM "{m}" GROUP BY *'):
            tags = {k: v for k, v in series.get("tags", {}).items() if v != ""}
            own = frozenset((k, v) for k, v in tags.items() if k not in CLOUD_TAGS)
            cols = series["columns"]
            for row in series["values"]:
                rec = dict(zip(cols, row, strict=True)) | tags
                k = (m, str(rec[tag]), own, int(rec["time"]))
                assert k not in out, f"point {k} stored twice (in two series?)"
                out[k] = rec
    return out


def wait_until(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
