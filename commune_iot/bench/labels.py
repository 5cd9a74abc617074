"""``commune-iot bench labels``: object labels scored against the shared clips' ground truth.

What is scored is what an event would carry. Every clip of ``../shared/testdata/video`` is run
through the board's motion detector from its first frame (as ``bench motion`` does); on the
ground-truth frames that contain objects (every ``--step``-th of them) the picture is made as
the cloud receives it (at most 640 px wide, JPEG quality 70: the edge's snapshot defaults) and
labelled with the moving regions the detector found in that frame, by the same code the
board and the cloud run (``labels.labeller``).

Ground truth: the clips' masks have no classes, so each clip says what its moving foreground
is (``CLIPS``): cars and trucks on the highway, people walking in PETS 2009, a canoe with its
four paddlers on the river. Objects are the connected blobs of foreground (mask value 255,
closed with a 5x5 ellipse to join an object's fragments) covering at least 0.05 % of the frame.

A label's box *matches* a blob when their intersection over union (box against the blob's
bounding box) is at least 0.3, or when at least 60 % of the box lies inside the blob's
bounding box (one of several people whose masks merged into one blob). A ``person`` or
``vehicle`` label (vehicle: bicycle, motorcycle, car, bus, truck) is correct when it matches a
blob of an object of its kind (a person label on the canoe is correct: people paddle it), and
wrong otherwise, including every label on something that did not move. Precision = correct /
all labels of the kind; recall = blobs of the kind with at least one matching label / all
blobs of the kind (only clips whose blobs are all of one kind count for recall). By size:
the object's height in the whole picture at the model's scale (the picture stretched to 416
px high): small < 32 px, medium 32-64 px, large >= 64 px.

The ``whole_picture`` line is the model alone on the whole picture with the same class bars,
without zoomed views and without the motion test, for comparison. Times are of this machine,
with the model's ``threads`` setting, while other work runs on it: ``ms_per_inference`` is the
median of every view's time (picture preparation, the model, decoding), ``ms_per_inference_best``
the fastest one (what an idle machine gives), ``ms_per_picture`` the mean for one picture with
its zoomed views.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from commune_iot.bench.motion import VIDEO_DIR, Clip, clips, frames
from edge.collectors.camera.events import encode_jpeg
from edge.collectors.camera.motion import MotionDetector
from labels.classes import GROUPS
from labels.labeller import Labeller
from labels.settings import LabelSettings

SNAPSHOT_WIDTH = 640
SNAPSHOT_QUALITY = 70
MIN_BLOB = 0.0005
MATCH_IOU = 0.3
MATCH_INSIDE = 0.6
SIZES = (("small", 32.0), ("medium", 64.0), ("large", float("inf")))
KINDS = {"person": frozenset({"person"}), "vehicle": GROUPS["vehicle"]}


@dataclass(frozen=True)
class Truth:
    correct: frozenset[str]  # kinds of label that are right on this clip's blobs
    recall: str | None  # the kind every blob is, when they all are one (recall is scored)
    what: str


CLIPS: dict[str, Truth] = {
    "cdnet_highway": Truth(frozenset({"vehicle"}), "vehicle", "cars and trucks on a motorway"),
    "pets2009_illumination": Truth(frozenset({"person"}), "person", "people walking across a campus"),
    "cdnet_canoe": Truth(frozenset({"person"}), None, "a canoe and its four paddlers"),
}

PxBox = tuple[float, float, float, float]  # x0, y0, x1, y1 in picture pixels


def size_of(height_px: float, picture_height: int) -> str:
    h = height_px * 416 / picture_height
    return next(name for name, upper in SIZES if h < upper)


def blobs(mask: npt.NDArray[Any], width: int, height: int) -> list[PxBox]:
    """Foreground objects of a ground-truth mask, as boxes in picture pixels."""
    fg = (mask == 255).astype(np.uint8)
    if fg.shape != (height, width):
        fg = cv2.resize(fg, (width, height), interpolation=cv2.INTER_NEAREST)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    return [
        (float(x), float(y), float(x + w), float(y + h))
        for x, y, w, h, area in stats[1:n]
        if area >= MIN_BLOB * width * height
    ]


def matches(box: PxBox, blob: PxBox) -> bool:
    w = max(0.0, min(box[2], blob[2]) - max(box[0], blob[0]))
    h = max(0.0, min(box[3], blob[3]) - max(box[1], blob[1]))
    inter = w * h
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (blob[2] - blob[0]) * (blob[3] - blob[1])
    return inter / max(a + b - inter, 1e-9) >= MATCH_IOU or inter / max(a, 1e-9) >= MATCH_INSIDE


@dataclass
class Tally:
    correct: dict[str, int] = field(default_factory=dict)  # by size
    wrong: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def _sum(d: dict[str, int]) -> int:
        return sum(d.values())

    def precision(self, size: str | None = None) -> float | None:
        c = self._sum(self.correct) if size is None else self.correct.get(size, 0)
        w = self._sum(self.wrong) if size is None else self.wrong.get(size, 0)
        return round(c / (c + w), 4) if c + w else None

    def recall(self, size: str | None = None) -> float | None:
        n = self._sum(self.objects) if size is None else self.objects.get(size, 0)
        f = self._sum(self.found) if size is None else self.found.get(size, 0)
        return round(f / n, 4) if n else None

    def line(self) -> str:
        p, r = self.precision(), self.recall()
        c, lab = self._sum(self.correct), self._sum(self.correct) + self._sum(self.wrong)
        n, f = self._sum(self.objects), self._sum(self.found)
        sizes = ", ".join(
            f"{s} {self.found.get(s, 0)}/{self.objects.get(s, 0)}" for s, _ in SIZES if self.objects.get(s)
        )
        return (
            f"precision {p if p is not None else '-'} ({c}/{lab} labels), "
            f"recall {r if r is not None else '-'} ({f}/{n} objects{': ' + sizes if sizes else ''})"
        )


def add(
    tallies: dict[str, Tally], labels: Sequence[Any], objects: Sequence[PxBox], truth: Truth, w: int, h: int
) -> None:
    for kind, classes in KINDS.items():
        t = tallies.setdefault(kind, Tally())
        hit: set[int] = set()
        for d in labels:
            if d.label not in classes:
                continue
            box = (d.x * w, d.y * h, d.x1 * w, d.y1 * h)
            on = [i for i, b in enumerate(objects) if matches(box, b)]
            size = size_of(objects[on[0]][3] - objects[on[0]][1] if on else box[3] - box[1], h)
            if on and kind in truth.correct:
                t.correct[size] = t.correct.get(size, 0) + 1
                hit.update(on)
            else:
                t.wrong[size] = t.wrong.get(size, 0) + 1
        if truth.recall == kind:
            for i, b in enumerate(objects):
                size = size_of(b[3] - b[1], h)
                t.objects[size] = t.objects.get(size, 0) + 1
                if i in hit:
                    t.found[size] = t.found.get(size, 0) + 1


def picture_of(frame: npt.NDArray[Any]) -> Image.Image:
    """The frame as the cloud receives it: the edge's snapshot JPEG, decoded with Pillow."""
    import io

    data = encode_jpeg(frame, SNAPSHOT_WIDTH, SNAPSHOT_QUALITY)
    return Image.open(io.BytesIO(data)).convert("RGB")


