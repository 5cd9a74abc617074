"""``commune-iot bench motion``: the camera motion detector scored frame by frame on real clips.

Every clip of ``../shared/testdata/video`` (beside the repository) is decoded from its first
frame (the detector learns its background there) and scored on the frames its
``temporalROI.txt`` lists, as that folder's README defines: a frame is *motion* when
ground-truth foreground (mask value 255, inside ``ROI.bmp`` when the clip has one) covers more
than 0.1 % of the frame; the detector says motion when its ``motion`` output is true. Masks
smaller than the frame are scaled up nearest-neighbour, which keeps their share, so the share is
taken at the mask's own size. With ``--baselines`` the Frigate-style and MOG2 detectors of
``baselines.py`` are scored the same way, a per-clip table sets ours against them, and the JSON
line says whether ours has an F1 at least each baseline's on every clip. Speed is the detector
alone on the clips' frames resized to 1280x720 (the frames are resized beforehand, decoding is
not timed). The ``camera_motion`` object scores the detector on the same clips seen by a moving
camera (see ``camera_motion.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy.typing as npt

from edge.collectors.camera.config import MotionSettings
from edge.collectors.camera.motion import MotionDetector

REPO = Path(__file__).resolve().parents[2]
VIDEO_DIR = REPO.parent / "shared" / "testdata" / "video"
GT_SHARE = 0.001  # a frame is motion when ground truth covers more than 0.1 % of it


@dataclass(frozen=True)
class Clip:
    name: str
    video: Path
    first: int  # 1-based, inclusive: frames with ground truth
    last: int
    truth: dict[int, bool]  # 0-based decoded frame index -> motion
    fps: float


@dataclass(frozen=True)
class Score:
    name: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alarm_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    def __add__(self, other: Score) -> Score:
        return Score("pooled", self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def load_clip(folder: Path) -> Clip:
    first, last = (int(v) for v in (folder / "temporalROI.txt").read_text().split()[:2])
    roi_path = folder / "ROI.bmp"
    roi = cv2.imread(str(roi_path), cv2.IMREAD_GRAYSCALE) if roi_path.exists() else None
    truth: dict[int, bool] = {}
    for n in range(first, last + 1):
        mask = cv2.imread(str(folder / "groundtruth" / f"gt{n:06d}.png"), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(folder / "groundtruth" / f"gt{n:06d}.png")
        fg = mask == 255
        if roi is not None:
            fg &= roi > 0
        truth[n - 1] = float(fg.mean()) > GT_SHARE
    cap = cv2.VideoCapture(str(folder / "video.mp4"))
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
    cap.release()
    return Clip(folder.name, folder / "video.mp4", first, last, truth, fps)


def clips(video_dir: Path = VIDEO_DIR) -> list[Clip]:
    folders = sorted(p for p in video_dir.iterdir() if (p / "temporalROI.txt").exists())
    if not folders:
        raise FileNotFoundError(f"no clips with temporalROI.txt under {video_dir}")
    return [load_clip(p) for p in folders]


def frames(video: Path, limit: int | None = None) -> Iterator[npt.NDArray[Any]]:
    cap = cv2.VideoCapture(str(video))
    try:
        n = 0
        while limit is None or n < limit:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
            n += 1
    finally:
        cap.release()


class Detector(Protocol):
    def detect(self, frame: npt.NDArray[Any]) -> Any: ...


def score_clip(
    clip: Clip,
    settings: MotionSettings | None = None,
    *,
    stride: int = 1,
    detector: Detector | None = None,
) -> Score:
    """Run the detector over the whole clip; score the ground-truth frames (every
    ``stride``-th one when > 1: a cheaper check for tests, same detector run)."""
    det: Detector = detector or MotionDetector(settings, fps=clip.fps)
    tp = fp = fn = tn = 0
    for i, frame in enumerate(frames(clip.video, clip.last)):
        said = det.detect(frame).motion
        truth = clip.truth.get(i)
        if truth is None or (i - (clip.first - 1)) % stride:
            continue
        if truth and said:
            tp += 1
        elif truth:
            fn += 1
        elif said:
            fp += 1
        else:
            tn += 1
    return Score(clip.name, tp, fp, fn, tn)


@dataclass(frozen=True)
class Timing:
    """Per-frame cost: wall clock with OpenCV's default threads (what the agent uses: it never
    calls ``cv2.setNumThreads``), and CPU time of the calling thread with OpenCV on one thread.
    The CPU figure is what a shared machine inflates least; it is taken single-threaded because
    OpenCV's idle workers spin, and process time would count their spinning as work."""

    wall_ms: float
    cpu_ms: float
    threads: int  # cv2.getNumThreads() for the wall figure


def time_frames(
    batches: Sequence[tuple[float, Sequence[Any]]], settings: MotionSettings | None, warm: int
) -> Timing:
    """Time the detector over prepared batches of frames (fps, frames): first with OpenCV's
    default threads (wall), then again with one thread (thread CPU time)."""
    threads = cv2.getNumThreads()
    wall_s = cpu_s = 0.0
    count = 0
    for single in (False, True):
        if single:
            cv2.setNumThreads(1)
        try:
            for fps, batch in batches:
                det = MotionDetector(settings, fps=fps)
                for f in batch[:warm]:  # warm-up: first frames allocate
                    det.detect(f)
                t0, c0 = time.perf_counter(), time.thread_time()
                for f in batch[warm:]:
                    det.detect(f)
                if single:
                    cpu_s += time.thread_time() - c0
                else:
                    wall_s += time.perf_counter() - t0
                    count += len(batch) - warm
        finally:
            cv2.setNumThreads(threads)
    n = max(1, count)
    return Timing(1000.0 * wall_s / n, 1000.0 * cpu_s / n, threads)


