"""``commune-iot motion scan``: the camera agent's detector and event logic on a file or URL,
offline, every frame, for tuning a camera and for measuring."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import cv2

from edge.collectors.camera.capture import redact
from edge.collectors.camera.config import ScanConfig, load_scan_config
from edge.collectors.camera.events import EventTracker
from edge.collectors.camera.masks import keep_mask, polygon_mask, zones_touched
from edge.collectors.camera.motion import MotionDetector


def _frames(source: str) -> tuple[Iterator[Any], float]:
    """Frames of a file, URL or image-sequence pattern (``img%04d.jpg``), and the fps to assume."""
    cap = cv2.VideoCapture(source, cv2.CAP_ANY)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {redact(source)!r}")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def gen() -> Iterator[Any]:
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()

    return gen(), fps if 0 < fps <= 120 else 25.0


def scan(
    source: str,
    cfg: ScanConfig | None = None,
    *,
    per_frame: bool = False,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    fps: float | None = None,
) -> int:
    cfg = cfg or ScanConfig()
    frames, declared = _frames(source)
    rate = fps or declared
    s = cfg.motion
    keep = keep_mask(
        cfg.masks, s.detect_width, s.detect_width, [z.polygon for z in cfg.zones] if cfg.only_in_zones else ()
    )
    det = MotionDetector(s, fps=rate, ignore_mask=keep)
    tracker = EventTracker("scan", cfg.events)
    zone_masks: dict[str, Any] = {}
    n = 0
    for n, frame in enumerate(frames):
        r = det.detect(frame)
        t = n / rate
        if per_frame:
            if as_json:
                out.write(json.dumps({"frame": n, "motion": r.motion, "area": round(r.area, 6)}) + "\n")
            else:
                out.write(f"{n:6d} {t:9.2f}s {'MOTION' if r.motion else '-':6} area {r.area * 100:6.3f} %\n")
            continue
        zones: list[str] = []
        if r.motion and cfg.zones and r.mask is not None:
            if not zone_masks:
                h, w = r.mask.shape
                zone_masks = {z.name: polygon_mask([z.polygon], w, h) for z in cfg.zones}
            zones = zones_touched(r.mask, zone_masks)
        for em in tracker.feed(r, frame if r.motion else None, t, zones):
            _event(em.event, em.jpeg, as_json, out)
    if not per_frame:
        for em in tracker.close(n / rate):
            _event(em.event, em.jpeg, as_json, out)
    out.flush()
    return 0


def _event(ev: dict[str, Any], jpeg: bytes | None, as_json: bool, out: TextIO) -> None:
    """Times are seconds from the start of the source (shown as UTC from the epoch in JSON)."""
    start = ev["start"].timestamp()
    end = ev["end"].timestamp() if "end" in ev else None
    if as_json:
        doc = {
            "event_id": ev["event_id"],
            "phase": ev["phase"],
            "start_s": round(start, 2),
            "end_s": None if end is None else round(end, 2),
            "peak_area_pct": ev["peak_area_pct"],
            "boxes": ev["boxes"],
            "zones": ev["zones"],
            "score": ev["score"],
            "frames": ev["frames"],
            "snapshot_bytes": len(jpeg) if jpeg else None,
        }
        out.write(json.dumps(doc) + "\n")
    else:
        span = f"{start:8.2f}s" + (f" .. {end:8.2f}s" if end is not None else "")
        out.write(
            f"{ev['phase']:<6} {ev['event_id']}  {span}  peak {ev['peak_area_pct']:.2f} %  "
            f"frames {ev['frames']}  boxes {len(ev['boxes'])}  zones {','.join(ev['zones']) or '-'}\n"
        )


def main(source: str, config: Path | None, per_frame: bool, as_json: bool) -> int:
    cfg = load_scan_config(config) if config is not None else ScanConfig()
    return scan(source, cfg, per_frame=per_frame, as_json=as_json)