@dataclass
class Run:
    system: dict[str, Tally] = field(default_factory=dict)
    whole: dict[str, Tally] = field(default_factory=dict)
    pictures: int = 0
    views: int = 0
    look_s: float = 0.0


def score_clip(clip: Clip, truth: Truth, labeller: Labeller, run: Run, step: int) -> dict[str, Tally]:
    folder = clip.video.parent
    roi_path = folder / "ROI.bmp"
    roi = cv2.imread(str(roi_path), cv2.IMREAD_GRAYSCALE) if roi_path.exists() else None
    motion = MotionDetector(fps=clip.fps)
    own: dict[str, Tally] = {}
    scored = 0
    for i, frame in enumerate(frames(clip.video, clip.last)):
        result = motion.detect(frame)
        if i not in clip.truth or not clip.truth[i]:
            continue
        mask = cv2.imread(str(folder / "groundtruth" / f"gt{i + 1:06d}.png"), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(folder / "groundtruth" / f"gt{i + 1:06d}.png")
        if roi is not None:
            mask = np.where(roi > 0, mask, 0).astype(np.uint8)
        scored += 1
        if (scored - 1) % step:
            continue
        picture = picture_of(frame)
        w, h = picture.size
        objects = blobs(mask, w, h)
        if not objects:
            continue
        regions = [(b.x, b.y, b.w, b.h) for b in result.blobs]
        t0 = time.perf_counter()
        per_view = labeller.look(picture, regions)
        run.look_s += time.perf_counter() - t0
        run.views += len(per_view)
        run.pictures += 1
        chosen = labeller.choose(per_view, regions)
        whole = labeller.choose(per_view[:1])
        add(run.system, chosen, objects, truth, w, h)
        add(own, chosen, objects, truth, w, h)
        add(run.whole, whole, objects, truth, w, h)
    return own


def _kind_json(t: Tally, ms: float) -> dict[str, Any]:
    return {
        "precision": t.precision(),
        "recall": t.recall(),
        "ms_per_inference": round(ms, 2),
        "precision_by_size": {s: t.precision(s) for s, _ in SIZES},
        "recall_by_size": {s: t.recall(s) for s, _ in SIZES},
        "labels": Tally._sum(t.correct) + Tally._sum(t.wrong),
        "objects": Tally._sum(t.objects),
    }


def main(video_dir: Path = VIDEO_DIR, step: int = 2, config: Path | None = None) -> int:
    settings = LabelSettings()
    if config is not None:
        import yaml

        doc = yaml.safe_load(config.read_text()) or {}
        section = doc.get("labels", doc) if isinstance(doc, dict) else {}
        settings = LabelSettings.model_validate({k: v for k, v in section.items() if k != "enabled"})
    labeller = Labeller(settings)
    timings: list[float] = []
    labeller.detector.timings = timings
    print(f"model {labeller.model_path}, {settings.threads} thread(s); bars {settings.min_confidence}")
    run = Run()
    t_start = time.monotonic()
    for clip in clips(video_dir):
        truth = CLIPS.get(clip.name)
        if truth is None:
            print(f"  {clip.name}: no statement of what moves in it (CLIPS); skipped")
            continue
        t0 = time.monotonic()
        own = score_clip(clip, truth, labeller, run, step)
        print(f"  {clip.name} ({truth.what}), every {step} object frame(s) [{time.monotonic() - t0:.0f} s]")
        for kind, t in own.items():
            if Tally._sum(t.correct) + Tally._sum(t.wrong) + Tally._sum(t.objects):
                print(f"    {kind:<8} {t.line()}", flush=True)
    ms = 1000 * float(np.median(timings)) if timings else 0.0
    best = 1000 * min(timings, default=0.0)
    print(
        f"all clips, {run.pictures} pictures ({run.views / max(1, run.pictures):.2f} views each) "
        f"[{time.monotonic() - t_start:.0f} s]:"
    )
    for kind, t in run.system.items():
        print(f"  {kind:<8} {t.line()}")
    print("  whole picture only, no motion test:")
    for kind, t in run.whole.items():
        print(f"    {kind:<8} {t.line()}")
    per_picture = 1000 * run.look_s / max(1, run.pictures)
    print(
        f"  {ms:.1f} ms per inference (median of {len(timings)} 416x416 views; fastest {best:.1f} ms), "
        f"{per_picture:.1f} ms per picture"
    )
    result: dict[str, Any] = {kind: _kind_json(run.system.get(kind, Tally()), ms) for kind in KINDS}
    result["whole_picture"] = {
        kind: {"precision": t.precision(), "recall": t.recall()} for kind, t in run.whole.items()
    }
    result["ms_per_inference_best"] = round(best, 2)
    result["ms_per_picture"] = round(per_picture, 2)
    result["pictures"] = run.pictures
    result["step"] = step
    result["threads"] = settings.threads
    print(json.dumps(result))
    return 0
