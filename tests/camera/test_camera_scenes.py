"""Synthetic scenes through the real detector and event logic (issue item 3), offline."""

from __future__ import annotations

import io
import json
from pathlib import Path

from camera_helpers import write_scene

from edge.collectors.camera.config import EventSettings, ScanConfig
from edge.collectors.camera.scan import scan

EVENTS = EventSettings(min_duration_s=0.5, quiet_s=2.0)


def events_of(video: Path) -> list[dict[str, object]]:
    out = io.StringIO()
    scan(str(video), ScanConfig(events=EVENTS), as_json=True, out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_still_scene_with_noise_and_slow_light_ramp_gives_no_event(tmp_path: Path) -> None:
    video = write_scene(tmp_path / "still.avi", 30, noise=4.0, ramp=0.5)
    assert events_of(video) == []


def test_sudden_global_brightness_change_gives_no_event(tmp_path: Path) -> None:
    video = write_scene(tmp_path / "jump.avi", 15, jump_at_s=6.0, jump_gain=1.7)
    assert events_of(video) == []
    video = write_scene(tmp_path / "dark.avi", 15, jump_at_s=6.0, jump_gain=0.5, seed=2)
    assert events_of(video) == []


def test_camera_knocked_aside_or_trembling_gives_no_event(tmp_path: Path) -> None:
    video = write_scene(tmp_path / "knock.avi", 12, shift_at_s=5.0)
    assert events_of(video) == []
    video = write_scene(tmp_path / "shake.avi", 12, shake=(4.0, 7.0), seed=3)
    assert events_of(video) == []


def test_object_crossing_gives_exactly_one_event(tmp_path: Path) -> None:
    video = write_scene(tmp_path / "cross.avi", 14, crossing=(5.0, 9.0), ramp=0.2)
    events = events_of(video)
    assert [e["phase"] for e in events] == ["start", "end"], events
    start, end = events
    assert start["event_id"] == end["event_id"]
    assert 4.5 <= float(start["start_s"]) <= 6.0
    assert 8.0 <= float(end["end_s"]) <= 9.8  # type: ignore[arg-type]
    assert start["snapshot_bytes"], "the start carries a snapshot"
    assert 1.0 < float(end["peak_area_pct"]) < 20  # type: ignore[arg-type]
    boxes: list[dict[str, float]] = end["boxes"]  # type: ignore[assignment]
    assert any(b["w"] > 0.5 and b["y"] <= 100 / 240 and b["y"] + b["h"] >= 150 / 240 for b in boxes), (
        f"a union box spans the crossing object's path: {boxes}"
    )


def test_per_frame_json_is_one_object_per_decoded_frame(tmp_path: Path) -> None:
    video = write_scene(tmp_path / "cross.avi", 8, crossing=(3.0, 6.0))
    out = io.StringIO()
    scan(str(video), ScanConfig(), per_frame=True, as_json=True, out=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["frame"] for r in rows] == list(range(80))
    assert all(set(r) == {"frame", "motion", "area"} and 0 <= r["area"] <= 1 for r in rows)
    moving = [r["frame"] for r in rows if r["motion"]]
    assert moving and 30 <= moving[0] <= 36 and 55 <= moving[-1] <= 62, moving
