"""The board's label worker: events labelled from their snapshot frames on the way out, in order,
and, when the board cannot label (no model), every event still leaves, unlabelled, with one log
line that tells the technician what to do (the cloud then labels the snapshots)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from camera_helpers import need_clips
from support import need_model

from edge.collectors.camera.config import CameraLabels
from edge.collectors.camera.events import Emission, EventTracker
from edge.collectors.camera.labelling import LabelWorker
from edge.collectors.camera.motion import Blob, MotionResult


def _pets_frame(n: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(need_clips() / "pets2009_illumination" / "video.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, n)
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def _emissions() -> list[Emission]:
    """start and end of one event whose snapshot shows the PETS walkers (frame 150)."""
    tracker = EventTracker("dr-cam-01")
    frame = _pets_frame(150)
    # Where two of the walkers are in that frame (fractions), as the detector reports blobs.
    blobs = [
        Blob(97 / 768, 427 / 576, 36 / 768, 78 / 576, 0.004),
        Blob(484 / 768, 350 / 576, 24 / 768, 55 / 576, 0.002),
    ]
    out: list[Emission] = []
    for i in range(12):
        out += tracker.feed(MotionResult(True, True, 0.01, blobs, 0.8), frame, 1000.0 + i * 0.2)
    out += tracker.close(1003.0)
    assert [e.event["phase"] for e in out] == ["start", "end"]
    return out


def _run(settings: CameraLabels) -> list[Emission]:
    sent: list[Emission] = []
    worker = LabelWorker(settings, "dr-cam-01", sent.append).start()
    for em in _emissions():
        worker.submit(em)
    worker.stop()
    return sent


def test_events_leave_labelled_in_order() -> None:
    sent = _run(CameraLabels(enabled=True, model=need_model()))
    assert [e.event["phase"] for e in sent] == ["start", "end"]
    assert all(e.frame is None for e in sent), "frames are dropped once labelled"
    for em in sent:
        assert "person" in [x["label"] for x in em.event["labels"]], em.event["labels"]
        assert em.event["snapshot_boxes"]


def test_without_a_model_events_leave_unlabelled_and_the_log_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="edge.camera"):
        sent = _run(CameraLabels(enabled=True, model=tmp_path / "no-model-here"))
    assert [e.event["phase"] for e in sent] == ["start", "end"]
    assert all("labels" not in e.event for e in sent)
    why = [r.getMessage() for r in caplog.records if "cannot label" in r.getMessage()]
    assert len(why) == 1 and "commune-iot models fetch" in why[0], caplog.text
