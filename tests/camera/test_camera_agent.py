"""The real edge agent with a camera collector: events, snapshots and health over MQTT,
from a file source and from a loopback RTSP server (issue items 2 and 3)."""

from __future__ import annotations

import hashlib
import itertools
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from camera_helpers import RtspServer, write_scene
from edge_helpers import AgentProcess, Received, Recorder, agent_config

from commune_iot.localsvc import Mosquitto
from wire import Channel, decode

EVENTS = {"min_duration_s": 0.5, "quiet_s": 1.5}


def camera_points(msgs: list[Received], device: str) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        if m.channel == "metrics":
            msg = decode(Channel.METRICS, m.payload)  # the cloud's own validation
            out += [p.fields for p in msg.points if p.measurement == "camera" and p.device == device]  # type: ignore[attr-defined]
    return out


def test_crossing_gives_one_event_whose_snapshot_hash_matches(tmp_path: Path, mosquitto: Mosquitto) -> None:
    video = write_scene(tmp_path / "cross.avi", 10, crossing=(3.0, 6.0))
    cam = {"type": "camera", "device": "dr-cam-01", "url": str(video), "interval_s": 1.0, "events": EVENTS}
    cfg = agent_config(tmp_path, mosquitto.url, collectors=[cam], health_interval_s=5)
    rec = Recorder(mosquitto.port)
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    try:
        agent.wait_log("end of file", timeout=40)
        msgs = rec.wait_for(
            lambda ms: any(m.channel == "event" and m.json()["phase"] == "end" for m in ms), 15, "event end"
        )
    finally:
        agent.terminate()
        agent.close()
        rec.close()
    events = [decode(Channel.EVENT, m.payload) for m in msgs if m.channel == "event"]
    assert [e.phase for e in events] == ["start", "end"], events  # type: ignore[attr-defined]
    # Each event names the snapshot that reached the broker on snapshot/<event_id> before it
    # (the end repeats the start's, or carries a better frame).
    snaps = {
        hashlib.sha256(m.payload).hexdigest(): m.payload
        for m in msgs
        if m.channel == "snapshot" and m.topic.endswith("/" + events[0].event_id)  # type: ignore[attr-defined]
    }
    assert snaps
    for e in events:
        jpeg = snaps[e.snapshot_sha256]  # type: ignore[attr-defined]
        assert e.snapshot_bytes == len(jpeg) <= 256 * 1024  # type: ignore[attr-defined]
        assert jpeg.startswith(b"\xff\xd8")
    points = camera_points(msgs, "dr-cam-01")
    assert points and any(p["up"] and p["width"] == 320 and p["height"] == 240 for p in points)
    assert set(points[-1]) >= {"up", "fps", "nominal_fps", "width", "height", "frozen", "decode_errors"}


pytestmark_rtsp = pytest.mark.skipif(not RtspServer.available(), reason="gst-rtsp-server not installed")


