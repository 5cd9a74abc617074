"""Motion events as a camera agent sends them, and a small HTTP client for the portal."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import support
from paho.mqtt.enums import CallbackAPIVersion

from wire import Box, Channel, Label, MotionEvent, encode, topic_for


def jpeg(seed: int, size: tuple[int, int] = (320, 180)) -> bytes:
    """A small, distinct JPEG per seed (a street-ish gradient with a 'person' block)."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (40 + seed % 50, 90, 60)
    x = 20 + (seed * 37) % (w - 60)
    cv2.rectangle(img, (x, 60), (x + 30, 150), (200, 200, 230), -1)
    cv2.putText(img, f"#{seed}", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(buf)


@dataclass
class SentEvent:
    commune: str
    node: str
    device: str
    event_id: str
    start: datetime
    end: datetime
    snapshot: bytes
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.snapshot).hexdigest()


def camera_event(
    commune: str,
    device: str,
    n: int,
    start: datetime,
    duration_s: float,
    *,
    session: str = "5e5510a1",
    seq0: int = 0,
    labels: list[Label] | None = None,
) -> SentEvent:
    """start, update and end messages of one event plus its snapshot, as the agent publishes them
    (with ``labels``: as a board that labels its events sends them, with the snapshot)."""
    snap = jpeg(n)
    sha = hashlib.sha256(snap).hexdigest()
    end = start + timedelta(seconds=duration_s)
    ev = SentEvent(commune, device, device, f"{device}-run1-{n}", start, end, snap)
    box = Box(x=0.1 + (n % 5) * 0.1, y=0.3, w=0.12, h=0.4)
    common: dict[str, Any] = {"node": device, "session": session, "event_id": ev.event_id, "device": device}
    phases = [
        ("start", start + timedelta(seconds=1), None, 2.0, []),
        ("update", start + timedelta(seconds=duration_s / 2), None, 6.5, [box]),
        ("end", end, end, 9.25, [box]),
    ]
    for i, (phase, ts, e, peak, boxes) in enumerate(phases):
        msg = MotionEvent(
            **common,
            seq=seq0 + i,
            ts=ts,
            phase=phase,  # type: ignore[arg-type]
            start=start,
            end=e,
            peak_area_pct=peak,
            boxes=boxes,
            score=0.9,
            snapshot_sha256=sha if phase != "start" else None,
            snapshot_bytes=len(snap) if phase != "start" else None,
            snapshot_boxes=[box] if phase != "start" else None,
            labels=labels if phase != "start" else None,
        )
        ev.messages.append((topic_for(commune, device, Channel.EVENT), encode(msg)))
    ev.messages.insert(2, (topic_for(commune, device, Channel.SNAPSHOT, ev.event_id), snap))
    return ev


def replayed(ev: SentEvent) -> list[tuple[str, bytes]]:
    """The same messages again, flagged as replayed from the outbox (a lost PUBACK, a reboot)."""
    out = []
    for t, payload in ev.messages:
        if "/event" in t:
            d = json.loads(payload)
            d["replay"] = True
            payload = json.dumps(d).encode()
        out.append((t, payload))
    return out


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = [c.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    """A wall-clock time in Lam Dong (UTC+7) as an aware UTC datetime."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC) - timedelta(hours=7)


class Api(support.Api):
    """The API client with tuple-returning ``get`` and ``post`` shorthands."""

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.call("POST", path, body)
