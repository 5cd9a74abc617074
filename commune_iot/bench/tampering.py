"""Shared clips made to fail the way tampered cameras do, for the tampering checks' tests.

Each failure starts at a given second and lasts a given time; the frames outside it are the
clip's own. ``covered``: a dark bag over the lens (near-uniform, a little light through it);
``blurred``: a Gaussian blur whose kernel grows from nothing to 31 px (at 320 px wide,
proportionally wider frames) over 4 s, then stays;
``moved``: the camera knocked to a new view (turned ~25 degrees, zoomed, shifted) and held;
``dark``: night falls without IR (levels divided by 12, sensor noise on top).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from commune_iot.bench.warps import Pose, render

Frame = npt.NDArray[Any]
KINDS = ("covered", "blurred", "moved", "dark")


def tamper(frame: Frame, kind: str, t: float, rng: np.random.Generator) -> Frame:
    """``frame`` as it looks ``t`` seconds into a failure of this kind."""
    img: Frame
    if kind == "covered":
        h, w = frame.shape[:2]
        shade = np.linspace(14, 24, w, dtype=np.float32)[None, :, None]
        img = np.broadcast_to(shade, frame.shape) + 1.5 * rng.standard_normal(frame.shape, np.float32)
    elif kind == "blurred":
        sigma = min(1.0, t / 4.0) * 31 / 6 * frame.shape[1] / 320
        img = cv2.GaussianBlur(frame, (0, 0), sigma) if sigma > 0.3 else frame
    elif kind == "moved":
        h, w = frame.shape[:2]
        img = render(frame, Pose(0.25 * w, -0.1 * h, 1.6, math.radians(25)))
    elif kind == "dark":
        img = frame.astype(np.float32) / 12 + 2.0 * rng.standard_normal(frame.shape, np.float32)
    else:
        raise ValueError(kind)
    out: Frame = np.clip(img, 0, 255).astype(np.uint8)
    return out


def failing(
    source: Iterator[Frame], fps: float, kind: str, start_s: float, seconds: float, seed: int = 1
) -> Iterator[Frame]:
    """The source's frames with the failure from ``start_s`` for ``seconds``."""
    rng = np.random.default_rng(seed)
    for i, frame in enumerate(source):
        t = i / fps - start_s
        yield tamper(frame, kind, t, rng) if 0 <= t < seconds else frame