def time_720p(
    clip_list: Sequence[Clip], settings: MotionSettings | None = None, per_clip: int = 150
) -> Timing:
    """Milliseconds per 1280x720 frame for the detector alone (frames prepared beforehand)."""
    batches = [
        (
            clip.fps,
            [
                cv2.resize(f, (1280, 720), interpolation=cv2.INTER_LINEAR)
                for f in frames(clip.video, per_clip)
            ],
        )
        for clip in clip_list
    ]
    return time_frames(batches, settings, warm=10)


def _loadavg() -> float:
    """The 1-minute load average (timings on a shared machine mean little without it)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def _row(s: Score) -> str:
    return (
        f"{s.name:<24} P {s.precision:.3f}  R {s.recall:.3f}  F1 {s.f1:.3f}  "
        f"false alarms {s.false_alarm_rate:.3f} ({s.fp}/{s.fp + s.tn} still frames)"
    )


def baselines(clip_list: Sequence[Clip]) -> dict[str, list[Score]]:
    """Score the reference detectors (printing their rows); per label, one score per clip."""
    from commune_iot.bench.baselines import FrigateStyle, Mog2

    out: dict[str, list[Score]] = {}
    for label, make in (("Frigate-style", FrigateStyle), ("MOG2", Mog2)):
        print(f"baseline {label} (same frames, same rule):", flush=True)
        scores = [score_clip(c, detector=make()) for c in clip_list]
        pooled = scores[0]
        for s in scores[1:]:
            pooled = pooled + s
        for s in [*scores, pooled]:
            print(f"  {_row(s)}", flush=True)
        out[label] = scores
    return out


def beats(ours: Score, others: Sequence[Score]) -> bool:
    """Our F1 on a clip is at least every other detector's (exact scores, not the rounded ones)."""
    return all(ours.f1 >= o.f1 - 1e-12 for o in others)


def comparison(ours: Sequence[Score], base: dict[str, list[Score]]) -> str:
    """Per clip, our precision, recall, F1 and false-alarm rate against each baseline's."""
    lines = [
        "per clip, this detector against the baselines:",
        f"  {'clip':<24} {'detector':<14} {'P':>6} {'R':>6} {'F1':>6} {'false alarms':>13}  F1 >= all",
    ]
    for i, s in enumerate(ours):
        others = [(label, scores[i]) for label, scores in base.items()]
        for j, (label, sc) in enumerate([("ours", s), *others]):
            verdict = ("yes" if beats(s, [o for _, o in others]) else "NO") if j == 0 else ""
            lines.append(
                f"  {s.name if j == 0 else '':<24} {label:<14} {sc.precision:6.3f} {sc.recall:6.3f} "
                f"{sc.f1:6.3f} {sc.false_alarm_rate:13.3f}  {verdict}".rstrip()
            )
    return "\n".join(lines)


def main(
    video_dir: Path = VIDEO_DIR,
    config: Path | None = None,
    with_baselines: bool = False,
    with_camera_motion: bool = True,
) -> int:
    settings = MotionSettings()
    if config is not None:
        from edge.collectors.camera.config import load_motion_settings

        settings = load_motion_settings(config)
    clip_list = clips(video_dir)
    print(f"scoring {len(clip_list)} clips from {video_dir} (motion = ground truth > 0.1 % of frame)")
    scores: list[Score] = []
    for clip in clip_list:
        t0 = time.monotonic()
        s = score_clip(clip, settings)
        scores.append(s)
        print(f"  {_row(s)}   [{time.monotonic() - t0:.1f} s]", flush=True)
    pooled = scores[0]
    for s in scores[1:]:
        pooled = pooled + s
    print(f"  {_row(pooled)}")
    base: dict[str, list[Score]] = {}
    if with_baselines:
        base = baselines(clip_list)
        print(comparison(scores, base), flush=True)
    print("timing the detector on frames resized to 1280x720 ...", flush=True)
    timing = time_720p(clip_list, settings)
    ms = timing.wall_ms
    print(
        f"  {ms:.3f} ms per 1280x720 frame ({1000 / ms:.0f} frames/s, OpenCV threads {timing.threads}); "
        f"CPU {timing.cpu_ms:.3f} ms on one thread (load average {_loadavg()})"
    )
    result: dict[str, Any] = {
        "pooled_f1": round(pooled.f1, 4),
        "pooled_false_alarm_rate": round(pooled.false_alarm_rate, 4),
        "min_clip_f1": round(min(s.f1 for s in scores), 4),
        "ms_per_frame_720p": round(ms, 3),
        "cpu_ms_per_frame_720p": round(timing.cpu_ms, 3),
        "opencv_threads": timing.threads,
        "load_average_1min": _loadavg(),
        "pooled_precision": round(pooled.precision, 4),
        "pooled_recall": round(pooled.recall, 4),
        "clips": {
            s.name: {"f1": round(s.f1, 4), "false_alarm_rate": round(s.false_alarm_rate, 4)} for s in scores
        },
    }
    if base:
        # The bar: on every clip, an F1 at least each baseline's.
        result["baselines"] = {
            label: {sc.name: round(sc.f1, 4) for sc in scores_} for label, scores_ in base.items()
        }
        result["beats_baselines_every_clip"] = all(
            beats(s, [b[i] for b in base.values()]) for i, s in enumerate(scores)
        )
    if with_camera_motion:
        from commune_iot.bench.camera_motion import evaluate

        print("a moving camera: still scenes and the clips through known pans, zooms, tilts, shake ...")
        result["camera_motion"] = evaluate(clip_list, settings)
    print(json.dumps(result))
    return 0
