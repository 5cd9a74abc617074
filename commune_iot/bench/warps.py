"""Test clips of a moving camera made from the shared clips: known pans, tilts, zooms and shake.

No new footage: each output frame is a source frame seen through a *virtual camera* whose pose
(offset, zoom, roll about the frame's centre) is scripted per frame, so the camera's motion is
known exactly and the ground truth mask moves with it (warped the same way). A still scene is a
clip's *plate* (the per-pixel median of frames spread over the clip: the scene without its
moving objects) with fresh sensor noise and JPEG compression on every frame, as a real camera
would give it. Speeds are in px per frame of the source's own resolution; zoom rates in % per
frame. Families: ``pan``, ``zoom``, ``shake`` are used in tuning; ``tilt`` is held out and
reported separately.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.collectors.camera.global_motion import GlobalMotion

Frame = npt.NDArray[Any]
PAN_ZOOM = 1.5  # pans and tilts look at the middle two thirds, so there is room to move
SHAKE_ZOOM = 1.1
HELD_OUT = "tilt"


@dataclass(frozen=True)
class Pose:
    """The virtual camera: offset (px of output), zoom (1 = the whole source), roll (rad)."""

    dx: float = 0.0
    dy: float = 0.0
    zoom: float = 1.0
    angle: float = 0.0

    def matrix(self, w: int, h: int) -> Frame:
        return GlobalMotion(self.dx, self.dy, self.zoom, self.angle, 1.0).matrix(w, h)


@dataclass(frozen=True)
class Script:
    """A named family member: one pose per frame, and the frame indices where moves end."""

    family: str
    name: str
    poses: list[Pose]
    move_frames: list[tuple[int, int]]  # [start, end) of each move

    def moving(self, i: int) -> bool:
        return any(a <= i < b for a, b in self.move_frames)


def render(frame: Frame, pose: Pose, *, nearest: bool = False) -> Frame:
    h, w = frame.shape[:2]
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out: Frame = cv2.warpAffine(frame, pose.matrix(w, h), (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
    return out


def _ramp(a: float, b: float, step: float) -> list[float]:
    n = max(1, math.ceil(abs(b - a) / step))
    return [a + (b - a) * k / n for k in range(1, n + 1)]


def _there_and_back(
    family: str, name: str, fps: float, values: tuple[float, float], step: float, make: Any
) -> Script:
    """Hold 3 s, move from values[0] to values[1], hold 4 s, move back, hold 4 s."""
    hold0, hold = round(3 * fps), round(4 * fps)
    a, b = values
    path = [a] * hold0
    moves = []
    for x, y in ((a, b), (b, a)):
        start = len(path)
        path += _ramp(x, y, step)
        moves.append((start, len(path)))
        path += [y] * hold
    return Script(family, name, [make(v) for v in path], moves)


def scripts(w: int, h: int, fps: float, *, quick: bool = False) -> list[Script]:
    """Every family member for a w x h source at ``fps``; ``quick``: one of each (for tests)."""
    mx = 0.9 * (PAN_ZOOM - 1) * w / 2
    my = 0.9 * (PAN_ZOOM - 1) * h / 2
    out: list[Script] = []
    for v in (2.0,) if quick else (1.0, 2.0, 4.0, 8.0):
        out.append(
            _there_and_back("pan", f"pan {v:g} px/frame", fps, (mx, -mx), v, lambda x: Pose(x, 0, PAN_ZOOM))
        )
    for v in (2.0,) if quick else (1.0, 3.0, 6.0):
        out.append(
            _there_and_back("tilt", f"tilt {v:g} px/frame", fps, (my, -my), v, lambda y: Pose(0, y, PAN_ZOOM))
        )
    for pct in (1.0,) if quick else (0.5, 1.0, 2.0):
        step = math.log1p(pct / 100)
        out.append(
            _there_and_back(
                "zoom",
                f"zoom {pct:g} %/frame in, out",
                fps,
                (0.0, math.log(1.8)),
                step,
                lambda z: Pose(zoom=math.exp(z)),
            )
        )
    out.append(shake(w, h, fps, seconds=6.0 if quick else 12.0))
    return out


def shake(w: int, h: int, fps: float, *, seconds: float, amplitude: float = 2.0, seed: int = 7) -> Script:
    """Hand-held shake: smooth random offset of about ``amplitude`` px (source px at 320 wide,
    scaled with the width) and a roll of about 0.2 degrees, changing every frame; 3 s still first."""
    rng = np.random.default_rng(seed)
    hold0 = round(3 * fps)
    n = hold0 + round(seconds * fps)
    amp = amplitude * w / 320
    raw = rng.normal(0, 1, (n + 8, 3))
    kernel = np.ones(3) / 3  # a hand trembles a few times a second: smooth over ~3 frames
    smooth = np.stack([np.convolve(raw[:, k], kernel, "same") for k in range(3)], 1)[4 : n + 4]
    smooth /= smooth.std(0)
    poses = [
        Pose(0, 0, SHAKE_ZOOM)
        if i < hold0
        else Pose(amp * smooth[i, 0], amp * smooth[i, 1], SHAKE_ZOOM, math.radians(0.2) * smooth[i, 2])
        for i in range(n)
    ]
    return Script("shake", "shake ~2 px, 0.2 deg", poses, [(hold0, n)])


def plate(frames: list[Frame]) -> Frame:
    """The scene without its moving objects: the per-pixel median of frames spread over a clip."""
    med: Frame = np.median(np.stack(frames), axis=0).astype(np.uint8)
    return med


def still_frames(base: Frame, script: Script, *, noise: float = 2.0, seed: int = 1) -> Iterator[Frame]:
    """The still scene through the script's poses, with sensor noise and JPEG compression."""
    rng = np.random.default_rng(seed)
    for pose in script.poses:
        img = render(base, pose).astype(np.float32) + rng.normal(0, noise, base.shape).astype(np.float32)
        ok, jpg = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
        out = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
        assert ok and out is not None
        yield out


def tour(w: int, h: int, fps: float, *, pan: float = 4.0, zoom_pct: float = 1.0) -> Script:
    """A PTZ tour: 3 s still, pan across, 2 s still, zoom in, 2 s still, zoom out while panning
    back (fast), 3 s still."""
    mx = 0.9 * (PAN_ZOOM - 1) * w / 2
    poses = [Pose(mx, 0, PAN_ZOOM)] * round(3 * fps)
    moves = []

    def move(path: list[Pose]) -> None:
        moves.append((len(poses), len(poses) + len(path)))
        poses.extend(path)

    move([Pose(x, 0, PAN_ZOOM) for x in _ramp(mx, -mx, pan)])
    poses.extend([poses[-1]] * round(2 * fps))
    z1 = PAN_ZOOM * 1.3
    move(
        [
            Pose(-mx, 0, math.exp(z))
            for z in _ramp(math.log(PAN_ZOOM), math.log(z1), math.log1p(zoom_pct / 100))
        ]
    )
    poses.extend([poses[-1]] * round(2 * fps))
    n = max(1, math.ceil(math.log(z1 / PAN_ZOOM) / math.log1p(2 * zoom_pct / 100)))
    move([Pose(-mx + 2 * mx * k / n, 0, z1 * (PAN_ZOOM / z1) ** (k / n)) for k in range(1, n + 1)])
    poses.extend([poses[-1]] * round(3 * fps))
    return Script("tour", "PTZ tour", poses, moves)
