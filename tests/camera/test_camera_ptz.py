"""A camera that pans, tilts, zooms or shakes (issue 19 part 1), on clips warped from the shared
footage by ``commune_iot/bench/warps.py``: the camera's own motion makes no event, a person
walking through while it pans slowly still makes one, and the bench reports its figures."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import cv2
import numpy as np
import pytest
from camera_helpers import need_clips

from commune_iot.bench.camera_motion import evaluate, run_still
from commune_iot.bench.motion import clips, frames
from commune_iot.bench.warps import PAN_ZOOM, Pose, plate, render, still_frames, tour
from edge.collectors.camera.config import EventSettings
from edge.collectors.camera.events import EventTracker
from edge.collectors.camera.motion import MotionDetector

EVENTS = EventSettings(min_duration_s=0.5, quiet_s=2.0)
PETS = "pets2009_illumination"


@cache
def pets() -> tuple[list[np.ndarray], float]:
    video = need_clips() / PETS / "video.mp4"
    return list(frames(video)), 7.0


def starts(feed: Iterable[np.ndarray], fps: float) -> tuple[list[dict[str, Any]], MotionDetector]:
    """Events (start messages) the detector and event tracker make of these frames."""
    det = MotionDetector(fps=fps)
    tracker = EventTracker("ptz", EVENTS)
    out: list[dict[str, Any]] = []
    n = 0
    for n, frame in enumerate(feed):
        r = det.detect(frame)
        out += [em.event for em in tracker.feed(r, frame if r.motion else None, n / fps, [])]
    out += [em.event for em in tracker.close(n / fps)]
    return [e for e in out if e["phase"] == "start"], det


def test_a_ptz_tour_over_a_still_scene_makes_no_event() -> None:
    shots, fps = pets()
    base = plate(shots[::8])
    h, w = base.shape[:2]
    script = tour(w, h, fps)
    events, det = starts(still_frames(base, script), fps)
    assert events == [], events
    assert det.moves >= 1, "the zoom went through the camera-moving state"
    assert det.ready, "settled and re-learnt by the end"


def walker(shots: list[np.ndarray], base: np.ndarray, first: int, count: int) -> Iterator[np.ndarray]:
    """The still scene with the real people of PETS frames first..first+count pasted in (their
    ground-truth mask, slightly grown), a real walker on a background free of other change."""
    folder = need_clips() / PETS
    h, w = base.shape[:2]
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    for k in range(first, first + count):
        mask = cv2.imread(str(folder / "groundtruth" / f"gt{k + 1:06d}.png"), cv2.IMREAD_GRAYSCALE)
        mask = cv2.dilate(
            cv2.resize((mask == 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST), grow
        )
        img = base.copy()
        img[mask > 0] = shots[k][mask > 0]
        yield img


def test_a_person_walking_through_during_a_slow_pan_makes_exactly_one_event() -> None:
    shots, fps = pets()
    base = plate(shots[::8])
    w = base.shape[1]
    mx = 0.9 * (PAN_ZOOM - 1) * w / 2
    still, walk, after = round(3 * fps), round(5 * fps), round(4 * fps)
    n = still + walk + after
    step = 2.0  # px per frame of the 768 px source: a slow pan
    poses = [Pose(mx - step * max(0, i - still // 2), 0, PAN_ZOOM) for i in range(n)]
    assert poses[-1].dx > -mx
    scene = [base] * still + list(walker(shots, base, 120, walk)) + [base] * after
    rng = np.random.default_rng(3)

    def feed() -> Iterator[np.ndarray]:
        for img, pose in zip(scene, poses, strict=True):
            noisy = render(img, pose).astype(np.float32) + rng.normal(0, 2.0, img.shape).astype(np.float32)
            yield np.clip(noisy, 0, 255).astype(np.uint8)

    events, det = starts(feed(), fps)
    assert det.shifts > walk // 2, "the pan was compensated, not ignored"
    assert len(events) == 1, events
    t0 = events[0]["start"].timestamp()
    assert still / fps - 0.5 <= t0 <= (still + walk) / fps, (t0, still / fps)


@pytest.mark.slow
def test_bench_camera_motion_figures_quick() -> None:
    """One script per family on the PETS clip (the whole bench is the slow test below): the
    figures the bench reports, within the targets."""
    result = evaluate([c for c in clips(need_clips()) if c.name == PETS], quick=True)
    assert result["false_alarm_rate"] <= 0.05, result
    assert result["settle_s_max"] <= 2.0, result
    assert result["held_out"]["family"] == "tilt" and "false_alarm_rate" in result["held_out"]
    assert {"pan", "zoom", "shake"} <= set(result["families"])


@pytest.mark.slow
def test_bench_motion_json_has_the_camera_motion_section(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from commune_iot.bench.motion import main

    assert main(video_dir=need_clips()) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cm = result["camera_motion"]
    assert cm["false_alarm_rate"] <= 0.05, cm
    assert cm["recall_ratio_under_shake"] >= 0.95, cm
    assert "settle_s" in cm and "held_out" in cm and "ms_per_frame_720p" in result


def test_shake_on_a_still_scene_is_compensated_not_suppressed() -> None:
    shots, fps = pets()
    base = plate(shots[::8])
    h, w = base.shape[:2]
    from commune_iot.bench.warps import shake

    run = run_still(base, shake(w, h, fps, seconds=6.0), fps)
    assert run.settle == [0.0], "shake never takes the detector out of service"
    assert run.rate <= 0.1, run
    assert math.isfinite(run.rate)


def test_small_far_cars_are_still_seen_while_the_camera_shakes() -> None:
    """The highway clip's first 400 ground-truth frames (dense traffic, small cars near the top)
    through the bench's hand-held shake: recall stays within 5 % of the still camera's. Before
    the fix (edge-based ``explains``, robust refinement, slack only at edges), more than half the
    shaken frames went uncompensated and the highway's recall under shake was 0.88 (0.77 of the
    still camera's on this window, precision 0.954)."""
    import dataclasses

    from commune_iot.bench.camera_motion import shake_scores

    clip = next(c for c in clips(need_clips()) if c.name == "cdnet_highway")
    clip = dataclasses.replace(clip, last=clip.first + 399)
    still, shaken = shake_scores(clip)
    assert still.tp + still.fn >= 300, still
    assert shaken.recall >= 0.95 * still.recall, (shaken, still)
    # Shake must not buy recall with false alarms: 0.975 measured on this window (9 of 47
    # frames without ground truth flagged; the still camera's: see the assertion message).
    assert shaken.precision >= 0.97, (shaken, still)
