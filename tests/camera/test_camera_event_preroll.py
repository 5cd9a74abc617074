"""Events start when the motion began (pre-roll) and count their motion frames (issue 5)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from camera_helpers import FPS, W, write_scene

from edge.collectors.camera.config import EventSettings, ScanConfig
from edge.collectors.camera.events import EventTracker
from edge.collectors.camera.motion import Blob, MotionResult
from edge.collectors.camera.scan import scan
from wire import Channel, MotionEvent, WireError, decode, encode

EVENTS = EventSettings(min_duration_s=0.5, quiet_s=2.0)
CROSSING = (5.0, 9.0)  # the object enters at 5.0 s and has left at 9.0 s


Rows = list[dict[str, Any]]


def run_scan(video: Path, *, per_frame: bool) -> Rows:
    out = io.StringIO()
    scan(str(video), ScanConfig(events=EVENTS), per_frame=per_frame, as_json=True, out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def in_view(i: int) -> bool:
    """Whether the crossing object of ``write_scene`` covers any pixel in frame ``i``."""
    t = i / FPS
    if not CROSSING[0] <= t <= CROSSING[1]:
        return False
    x = int((t - CROSSING[0]) / (CROSSING[1] - CROSSING[0]) * (W + 40)) - 40
    return x + 40 > 0 and x < W


@pytest.fixture(scope="module")
def crossing(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Rows, Rows]:
    video = write_scene(tmp_path_factory.mktemp("preroll") / "cross.avi", 12, crossing=CROSSING)
    return run_scan(video, per_frame=False), run_scan(video, per_frame=True)


def test_event_start_is_when_motion_began_not_when_it_was_confirmed(
    crossing: tuple[Rows, Rows],
) -> None:
    events, rows = crossing
    assert [e["phase"] for e in events] == ["start", "end"], events
    start_s = float(events[0]["start_s"])
    first_on = next(int(r["frame"]) for r in rows if r["motion"])
    first_seen = next(i for i in range(len(rows)) if in_view(i))
    # The detector confirms motion on its 2nd frame of blobs; the event starts a frame earlier,
    # on the first frame it saw the object, and never before the object was there.
    assert start_s < first_on / FPS, (start_s, first_on)
    assert first_seen / FPS <= start_s <= first_seen / FPS + 0.25, (start_s, first_seen)


def test_event_frames_count_the_frames_with_motion(
    crossing: tuple[Rows, Rows],
) -> None:
    events, rows = crossing
    start, end = events
    assert start["frames"] is not None and end["frames"] is not None
    motion_rows = sum(1 for r in rows if r["motion"])
    pre_roll = round(
        (next(int(r["frame"]) for r in rows if r["motion"]) / FPS - float(start["start_s"])) * FPS
    )
    assert end["frames"] == motion_rows + pre_roll, (end["frames"], motion_rows, pre_roll)
    visible = sum(1 for i in range(len(rows)) if in_view(i))
    assert abs(int(end["frames"]) - visible) <= 2, (end["frames"], visible)
    assert 0 < int(start["frames"]) < int(end["frames"])


def moving(area: float = 0.02, *, onset: int = 0) -> MotionResult:
    return MotionResult(True, True, area, [Blob(0.1, 0.1, 0.2, 0.2, area)], 0.8, onset=onset)


def test_pre_roll_keeps_the_debounce_and_the_snapshot() -> None:
    """The start time goes back to the first frame with blobs, but the event is still only sent
    once the detector's motion has lasted min_duration_s, with the best frame as its snapshot."""
    t = EventTracker("dr-cam-01", EventSettings(min_duration_s=1.0, quiet_s=2.0))
    frame = np.zeros((240, 320, 3), np.uint8)
    sent: list[tuple[float, dict[str, Any], bytes | None]] = []
    # 4 fps. 10.0: still; 10.25: blobs (the detector waits); 10.5: confirmed, began at 10.25.
    assert t.feed(MotionResult(False, False, 0.0), None, 10.0) == []
    assert t.feed(MotionResult(False, True, 0.01), None, 10.25) == []
    for i in range(7):  # motion from 10.5 to 12.0, the largest at 11.25
        ts = 10.5 + i / 4
        result = moving(0.05 if i == 3 else 0.02, onset=1 if i == 0 else 0)
        sent += [(ts, e.event, e.jpeg) for e in t.feed(result, frame, ts)]
    for i in range(1, 11):
        ts = 12.0 + i / 4
        sent += [(ts, e.event, e.jpeg) for e in t.feed(MotionResult(False, False, 0.0), None, ts)]
    assert [e["phase"] for _, e, _ in sent] == ["start", "end"]
    (sent_at, first, jpeg), (ended_at, last, _) = sent
    assert first["start"] == last["start"] == datetime.fromtimestamp(10.25, UTC)  # pre-roll
    assert sent_at == 11.5  # debounce unchanged: 1 s after the detector confirmed it at 10.5
    assert jpeg is not None and last["snapshot_sha256"]  # the best frame, then its hash only
    assert ended_at == 14.0 and last["end"] == datetime.fromtimestamp(12.0, UTC)
    assert first["frames"] == 1 + 5 and last["frames"] == 1 + 7  # pre-roll frame + motion frames


def test_short_blips_seconds_apart_are_not_an_event() -> None:
    """Motion must last min_duration_s without a break: two 0.25 s blips 3 s apart (a bird, a
    leaf) send nothing, while one unbroken second of motion does."""
    t = EventTracker("dr-cam-01", EventSettings(min_duration_s=1.0, quiet_s=5.0))
    frame = np.zeros((240, 320, 3), np.uint8)
    sent = []
    for i in range(40):  # 4 fps for 10 s; blips at 1.0 s and 4.0 s
        ts = 100 + i / 4
        result = moving() if ts in (101.0, 104.0) else MotionResult(False, False, 0.0)
        sent += t.feed(result, frame, ts)
    assert sent == []
    for i in range(6):  # 1.25 s of unbroken motion
        sent += t.feed(moving(), frame, 110 + i / 4)
    assert [e.event["phase"] for e in sent] == ["start"]


def test_frames_is_optional_on_the_wire() -> None:
    old = {
        "v": 1,
        "node": "dr-cam-01",
        "session": "0123abcd",
        "seq": 3,
        "ts": "2026-11-28T10:00:05Z",
        "event_id": "dr-cam-01-a-1",
        "device": "dr-cam-01",
        "phase": "end",
        "start": "2026-11-28T10:00:00Z",
        "peak_area_pct": 4.0,
    }
    msg = decode(Channel.EVENT, json.dumps(old).encode())
    assert isinstance(msg, MotionEvent) and msg.frames is None
    assert b"frames" not in encode(msg)  # an agent that does not count sends nothing
    counted = decode(Channel.EVENT, json.dumps({**old, "frames": 42}).encode())
    assert isinstance(counted, MotionEvent) and counted.frames == 42
    with pytest.raises(WireError):
        decode(Channel.EVENT, json.dumps({**old, "frames": -1}).encode())
