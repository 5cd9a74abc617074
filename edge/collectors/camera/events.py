"""Motion frames -> events: start, bounded updates, end; best snapshot as a small JPEG.

An event is sent once motion has lasted ``min_duration_s`` without a break (so a bird or a
flicker that got past the detector's own hysteresis does not page anyone; two short blips
seconds apart are not joined into one), but its ``start`` is when the motion began:
the first frame with moving blobs that the detector's start hysteresis confirmed (pre-roll), not
the moment it was confirmed nor the moment the event was sent. It ends after ``quiet_s`` without
motion, and sends at most one ``update`` per ``update_s``. ``frames`` counts the frames with
motion in the event (pre-roll included), at the rate frames are fed. The snapshot is the frame
with the largest moving area seen so far: it goes with ``start``, and with ``update``/``end``
only when a better frame came along (otherwise they repeat its hash, so the cloud links them to
the bytes it already has). ``snapshot_boxes`` says where that frame moved, for whoever labels the
objects in it (this board's label worker, or the cloud); an emission that carries a new snapshot
also carries its frame for the board's label worker.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy.typing as npt

from edge.collectors.camera.config import EventSettings
from edge.collectors.camera.motion import Blob, MotionResult
from wire.messages import MAX_SNAPSHOT_BYTES

MAX_BOXES = 32
PRE_ROLL_MAX = 64  # frames remembered for pre-roll (the detector's start_window is at most 50)


@dataclass
class Emission:
    event: dict[str, Any]
    jpeg: bytes | None
    #: With a new snapshot: its frame (BGR, snapshot-sized) and the frame's moving regions
    #: (x, y, w, h fractions), for labelling on the board; dropped once labelled.
    frame: npt.NDArray[Any] | None = None
    regions: list[tuple[float, float, float, float]] = field(default_factory=list)
    #: With a new snapshot: when its frame was detected (a high-resolution picture is matched
    #: to it, see ``hires``).
    best_ts: float | None = None


def encode_jpeg(frame: npt.NDArray[Any], width: int, quality: int) -> bytes:
    """Small JPEG of ``frame`` at ``width`` px; quality steps down until it fits the contract."""
    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    q = quality
    while True:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:
            raise ValueError("JPEG encoding failed")
        data = buf.tobytes()
        if len(data) <= MAX_SNAPSHOT_BYTES or q <= 20:
            return data
        q -= 15


def merge_boxes(boxes: list[Blob], new: list[Blob]) -> list[Blob]:
    """Union of boxes: overlapping ones merge into their bounding box, so an event's boxes show
    where things moved over its whole life (not one frame's), at most ``MAX_BOXES``."""
    out = list(boxes)
    for b in new:
        cur = b
        merged = True
        while merged:
            merged = False
            for i, o in enumerate(out):
                if (
                    cur.x <= o.x + o.w
                    and o.x <= cur.x + cur.w
                    and cur.y <= o.y + o.h
                    and o.y <= cur.y + cur.h
                ):
                    x0, y0 = min(cur.x, o.x), min(cur.y, o.y)
                    x1, y1 = max(cur.x + cur.w, o.x + o.w), max(cur.y + cur.h, o.y + o.h)
                    cur = Blob(x0, y0, x1 - x0, y1 - y0, max(cur.area, o.area))
                    del out[i]
                    merged = True
                    break
        out.append(cur)
    if len(out) > MAX_BOXES:
        out.sort(key=lambda b: b.w * b.h, reverse=True)
        out = out[:MAX_BOXES]
    return out


@dataclass
class _Event:
    event_id: str
    start: float  # when the motion began (pre-roll included)
    last_motion: float
    confirmed: float  # when the detector turned motion on: min_duration_s counts from here
    peak_area: float = 0.0
    boxes: list[Blob] = field(default_factory=list)
    zones: set[str] = field(default_factory=set)
    frames: int = 0
    score: float = 0.0
    started: bool = False  # `start` was sent
    last_update: float = 0.0
    best_area: float = -1.0
    best_frame: npt.NDArray[Any] | None = None
    best_blobs: list[Blob] = field(default_factory=list)  # what moved in best_frame
    best_ts: float | None = None
    best_dirty: bool = False  # a better frame than the last one sent
    sent_sha: str | None = None
    sent_bytes: int | None = None


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class EventTracker:
    """Feed every detected frame with :meth:`feed`; it returns what to emit."""

    def __init__(self, device: str, settings: EventSettings | None = None) -> None:
        self.device = device
        self.s = settings or EventSettings()
        self._run = secrets.token_hex(3)  # ids stay unique across agent restarts
        self._count = 0
        self._ev: _Event | None = None
        self._before: deque[tuple[float, bool]] = deque(maxlen=PRE_ROLL_MAX)  # (ts, blobs seen)
        self.events_started = 0
        #: Called with the frame's time whenever an event gets a new best frame (high-resolution
        #: snapshots are taken then, while the object is still where the frame shows it).
        self.on_best: Callable[[float], None] | None = None

    @property
    def active(self) -> bool:
        return self._ev is not None and self._ev.started

    def feed(
        self,
        result: MotionResult,
        frame: npt.NDArray[Any] | None,
        ts: float,
        zones: list[str] | None = None,
    ) -> list[Emission]:
        out: list[Emission] = []
        ev = self._ev
        before = self._before
        if result.motion:
            if ev is None:
                self._count += 1
                # Pre-roll: the frames the detector looked back over before it confirmed motion.
                pre = list(before)[len(before) - min(result.onset, len(before)) :]
                start = pre[0][0] if pre else ts
                ev = self._ev = _Event(f"{self.device[:40]}-{self._run}-{self._count}", start, ts, ts)
                ev.frames = sum(1 for _, seen in pre if seen)
            ev.last_motion = ts
            ev.frames += 1
            ev.peak_area = max(ev.peak_area, result.area)
            ev.score = max(ev.score, result.score)
            ev.boxes = merge_boxes(ev.boxes, sorted(result.blobs, key=lambda b: -b.area)[:MAX_BOXES])
            ev.zones.update(zones or ())
            if frame is not None and result.area > ev.best_area:
                ev.best_area = result.area
                ev.best_blobs = list(result.blobs)
                # Keep only a snapshot-sized copy: bounded memory whatever the camera's resolution.
                h, w = frame.shape[:2]
                width = self.s.snapshot_width
                ev.best_frame = (
                    cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
                    if w > width
                    else frame.copy()
                )
                ev.best_dirty = True
                ev.best_ts = ts
                if self.on_best is not None:
                    self.on_best(ts)
            if not ev.started and ts - ev.confirmed >= self.s.min_duration_s:
                ev.started = True
                self.events_started += 1
                ev.last_update = ts
                out.append(self._emit(ev, "start", None))
            elif ev.started and ts - ev.last_update >= self.s.update_s:
                ev.last_update = ts
                out.append(self._emit(ev, "update", None))
            if ev.started and ts - ev.start >= self.s.max_duration_s:
                out.append(self._emit(ev, "end", ts))
                self._ev = None
        elif ev is not None and not ev.started:
            # Motion must last min_duration_s without a break before it is an event: two
            # short blips a few seconds apart (a bird, a leaf) are not one event.
            self._ev = None
        elif ev is not None and ts - ev.last_motion >= self.s.quiet_s:
            out.append(self._emit(ev, "end", ev.last_motion))
            self._ev = None
        before.append((ts, result.raw))
        return out

    def close(self, ts: float) -> list[Emission]:
        """End an open event (stream lost, agent stopping)."""
        ev, self._ev = self._ev, None
        if ev is not None and ev.started:
            return [self._emit(ev, "end", ev.last_motion)]
        return []

    def _emit(self, ev: _Event, phase: str, end: float | None) -> Emission:
        jpeg: bytes | None = None
        doc: dict[str, Any] = {
            "event_id": ev.event_id,
            "device": self.device,
            "phase": phase,
            "start": _ts(ev.start),
            "peak_area_pct": round(min(100.0, ev.peak_area * 100), 3),
            "boxes": [
                {
                    "x": round(min(1.0, b.x), 4),
                    "y": round(min(1.0, b.y), 4),
                    "w": round(min(1.0, b.w), 4),
                    "h": round(min(1.0, b.h), 4),
                }
                for b in ev.boxes
            ],
            "zones": sorted(ev.zones)[:16],
            "score": round(min(1.0, max(0.0, ev.score)), 3),
            "frames": ev.frames,
        }
        if end is not None:
            doc["end"] = _ts(end)
        frame: npt.NDArray[Any] | None = None
        if ev.best_dirty and ev.best_frame is not None:
            frame = ev.best_frame
            jpeg = encode_jpeg(ev.best_frame, self.s.snapshot_width, self.s.jpeg_quality)
            ev.best_dirty = False
            import hashlib

            ev.sent_sha = hashlib.sha256(jpeg).hexdigest()
            ev.sent_bytes = len(jpeg)
        elif ev.sent_sha is not None:
            doc["snapshot_sha256"] = ev.sent_sha
            doc["snapshot_bytes"] = ev.sent_bytes
        regions = [(b.x, b.y, b.w, b.h) for b in ev.best_blobs[:MAX_BOXES]]
        if jpeg is not None or ev.sent_sha is not None:
            doc["snapshot_boxes"] = [
                {k: round(min(1.0, max(0.0, v)), 4) for k, v in zip("xywh", r, strict=True)} for r in regions
            ]
        if phase == "end":
            ev.best_frame = None
        return Emission(
            doc,
            jpeg,
            frame,
            regions if frame is not None else [],
            ev.best_ts if frame is not None else None,
        )
