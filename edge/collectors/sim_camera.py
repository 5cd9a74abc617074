"""Simulated surveillance camera: stream health every interval and motion events.

Motion follows the village day (few events at night, most in the evening) as a Poisson
process, so the cloud's event handling sees realistic bursts and quiet hours.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from edge.collectors.base import Collector, CollectorOptions, Sink
from edge.collectors.snapshot import render
from edge.collectors.village_day import activity, seeded_rng
from wire import Box, Point

SIM_DETECT_FPS = 5.0  # the real camera agent's default detect_fps


class SimCameraOptions(CollectorOptions):
    interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="Seconds between stream-health points."
    )
    events_per_hour: float = Field(
        default=6.0, ge=0, le=100_000, description="Motion events per hour at the evening peak (scale)."
    )
    follow_day: bool = Field(
        default=True, description="Scale the event rate by village activity; false = constant rate."
    )
    width: int = Field(default=1920, ge=16, le=8192, description="Stream width reported.")
    height: int = Field(default=1080, ge=16, le=8192, description="Stream height reported.")
    fps: float = Field(default=15.0, gt=0, le=120, description="Nominal frame rate.")


class SimCamera(Collector):
    Options = SimCameraOptions

    def __init__(self, options: CollectorOptions, *, node: str) -> None:
        super().__init__(options, node=node)
        assert isinstance(options, SimCameraOptions)
        self.opts: SimCameraOptions = options
        self._rng = seeded_rng("sim_camera", self.device)
        self.decode_errors = 0
        self.events = 0
        # Event ids stay unique across agent restarts without any state on disk.
        self._run = secrets.token_hex(3)

    def reconfigure(self, options: CollectorOptions) -> bool:
        if not isinstance(options, SimCameraOptions) or options.device != self.options.device:
            return False
        self.options = self.opts = options
        return True

    async def snapshot(self, device: str) -> bytes:
        return render(f"{self.device}-now-{self._run}", [])

    def stream_point(self, now: datetime) -> Point:
        rng = self._rng
        if rng.random() < 0.02:
            self.decode_errors += 1
        fps = self.opts.fps
        return Point(
            measurement="camera",
            device=self.device,
            fields={
                "up": True,
                "fps": round(rng.gauss(fps, fps * 0.02), 2),
                "nominal_fps": fps,
                "width": self.opts.width,
                "height": self.opts.height,
                "frozen": False,
                "decode_errors": self.decode_errors,
                "last_frame_age_s": round(rng.uniform(0.5, 1.5) / fps, 3),
            },
            ts=now,
        )

    def event_rate_per_s(self, now: datetime) -> float:
        scale = max(activity(now), 0.05) if self.opts.follow_day else 1.0
        return self.opts.events_per_hour * scale / 3600.0

    def motion_event(self, now: datetime) -> tuple[dict[str, Any], bytes]:
        rng = self._rng
        self.events += 1
        event_id = f"{self.device}-{self._run}-{self.events}"
        boxes = [
            Box(x=round(x, 3), y=round(y, 3), w=round(w, 3), h=round(h, 3))
            for x, y, w, h in (
                (rng.uniform(0, 0.7), rng.uniform(0, 0.7), rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3))
                for _ in range(rng.randint(1, 3))
            )
        ]
        area = min(100.0, sum(b.w * b.h for b in boxes) * 100)
        duration = rng.uniform(2.0, 25.0)
        event = {
            "event_id": event_id,
            "device": self.device,
            "phase": "end",
            "start": now - timedelta(seconds=duration),
            "end": now,
            "peak_area_pct": round(area, 2),
            "boxes": boxes,
            "score": round(rng.uniform(0.45, 0.99), 3),
            "frames": round(duration * SIM_DETECT_FPS),  # motion all along, at the agent's detect rate
        }
        return event, render(event_id, boxes)

    async def run(self, sink: Sink) -> None:
        next_point = time.monotonic()
        next_event = time.monotonic() + self._gap(datetime.now(UTC))
        while True:
            mono = time.monotonic()
            now = datetime.now(UTC)
            if mono >= next_point:
                sink.emit_metrics([self.stream_point(now)])
                next_point += self.opts.interval_s
                if next_point < mono:  # fell behind (suspended board): do not burst
                    next_point = mono + self.opts.interval_s
            if mono >= next_event:
                event, jpeg = self.motion_event(now)
                sink.emit_event(event, jpeg)
                next_event = mono + self._gap(now)
            await asyncio.sleep(max(0.0, min(next_point, next_event) - time.monotonic()))

    def _gap(self, now: datetime) -> float:
        rate = self.event_rate_per_s(now)
        return self._rng.expovariate(rate) if rate > 0 else float("inf")
