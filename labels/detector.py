"""NanoDet on onnxruntime: a picture (or a window of it) in, named boxes out.

Decoding follows NanoDet's own head (GFL): per feature level (strides 8, 16, 32 on the
416x416 input) every cell has 80 class scores (already through a sigmoid in this graph) and,
per side of its box, a distribution over 11 distance bins; the distance is the expectation
of that distribution (softmax, then the bins' weighted sum) times the stride, measured from
the cell's corner point (grid index x stride). Boxes above the score floor go through a
class-aware non-maximum suppression. Taking each side's most likely bin instead (the
decoder shipped with the TF.js model) gives visibly worse boxes.

Input: NanoDet's BGR mean/std normalisation on a picture stretched to 416x416 (as NanoDet was
trained; no letterbox). Pictures come as Pillow images so that the cloud needs no OpenCV.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from labels.classes import COCO

SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11
MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # B, G, R
INV_STD = 1.0 / np.array([57.375, 57.12, 58.395], np.float32)
NMS_IOU = 0.6
MAX_DETECTIONS = 100

F32 = npt.NDArray[np.float32]
Window = tuple[int, int, int, int]  # left, top, right, bottom in pixels of the picture


@dataclass(frozen=True, slots=True)
class Detection:
    """One object: COCO class, confidence 0..1, box in fractions of the whole picture."""

    label: str
    confidence: float
    x: float
    y: float
    w: float
    h: float

    @property
    def x1(self) -> float:
        return self.x + self.w

    @property
    def y1(self) -> float:
        return self.y + self.h


def nms(boxes: F32, scores: F32, classes: npt.NDArray[np.int64], iou: float) -> list[int]:
    """Indices kept by class-aware non-maximum suppression (boxes as x0, y0, x1, y1)."""
    if not len(scores):
        return []
    # Shift each class to its own region so one pass never suppresses across classes.
    off = boxes + (classes.astype(np.float32) * (float(boxes.max()) + 1.0))[:, None]
    x0, y0, x1, y1 = off.T
    area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < MAX_DETECTIONS:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0)
        h = np.maximum(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0)
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter + 1e-9) <= iou]
    return keep


class Detector:
    """One onnxruntime session; ``detect`` is thread-safe (onnxruntime's ``run`` is)."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        #: Seconds each ``detect`` took, when a caller (the benchmark) sets it to a list.
        self.timings: list[float] | None = None
        self.input = self.session.get_inputs()[0].name
        outs = [(o.name, tuple(o.shape)) for o in self.session.get_outputs()]
        self._levels: list[tuple[int, int, int, int]] = []  # (stride, grid, cls index, reg index)
        for stride in STRIDES:
            n = (SIZE // stride) ** 2
            cls = [i for i, (_, s) in enumerate(outs) if s[1:] == (n, len(COCO))]
            reg = [i for i, (_, s) in enumerate(outs) if s[1:] == (n, 4 * BINS)]
            if len(cls) != 1 or len(reg) != 1:
                raise ValueError(f"{model}: not the NanoDet graph expected (outputs {outs})")
            self._levels.append((stride, SIZE // stride, cls[0], reg[0]))

    @staticmethod
    def tensor(picture: Image.Image, window: Window | None = None) -> F32:
        """The network's input for ``picture`` (RGB) cropped to ``window``: 1x3x416x416 BGR."""
        part = picture.crop(window) if window is not None else picture
        rgb = np.asarray(part.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR), np.float32)
        bgr = (rgb[:, :, ::-1] - MEAN) * INV_STD
        return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])

    def detect(
        self, picture: Image.Image, window: Window | None = None, min_confidence: float = 0.3
    ) -> list[Detection]:
        """Objects in ``picture`` (or in ``window`` of it), boxes in fractions of the picture."""
        t0 = time.perf_counter()
        width, height = picture.size
        left, top, right, bottom = window if window is not None else (0, 0, width, height)
        raw = self.session.run(None, {self.input: self.tensor(picture, window)})
        boxes, scores, classes = self.decode(raw, min_confidence)
        if self.timings is not None:
            self.timings.append(time.perf_counter() - t0)
        sx, sy = (right - left) / SIZE, (bottom - top) / SIZE
        out = []
        for (x0, y0, x1, y1), score, cls in zip(
            boxes.tolist(), scores.tolist(), classes.tolist(), strict=True
        ):
            px0, py0 = max(0.0, left + x0 * sx), max(0.0, top + y0 * sy)
            px1, py1 = min(float(width), left + x1 * sx), min(float(height), top + y1 * sy)
            if px1 <= px0 or py1 <= py0:
                continue
            out.append(
                Detection(
                    COCO[cls],
                    score,
                    px0 / width,
                    py0 / height,
                    (px1 - px0) / width,
                    (py1 - py0) / height,
                )
            )
        return out

    def decode(self, raw: Sequence[Any], min_confidence: float) -> tuple[F32, F32, npt.NDArray[np.int64]]:
        """(boxes x0 y0 x1 y1 in input pixels, scores, class indices) after class-aware NMS."""
        all_boxes, all_scores, all_classes = [], [], []
        for stride, grid, ci, ri in self._levels:
            scores = np.asarray(raw[ci][0], np.float32)  # (n, 80)
            cell, cls = np.nonzero(scores >= min_confidence)
            if not cell.size:
                continue
            reg = np.asarray(raw[ri][0], np.float32)[cell].reshape(-1, 4, BINS)
            e = np.exp(reg - reg.max(axis=2, keepdims=True))
            dist = (e / e.sum(axis=2, keepdims=True)) @ np.arange(BINS, dtype=np.float32) * stride
            cy, cx = np.divmod(cell, grid)
            cx, cy = cx.astype(np.float32) * stride, cy.astype(np.float32) * stride
            all_boxes.append(
                np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
            )
            all_scores.append(scores[cell, cls])
            all_classes.append(cls.astype(np.int64))
        if not all_scores:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        boxes = np.concatenate(all_boxes)
        scores = np.concatenate(all_scores)
        classes = np.concatenate(all_classes)
        keep = nms(boxes, scores, classes, NMS_IOU)
        return boxes[keep], scores[keep], classes[keep]
