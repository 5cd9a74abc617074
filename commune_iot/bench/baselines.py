"""Reference detectors for ``commune-iot bench motion --baselines`` (not used by the agent).

Both are re-implemented here from their public defaults, so their scores are ours to measure on
the same frames with the same rule as our detector, not figures quoted from elsewhere:

- ``FrigateStyle``: Frigate NVR's improved motion detector as configured by default (frame
  100 px high, contrast stretch 4th-96th percentile, 3x3 blur, running average alpha 0.01,
  threshold 30, dilation, contours > 10 px, recalibration above 80 % of the frame changing).
- ``Mog2``: OpenCV's MOG2 background subtractor with its defaults (history 500, variance
  threshold 16, shadows detected and not counted) on the same 320 px image as ours, opened
  3x3, contours of at least 0.1 % of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt


@dataclass
class Said:
    motion: bool


class FrigateStyle:
    def __init__(self, height: int = 100, threshold: int = 30, contour_area: int = 10) -> None:
        self.height = height
        self.threshold = threshold
        self.contour_area = contour_area
        self.alpha = 0.01
        self.avg: npt.NDArray[Any] | None = None

    def detect(self, frame: npt.NDArray[Any]) -> Said:
        h, w = frame.shape[:2]
        width = round(w * self.height / h)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        small = cv2.resize(gray, (width, self.height), interpolation=cv2.INTER_LINEAR)
        lo, hi = np.percentile(small, [4, 96])
        if hi > lo:
            small = np.clip((small.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        small = cv2.GaussianBlur(small, (3, 3), cv2.BORDER_DEFAULT)
        if self.avg is None:
            self.avg = small.astype(np.float32)
            return Said(False)
        delta = cv2.absdiff(small, cv2.convertScaleAbs(self.avg))
        _, thresh = cv2.threshold(delta, self.threshold, 255, cv2.THRESH_BINARY)
        thresh = cv2.dilate(thresh, None, iterations=1)  # type: ignore[call-overload]
        contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = [c for c in contours if cv2.contourArea(c) > self.contour_area]
        area = sum(cv2.contourArea(c) for c in boxes) / float(small.size)
        if area > 0.8:  # lightning / IR switch: recalibrate, report nothing
            self.avg = small.astype(np.float32)
            return Said(False)
        cv2.accumulateWeighted(small.astype(np.float32), self.avg, self.alpha)
        return Said(bool(boxes))


class Mog2:
    def __init__(self, width: int = 320, min_area: float = 0.001) -> None:
        self.width = width
        self.min_area = min_area
        self.sub = cv2.createBackgroundSubtractorMOG2()
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def detect(self, frame: npt.NDArray[Any]) -> Said:
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (self.width, round(h * self.width / w)), interpolation=cv2.INTER_AREA)
        mask = self.sub.apply(small)
        _, fg = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)  # 255 = foreground, 127 = shadow
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self.kernel)
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        need = self.min_area * fg.size
        return Said(any(cv2.contourArea(c) >= need for c in contours))