@pytestmark_rtsp
def test_rtsp_health_events_outage_recovery_and_frozen(tmp_path: Path, mosquitto: Mosquitto) -> None:
    video = write_scene(tmp_path / "cross.avi", 12, crossing=(3.0, 7.0))
    server = RtspServer({"cam": str(video), "still": "frozen"}, tmp_path / "rtsp.log").start()
    common = {"interval_s": 1.0, "read_timeout_s": 3.0, "open_timeout_s": 3.0, "reconnect_min_s": 0.5}
    collectors = [
        {"type": "camera", "device": "dr-cam-01", "url": server.url("cam"), "events": EVENTS, **common},
        {"type": "camera", "device": "dr-cam-02", "url": server.url("still"), "frozen_after_s": 3, **common},
    ]
    # The camera password (from its file) must never reach the log.
    (tmp_path / "cam.password").write_text("s3cret\n")
    collectors[0] |= {"username": "admin", "password_file": str(tmp_path / "cam.password")}
    cfg = agent_config(tmp_path, mosquitto.url, collectors=collectors, health_interval_s=5)
    rec = Recorder(mosquitto.port)
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    try:
        rec.wait_for(lambda ms: any(p["up"] for p in camera_points(ms, "dr-cam-01")), 30, "dr-cam-01 up")
        rec.wait_for(
            lambda ms: any(m.channel == "event" and m.json()["phase"] == "start" for m in ms),
            30,
            "event start",
        )
        rec.wait_for(
            lambda ms: any(p["frozen"] and p["up"] for p in camera_points(ms, "dr-cam-02")), 30, "frozen"
        )
        # Freeze the server (connection open, silent): down within the read timeout (3 s)
        # plus one health interval, although OpenCV's read stays blocked longer.
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        before = len(rec.snapshot())
        rec.wait_for(
            lambda ms: any(not p["up"] for p in camera_points(ms[before:], "dr-cam-01")), 8.0, "down (silent)"
        )
        assert time.monotonic() - stopped <= 3.0 + 1.0 + 1.5
        # Kill it (closed TCP): still down, and no frame for a while.
        server.kill()
        killed = time.monotonic()
        before = len(rec.snapshot())
        rec.wait_for(
            lambda ms: any(not p["up"] for p in camera_points(ms[before:], "dr-cam-01")), 3.0 + 3.0, "down"
        )
        assert time.monotonic() - killed <= 6.0
        # Restart on the same port: it recovers on its own.
        server = RtspServer(server.mounts, tmp_path / "rtsp2.log", port=server.port).start()
        mark = len(rec.snapshot())
        rec.wait_for(
            lambda ms: any(p["up"] and p["reconnects"] >= 1 for p in camera_points(ms[mark:], "dr-cam-01")),
            40,
            "dr-cam-01 up again",
        )
    finally:
        agent.terminate()
        agent.close()
        rec.close()
        server.kill()
    log = agent.log()
    assert "s3cret" not in log and "rtsp://***@127.0.0.1" in log
    pts = camera_points(rec.snapshot(), "dr-cam-01")
    assert all(p["nominal_fps"] > 0 for p in pts if p["up"])


@pytestmark_rtsp
def test_rare_health_points_still_say_a_change_of_state_at_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The shipped 3G profile sends a `camera` point every 300 s: a stream going down, frozen or
    back must still reach the cloud within seconds, not at the next periodic point."""
    video = write_scene(tmp_path / "cross.avi", 12, crossing=(3.0, 7.0))
    server = RtspServer({"cam": str(video), "still": "frozen"}, tmp_path / "rtsp.log").start()
    common = {"interval_s": 300.0, "read_timeout_s": 3.0, "open_timeout_s": 3.0, "reconnect_min_s": 0.5}
    collectors = [
        {"type": "camera", "device": "dr-cam-01", "url": server.url("cam"), "events": EVENTS, **common},
        {"type": "camera", "device": "dr-cam-02", "url": server.url("still"), "frozen_after_s": 3, **common},
    ]
    cfg = agent_config(tmp_path, mosquitto.url, collectors=collectors, health_interval_s=300)
    rec = Recorder(mosquitto.port)
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    try:
        rec.wait_for(lambda ms: any(p["up"] for p in camera_points(ms, "dr-cam-01")), 30, "dr-cam-01 up")
        # the still picture: up first, then frozen after frozen_after_s, without waiting 300 s
        rec.wait_for(
            lambda ms: any(p["frozen"] and p["up"] for p in camera_points(ms, "dr-cam-02")), 20, "frozen"
        )
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)  # silent server: down after the read timeout
        stopped = time.monotonic()
        before = len(rec.snapshot())
        rec.wait_for(
            lambda ms: any(not p["up"] for p in camera_points(ms[before:], "dr-cam-01")),
            10.0,
            "down (silent)",
        )
        assert time.monotonic() - stopped <= 3.0 + 2.0
        server.kill()
        server = RtspServer(server.mounts, tmp_path / "rtsp2.log", port=server.port).start()
        mark = len(rec.snapshot())
        rec.wait_for(
            lambda ms: any(p["up"] for p in camera_points(ms[mark:], "dr-cam-01")), 40, "dr-cam-01 up again"
        )
    finally:
        agent.terminate()
        agent.close()
        rec.close()
        server.kill()
    pts = camera_points(rec.snapshot(), "dr-cam-01")
    # up, down, up again, each said at once; no periodic point (the interval is 300 s), only the
    # first one and the changes (the scene may add a camera_moving or tampering change or two)
    runs = [k for k, _ in itertools.groupby(p["up"] for p in pts)]
    assert runs[-3:] == [True, False, True] and len(runs) <= 4, pts  # (down while opening, first)
    assert len(pts) <= 8, pts
