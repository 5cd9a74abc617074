"""Video tampering (issue 19 part 3) on the shared clips made to fail (``bench/tampering.py``):
each failure is raised within 10 s with its kind and cleared once it ends, and the untouched
clips raise nothing. Frames go in at 5 fps, the rate the board detects at."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from camera_helpers import need_clips

from commune_iot.bench.motion import Clip, clips, frames
from commune_iot.bench.tampering import KINDS, failing
from edge.collectors.camera.tampering import TamperDetector

RATE = 5.0  # frames per second fed, as on a board


def at_rate(clip: Clip) -> Iterator[tuple[float, np.ndarray]]:
    step = max(1, round(clip.fps / RATE))
    for i, frame in enumerate(frames(clip.video)):
        if i % step == 0:
            yield i / clip.fps, frame


@pytest.fixture(scope="module")
def all_clips() -> list[Clip]:
    return clips(need_clips())


def test_untouched_clips_raise_no_tampering(all_clips: list[Clip]) -> None:
    for clip in all_clips:
        det = TamperDetector()
        for t, frame in at_rate(clip):
            assert det.feed(frame, t).kind == "", (clip.name, t, det.state)


@pytest.mark.parametrize("kind", KINDS)
def test_each_failure_is_raised_within_10_s_and_cleared_when_it_ends(
    all_clips: list[Clip], kind: str
) -> None:
    for clip in all_clips:
        start, length = 12.0, 12.0  # 12 s of the scene learnt first; 12 s after it, enough seen
        det = TamperDetector()
        raised = cleared = None
        source = (f for _, f in at_rate(clip))
        step = max(1, round(clip.fps / RATE))
        for n, frame in enumerate(failing(source, clip.fps / step, kind, start, length)):
            t = n * step / clip.fps
            state = det.feed(frame, t)
            if state.kind and raised is None:
                assert state.kind == kind, (clip.name, t, state)
                raised = t - start
            if raised is not None and not state.kind and cleared is None:
                cleared = t - (start + length)
            if t > start + length + 12.0:
                break
        assert raised is not None and 0 <= raised <= 10.0, (clip.name, kind, raised)
        assert cleared is not None and 0 <= cleared <= 10.0, (clip.name, kind, cleared)
