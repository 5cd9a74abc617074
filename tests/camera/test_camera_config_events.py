"""Camera configuration, URL redaction, masks and zones, and the event lifecycle's bounds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import yaml
from camera_helpers import REPO, write_scene

from edge.collectors.camera.capture import redact
from edge.collectors.camera.config import CameraOptions, EventSettings, ScanConfig, Zone
from edge.collectors.camera.events import EventTracker
from edge.collectors.camera.motion import Blob, MotionResult
from edge.collectors.camera.scan import scan
from edge.config import load_config


def test_sample_configs_validate(tmp_path: Path) -> None:
    block = yaml.safe_load((REPO / "edge/collectors/camera/sample.yaml").read_text())[0]
    assert block.pop("type") == "camera"
    opts = CameraOptions.model_validate(block)
    assert opts.zones[0].name == "market_gate" and opts.motion.detect_width == 320
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "node": "dr-cam-03",
                "commune": "da-ron",
                "outbox": {"path": str(tmp_path / "o.sqlite3")},
                "collectors": [{"type": "camera", **block}],
            }
        )
    )
    loaded = load_config(cfg)
    assert loaded.devices == ["dr-cam-03"]


def test_password_file_goes_into_the_stream_url_only(tmp_path: Path) -> None:
    secret = tmp_path / "cam.password"
    secret.write_text("p@ss:w/rd\n")
    opts = CameraOptions(url="rtsp://10.0.0.5:554/ch1", username="viewer", password_file=secret)
    assert opts.stream_url() == "rtsp://viewer:p%40ss%3Aw%2Frd@10.0.0.5:554/ch1"
    assert redact(opts.stream_url()) == "rtsp://***@10.0.0.5:554/ch1"
    assert CameraOptions(url="video.mp4").stream_url() == "video.mp4"


def test_password_never_in_the_redacted_url() -> None:
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/ch1") == "rtsp://***@10.0.0.5:554/ch1"
    assert redact("rtsp://10.0.0.5/ch1") == "rtsp://10.0.0.5/ch1"
    assert "s3cret" not in redact("rtsp://s3cret@cam/x")


def events_of(video: Path, cfg: ScanConfig) -> list[dict[str, object]]:
    out = io.StringIO()
    scan(str(video), cfg, as_json=True, out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_masks_hide_motion_and_zones_name_it(tmp_path: Path) -> None:
    video = write_scene(tmp_path / "cross.avi", 10, crossing=(3.0, 7.0))
    events = EventSettings(min_duration_s=0.5, quiet_s=1.0)
    band = [(0.0, 0.35), (1.0, 0.35), (1.0, 0.7), (0.0, 0.7)]  # where the object crosses
    assert events_of(video, ScanConfig(masks=[band], events=events)) == []
    zones = [
        Zone(name="road", polygon=[(0.6, 0.3), (0.9, 0.3), (0.9, 0.8), (0.6, 0.8)]),
        Zone(name="sky", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 0.1), (0.0, 0.1)]),
    ]
    got = events_of(video, ScanConfig(zones=zones, events=events))
    assert got[-1]["phase"] == "end" and got[-1]["zones"] == ["road"]


def moving(area: float = 0.02) -> MotionResult:
    return MotionResult(True, True, area, [Blob(0.1, 0.1, 0.2, 0.2, area)], 0.8)


def test_event_lifecycle_is_bounded() -> None:
    t = EventTracker("dr-cam-01", EventSettings(min_duration_s=1, quiet_s=2, update_s=5, max_duration_s=30))
    frame = np.zeros((480, 1280, 3), np.uint8)
    phases: list[str] = []
    jpegs = 0
    for i in range(0, 200):  # 40 s of motion at 5 fps
        for em in t.feed(moving(0.01 + i / 10000), frame, 1000 + i / 5):
            phases.append(em.event["phase"])
            jpegs += em.jpeg is not None
            assert em.jpeg is None or len(em.jpeg) < 256 * 1024
    for i in range(200, 220):  # then quiet
        for em in t.feed(MotionResult(False, False, 0.0), None, 1000 + i / 5):
            phases.append(em.event["phase"])
    # cut at 30 s, a second event for the rest; updates at most every 5 s
    assert phases.count("start") == 2 and phases.count("end") == 2
    assert phases.count("update") <= 30 / 5 + 10 / 5
    assert jpegs >= 2
    # A blip shorter than min_duration_s is no event.
    t2 = EventTracker("dr-cam-01", EventSettings(min_duration_s=1, quiet_s=1))
    out = t2.feed(moving(), frame, 0.0) + t2.feed(moving(), frame, 0.4)
    out += t2.feed(MotionResult(False, False, 0.0), None, 2.0)
    assert out == []
