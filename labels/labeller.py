"""Labels for one motion event's picture: the policy both the board and the cloud apply.

A wrong label is worse than none, so a detection becomes a label only when:

- its class is one a commune camera reports (``labels.classes.MIN_CONFIDENCE``) and its
  confidence reaches that class's bar;
- when the moving regions of the picture are known, at least ``motion_cover`` of its box lies
  in them: a parked car beside a walking person is not what moved;
- it is not *parked*: an object of the same class found at the same place (boxes overlapping by
  ``STATIC_IOU``) in another snapshot of the same event, or in a recent picture of the same
  camera (the previous event's), did not move, whatever the motion detector said about that
  spot (clouds and sun make it flag whole car parks). A person who stands still through an
  event is dropped too: precision first.

Small objects are where NanoDet at 416x416 is weakest (a person 40 px tall in a 576-line frame
is 29 px at the model's scale), so besides the whole picture the model also looks at up to
``crops`` zoomed windows around the moving regions; detections of all views are merged by
class-aware non-maximum suppression.

Over an event's life the picture may change (a better frame). :meth:`Labeller.event_labels`
labels all of an event's pictures and keeps what the earlier ones showed: labels of the current
(last) picture carry their boxes, classes seen only in an earlier one stay without a box (their
box would point into another picture).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from labels.classes import COCO
from labels.detector import Detection, Detector, Window, nms
from labels.model import find
from labels.settings import LabelSettings

Rect = tuple[float, float, float, float]  # x, y, w, h in fractions of the picture
MAX_LABELS = 16  # per event; the wire allows 32
CROP_MERGE_IOU = 0.5
#: Same class, boxes overlapping this much in two pictures of one event: it did not move. A walker
#: shifts far more between two snapshots (at least a second apart); a parked car's boxes differ by
#: the detector's jitter and by whoever walks in front of it (measured on PETS: 0.7 let cars through).
STATIC_IOU = 0.5
#: The model's detections are kept down to this confidence: below every class's bar, so that a
#: parked car found with less confidence in another picture still counts as evidence.
EVIDENCE_FLOOR = 0.3


@dataclass(frozen=True)
class Picture:
    """What the model saw in one picture of an event, and where that picture moved."""

    per_view: list[list[Detection]]
    regions: list[Rect]

    @property
    def detections(self) -> list[Detection]:
        return [d for view in self.per_view for d in view]


def iou(a: Detection, b: Detection) -> float:
    w = max(0.0, min(a.x1, b.x1) - max(a.x, b.x))
    h = max(0.0, min(a.y1, b.y1) - max(a.y, b.y))
    inter = w * h
    return inter / max(a.w * a.h + b.w * b.h - inter, 1e-12)


def coverage(box: Rect, regions: Sequence[Rect], samples: int = 24) -> float:
    """Share of ``box`` inside the union of ``regions`` (on a grid of samples x samples points)."""
    x, y, w, h = box
    if not regions or w <= 0 or h <= 0:
        return 0.0
    xs = x + (np.arange(samples) + 0.5) * w / samples
    ys = y + (np.arange(samples) + 0.5) * h / samples
    gx, gy = np.meshgrid(xs, ys)
    inside = np.zeros(gx.shape, bool)
    for rx, ry, rw, rh in regions:
        inside |= (gx >= rx) & (gx <= rx + rw) & (gy >= ry) & (gy <= ry + rh)
    return float(inside.mean())


def windows(regions: Sequence[Rect], width: int, height: int, count: int, min_share: float) -> list[Window]:
    """Up to ``count`` square-ish pixel windows (left, top, right, bottom) around the moving
    regions, largest region first, each at least ``min_share`` of the shorter side and the
    region with half its size again on every side; windows that would show nearly the whole
    picture, or a region an earlier window already shows, are skipped."""
    out: list[Window] = []
    side_min = min_share * min(width, height)
    for rx, ry, rw, rh in sorted(regions, key=lambda r: -r[2] * r[3]):
        if len(out) >= count:
            break
        x0, y0, x1, y1 = rx * width, ry * height, (rx + rw) * width, (ry + rh) * height
        if any(a <= x0 and b <= y0 and c >= x1 and d >= y1 for a, b, c, d in out):
            continue
        side_w = min(float(width), max(side_min, 2 * (x1 - x0)))
        side_h = min(float(height), max(side_min, 2 * (y1 - y0)))
        if side_w >= 0.9 * width and side_h >= 0.9 * height:
            continue
        left = min(max(0.0, (x0 + x1 - side_w) / 2), width - side_w)
        top = min(max(0.0, (y0 + y1 - side_h) / 2), height - side_h)
        out.append((round(left), round(top), round(left + side_w), round(top + side_h)))
    return out


class Labeller:
    """The model plus the policy. Loading takes a second; keep one per process."""

    def __init__(self, settings: LabelSettings | None = None) -> None:
        self.settings = settings or LabelSettings()
        self.model_path = find(self.settings.model)
        self.detector = Detector(self.model_path, self.settings.threads)
        self.floor = min(EVIDENCE_FLOOR, *self.settings.min_confidence.values())
        self.inferences = 0

    def label(self, picture: Image.Image, regions: Sequence[Rect] = ()) -> list[Detection]:
        """Detections that may label ``picture`` (a Pillow image), best first. ``regions``:
        where the picture moved (fractions of it); empty when unknown (then no motion test)."""
        return self.choose(self.look(picture, regions), regions)

    def picture(self, picture: Image.Image, regions: Sequence[Rect] = ()) -> Picture:
        """Look at one picture of an event (for :meth:`event_labels`)."""
        return Picture(self.look(picture, regions), list(regions))

    def event_labels(
        self, pictures: Sequence[Picture], reference: Sequence[Picture] = ()
    ) -> list[dict[str, Any]]:
        """An event's labels from all its pictures, oldest first (see the module docstring);
        ``reference``: recent pictures of the same camera from other events, only to tell what
        is parked."""
        labels: list[dict[str, Any]] = []
        seen_elsewhere = [d for pic in reference for d in pic.detections]
        for i, pic in enumerate(pictures):
            others = [d for j, other in enumerate(pictures) if j != i for d in other.detections]
            others += seen_elsewhere
            found = [
                d
                for d in self.choose(pic.per_view, pic.regions)
                if not any(o.label == d.label and iou(o, d) >= STATIC_IOU for o in others)
            ]
            labels = merge(labels, as_labels(found))
        return labels

    def look(self, picture: Image.Image, regions: Sequence[Rect] = ()) -> list[list[Detection]]:
        """The model's detections down to ``EVIDENCE_FLOOR``, per view: the whole picture first,
        then the zoomed windows around ``regions``."""
        s = self.settings
        width, height = picture.size
        views: list[Window | None] = [None, *windows(regions, width, height, s.crops, s.crop_min)]
        self.inferences += len(views)
        return [self.detector.detect(picture, view, self.floor) for view in views]

    def choose(
        self, per_view: Sequence[Sequence[Detection]], regions: Sequence[Rect] = ()
    ) -> list[Detection]:
        """The policy (module docstring) applied to :meth:`look`'s detections."""
        s = self.settings
        found = [d for view in per_view for d in view if d.confidence >= s.min_confidence.get(d.label, 2.0)]
        if regions:
            found = [d for d in found if coverage((d.x, d.y, d.w, d.h), regions) >= s.motion_cover]
        if len(per_view) > 1 and found:
            boxes = np.array([[d.x, d.y, d.x1, d.y1] for d in found], np.float32)
            scores = np.array([d.confidence for d in found], np.float32)
            classes = np.array([COCO.index(d.label) for d in found], np.int64)
            found = [found[i] for i in nms(boxes, scores, classes, CROP_MERGE_IOU)]
        return sorted(found, key=lambda d: -d.confidence)[:MAX_LABELS]


def as_labels(found: Sequence[Detection]) -> list[dict[str, Any]]:
    """Detections as the wire's and the event store's label dicts."""
    return [
        {
            "label": d.label,
            "confidence": round(d.confidence, 3),
            "box": {"x": round(d.x, 4), "y": round(d.y, 4), "w": round(d.w, 4), "h": round(d.h, 4)},
        }
        for d in found
    ]


def merge(
    previous: Sequence[Mapping[str, Any]] | None, current: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """An event's labels after labelling a new picture of it: the new picture's labels (with
    their boxes), plus one box-less label for each class only earlier pictures showed (with
    the best confidence it had)."""
    out = [dict(c) for c in current]
    now = {c["label"] for c in current}
    earlier: dict[str, float] = {}
    for p in previous or ():
        if p["label"] not in now:
            earlier[p["label"]] = max(earlier.get(p["label"], 0.0), float(p["confidence"]))
    out += [{"label": k, "confidence": v} for k, v in sorted(earlier.items(), key=lambda kv: -kv[1])]
    return out[:MAX_LABELS]
