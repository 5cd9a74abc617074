"""Video tampering: a camera covered, blinded, blurred or turned away still gives a healthy stream
with no motion, so it is checked for on its own, twice a second on a tiny picture (~0.1 ms).

What is measured on an 80 px wide luma image:

- brightness (mean) and contrast (standard deviation): a bag or a hand over the lens gives a
  flat picture (``covered``); a night scene whose IR lamp is dead is nearly black (``dark``);
- sharpness (mean gradient magnitude) against a slowly learnt reference of the same scene: a
  fogged, smeared or defocused lens loses most of it (``blurred``);
- structure: the scene's gradient orientation field (light-independent: clouds, sun and
  headlights change levels, not where edges lie and which way they face), correlated with a
  slowly learnt reference; a camera knocked or turned to face elsewhere correlates poorly
  (``moved``). Not for PTZ cameras on a tour (``check_view: false``).

A condition must hold ``hold_s`` to raise and be gone ``clear_s`` to clear. References are only
learnt while no condition holds and the camera is not moving, so a slow covering is not learnt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.collectors.camera.config import TamperSettings

F32 = npt.NDArray[Any]
WIDTH = 80  # structure, brightness, contrast
SHARP_WIDTH = 320  # sharpness: blur must be seen at about the detector's own scale


@dataclass(frozen=True)
class TamperState:
    kind: str  # "" when fine, else covered / dark / blurred / moved
    since: float | None  # when the condition began (seconds, the caller's clock)
    brightness: float
    contrast: float
    sharpness: float  # relative to the learnt scene (1.0 = as sharp as usual)
    view: float  # structure correlation with the learnt scene (1.0 = the same view)


def _small(frame: npt.NDArray[Any], width: int) -> F32:
    h, w = frame.shape[:2]
    height = max(8, round(h * width / w))
    if w >= 4 * width:  # sample first: reading a whole 720p frame is the cost
        frame = cv2.resize(frame, (width * 2, height * 2), interpolation=cv2.INTER_NEAREST)
    small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    out: F32 = small.astype(np.float32)
    return out


def _sharpness(img: F32) -> float:
    """Fine detail per unit of contrast: the mean Laplacian magnitude over the mean gradient of a
    smoothed copy. Blur removes the first much faster than the second; light changes neither."""
    lap = float(cv2.mean(np.abs(cv2.Laplacian(img, cv2.CV_32F, ksize=1)))[0])
    smooth = cv2.GaussianBlur(img, (0, 0), 2.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return lap / max(float(cv2.mean(cv2.magnitude(gx, gy))[0]), 0.5)


def _orientation(gx: F32, gy: F32) -> F32:
    """Doubled-angle unit vectors weighted by gradient strength, normalised: sign- and level-free."""
    mag = cv2.magnitude(gx, gy) + np.float32(1e-3)
    c = (gx * gx - gy * gy) / mag
    s = 2 * gx * gy / mag
    v: F32 = np.concatenate([c.ravel(), s.ravel()])
    v -= v.mean()
    n = float(np.linalg.norm(v))
    out: F32 = v / n if n > 0 else v
    return out


class TamperDetector:
    """Feed frames with :meth:`feed` (any rate; it checks every ``every_s``)."""

    def __init__(self, settings: TamperSettings | None = None) -> None:
        self.s = settings or TamperSettings()
        self._next = float("-inf")
        self._sharp: float | None = None
        self._struct: F32 | None = None
        self._learnt_s = 0.0
        self._last: float | None = None
        self._seen: str = ""  # the condition seen at the last check
        self._seen_since: float | None = None
        self._active = ""
        self._active_since: float | None = None
        self._clear_since: float | None = None
        self.state = TamperState("", None, 0.0, 0.0, 1.0, 1.0)

    @property
    def kind(self) -> str:
        return self._active

    def feed(self, frame: npt.NDArray[Any], now: float, *, camera_moving: bool = False) -> TamperState:
        if not self.s.enabled or now < self._next:
            return self.state
        self._next = now + self.s.every_s
        dt = 0.0 if self._last is None else min(now - self._last, 10 * self.s.every_s)
        self._last = now
        img = _small(frame, WIDTH)
        m, sd = cv2.meanStdDev(img)
        mean, std = float(m.ravel()[0]), float(sd.ravel()[0])
        blur = cv2.GaussianBlur(img, (3, 3), 0)
        gx = cv2.Sobel(blur, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(blur, cv2.CV_32F, 0, 1, ksize=3)
        struct = _orientation(gx, gy)
        sharp = _sharpness(_small(frame, SHARP_WIDTH))
        sharp_rel = sharp / self._sharp if self._sharp else 1.0
        view = float(struct @ self._struct) if self._struct is not None else 1.0
        kind = ""
        if std < self.s.flat_std or mean < self.s.dark_mean:
            # Too flat or too dark to see: a night without IR keeps the scene's faint structure,
            # a bag or a hand over the lens does not.
            kind = "dark" if self._struct is not None and view >= self.s.view_match else "covered"
        elif (
            self.s.check_view
            and self._struct is not None
            and self._learnt_s >= 5 * self.s.every_s
            and view < self.s.view_match
            and not camera_moving
        ):
            kind = "moved"  # first: a new view may also be softer (zoomed, out of focus)
        elif self._sharp is not None and sharp_rel < self.s.blur_ratio:
            kind = "blurred"
        self._update(kind, now)
        if not kind and not self._active and not camera_moving:
            self._learn(sharp, struct, dt)
        self.state = TamperState(self._active, self._active_since, mean, std, sharp_rel, view)
        return self.state

    def _learn(self, sharp: float, struct: F32, dt: float) -> None:
        a = 1.0 if self._sharp is None else min(1.0, max(dt, self.s.every_s) / self.s.learn_s)
        if self._learnt_s < self.s.learn_s:  # warm-up: a plain average of what was seen so far
            a = max(a, self.s.every_s / (self._learnt_s + self.s.every_s))
        self._sharp = sharp if self._sharp is None else (1 - a) * self._sharp + a * sharp
        if self._struct is None:
            self._struct = struct
        else:
            mixed = (1 - a) * self._struct + a * struct
            n = float(np.linalg.norm(mixed))
            self._struct = mixed / n if n > 0 else mixed
        self._learnt_s += max(dt, self.s.every_s)

    def _update(self, kind: str, now: float) -> None:
        if kind != self._seen:
            self._seen, self._seen_since = kind, now
        if kind:
            self._clear_since = None
            assert self._seen_since is not None
            if kind != self._active and now - self._seen_since >= self.s.hold_s:
                if not self._active:
                    self._active_since = self._seen_since
                self._active = kind
        elif self._active:
            if self._clear_since is None:
                self._clear_since = now
            if now - self._clear_since >= self.s.clear_s:
                self._active, self._active_since, self._clear_since = "", None, None
