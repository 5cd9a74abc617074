"""The ``camera_motion`` section of ``commune-iot bench motion``: the detector on a moving camera.

Clips are made by ``warps.py`` from the shared clips (known pans, tilts, zooms, shake). Measured:

- ``false_alarm_rate``: on each clip's still scene (its plate, fresh noise and JPEG every frame)
  seen through a pan, zoom or shake script, the share of frames from the first move to the end of
  the clip on which the detector says motion (there is nothing to see: every one is false).
- ``recall_ratio_under_shake``: the three real clips seen through hand-held shake, recall on their
  ground-truth frames (mask warped with the frame) divided by the recall on the same clips through
  the same still virtual camera.
- ``settle_s``: after each move ends, the seconds until the detector can report motion again
  (out of the camera-moving state and done re-learning); 0 when the move was compensated.
- ``held_out``: the same figures for the tilt family, which was not looked at while tuning.
- ``ms_per_frame_720p_moving`` (wall) and ``cpu_ms_per_frame_720p_moving`` (thread CPU time, one thread):
  the detector on 1280x720 frames of a pan and a zoom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from commune_iot.bench.motion import GT_SHARE, Clip, Score, Timing, frames, time_frames
from commune_iot.bench.warps import (
    HELD_OUT,
    SHAKE_ZOOM,
    Pose,
    Script,
    plate,
    render,
    scripts,
    shake,
    still_frames,
)
from edge.collectors.camera.config import MotionSettings
from edge.collectors.camera.motion import MotionDetector


@dataclass
class StillRun:
    """A still scene through one script: frames flagged and settle times."""

    family: str
    name: str
    flagged: int = 0
    frames: int = 0
    settle: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.flagged / self.frames if self.frames else 0.0


def clip_plate(clip: Clip, samples: int = 40, limit: int = 600) -> np.ndarray:
    """The clip's still scene from ``samples`` frames among its first ``limit``."""
    n = min(clip.last, limit)
    every = max(1, n // samples)
    return plate([f for i, f in enumerate(frames(clip.video, n)) if i % every == 0])


def run_still(
    base: np.ndarray, script: Script, fps: float, settings: MotionSettings | None = None
) -> StillRun:
    det = MotionDetector(settings, fps=fps)
    out = StillRun(script.family, script.name)
    first = script.move_frames[0][0]
    ready: list[bool] = []
    for i, frame in enumerate(still_frames(base, script)):
        r = det.detect(frame)
        ready.append(det.ready)
        if i >= first:
            out.frames += 1
            out.flagged += r.motion
    for _, end in script.move_frames:
        k = next((j for j in range(end, len(ready)) if ready[j]), len(ready))
        out.settle.append((k - end) / fps)
    return out


def _truth(folder: Path, n: int, size: tuple[int, int], pose: Pose, roi: np.ndarray | None) -> bool:
    mask = cv2.imread(str(folder / "groundtruth" / f"gt{n + 1:06d}.png"), cv2.IMREAD_GRAYSCALE)
    assert mask is not None, folder
    fg = (np.asarray(mask) == 255).astype(np.uint8) * 255
    if roi is not None:
        fg[roi == 0] = 0
    fg = cv2.resize(fg, size, interpolation=cv2.INTER_NEAREST)
    return float((render(fg, pose, nearest=True) > 0).mean()) > GT_SHARE


def shake_scores(clip: Clip, settings: MotionSettings | None = None) -> tuple[Score, Score]:
    """(still virtual camera, shaken one) on the clip's ground-truth frames."""
    folder = clip.video.parent
    roi_path = folder / "ROI.bmp"
    roi = cv2.imread(str(roi_path), cv2.IMREAD_GRAYSCALE) if roi_path.exists() else None
    cap = cv2.VideoCapture(str(clip.video))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    script = shake(w, h, clip.fps, seconds=clip.last / clip.fps)
    if roi is not None:
        roi = cv2.resize(roi, (w, h), interpolation=cv2.INTER_NEAREST)
    still_pose = Pose(0, 0, SHAKE_ZOOM)
    results = []
    for poses in ([still_pose] * len(script.poses), script.poses):
        det = MotionDetector(settings, fps=clip.fps)
        tp = fp = fn = tn = 0
        for i, frame in enumerate(frames(clip.video, clip.last)):
            pose = poses[min(i, len(poses) - 1)]
            said = det.detect(render(frame, pose)).motion
            if i not in clip.truth:
                continue
            truth = _truth(folder, i, (w, h), pose, roi)
            tp += truth and said
            fn += truth and not said
            fp += said and not truth
            tn += not said and not truth
        results.append(Score(clip.name, tp, fp, fn, tn))
    return results[0], results[1]


def time_moving(base: np.ndarray, fps: float, settings: MotionSettings | None = None) -> Timing:
    """ms per 1280x720 frame (wall, and CPU on one thread) while the camera pans and zooms
    (frames prepared beforehand)."""
    h, w = base.shape[:2]
    batches = [
        (fps, [cv2.resize(f, (1280, 720)) for f in still_frames(base, script)])
        for script in scripts(w, h, fps, quick=True)[:3]
        if script.family != "tilt"
    ]
    return time_frames(batches, settings, warm=0)


def _summary(runs: Sequence[StillRun]) -> dict[str, Any]:
    settle = [s for r in runs for s in r.settle]
    flagged, n = sum(r.flagged for r in runs), sum(r.frames for r in runs)
    return {
        "false_alarm_rate": round(flagged / n if n else 0.0, 4),
        "settle_s": round(float(np.mean(settle)) if settle else 0.0, 2),
        "settle_s_max": round(max(settle, default=0.0), 2),
        "frames": n,
    }


def evaluate(
    clip_list: Sequence[Clip], settings: MotionSettings | None = None, *, quick: bool = False
) -> dict[str, Any]:
    """The ``camera_motion`` object (printing one row per script); ``quick``: one script per family."""
    runs: list[StillRun] = []
    for clip in clip_list:
        base = clip_plate(clip)
        h, w = base.shape[:2]
        for script in scripts(w, h, clip.fps, quick=quick):
            r = run_still(base, script, clip.fps, settings)
            runs.append(r)
            print(
                f"  {clip.name:<24} {script.name:<28} false alarms {r.rate:.3f} ({r.flagged}/{r.frames})"
                f"  settle {', '.join(f'{s:.2f}' for s in r.settle)} s",
                flush=True,
            )
    tuned = [r for r in runs if r.family != HELD_OUT]
    result = _summary(tuned)
    result["families"] = {
        f: _summary([r for r in runs if r.family == f]) for f in sorted({r.family for r in runs})
    }
    result["held_out"] = {"family": HELD_OUT, **_summary([r for r in runs if r.family == HELD_OUT])}
    if not quick:
        still = shaken = None
        for clip in clip_list:
            a, b = shake_scores(clip, settings)
            print(f"  {clip.name:<24} shake: recall {b.recall:.3f} (still camera {a.recall:.3f})", flush=True)
            still = a if still is None else still + a
            shaken = b if shaken is None else shaken + b
        assert still is not None and shaken is not None
        result["recall_ratio_under_shake"] = round(shaken.recall / still.recall if still.recall else 0.0, 4)
        result["recall_under_shake"] = round(shaken.recall, 4)
        result["recall_still_camera"] = round(still.recall, 4)
        result["precision_under_shake"] = round(shaken.precision, 4)
        moving = time_moving(clip_plate(clip_list[0]), clip_list[0].fps, settings)
        result["ms_per_frame_720p_moving"] = round(moving.wall_ms, 3)
        result["cpu_ms_per_frame_720p_moving"] = round(moving.cpu_ms, 3)
    return result
