"""Reading a camera's stream: open/read timeouts, reconnects, stream health, frozen pictures.

One thread per camera blocks in OpenCV (FFmpeg) so the agent's event loop never does. It
*grabs* every frame (so measured fps is the stream's real rate and the decoder never falls
behind live) but converts to BGR (``retrieve``) only the frames the detector will look at,
at ``detect_fps``; only the newest such frame is kept, so a slow detector skips frames instead
of piling them up in memory. Why each failure is handled the way it is: ``shared/notes/rtsp.md``
(a killed server makes ``read`` fail at once; a silent one blocks until the read timeout).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import numpy.typing as npt

from edge.backoff import backoff_delay

log = logging.getLogger("edge.camera")

Frame = npt.NDArray[Any]  # BGR uint8 from OpenCV


def redact(url: str) -> str:
    """The URL without its password (and user): safe for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class CaptureSettings:
    url: str
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    detect_fps: float = 5.0
    transport: str = "tcp"
    frozen_after_s: float = 10.0
    frozen_tolerance: float = 0.5  # mean grey-level difference below which two frames are "the same"
    expected_fps: float | None = None
    realtime_files: bool = True  # pace a local file at its own fps (tests, demos)
    loop_files: bool = False


@dataclass(frozen=True)
class Health:
    """One reading of the stream's health (the ``camera`` point's fields)."""

    up: bool
    fps: float
    nominal_fps: float
    width: int
    height: int
    frozen: bool
    decode_errors: int
    last_frame_age_s: float
    reconnects: int
    detect_fps: float


class StreamReader:
    """Owns the ``VideoCapture`` and its thread. ``latest()`` hands the newest detect frame."""

    def __init__(self, settings: CaptureSettings, *, device: str) -> None:
        self.s = settings
        self.device = device
        self.safe_url = redact(settings.url)
        self._lock = threading.Lock()
        self._frame_ready = threading.Condition(self._lock)
        self._frame: tuple[Frame, float] | None = None  # newest detect frame, wall time
        self._last: Frame | None = None  # the same, kept for a snapshot on demand
        self._attempts = 0  # failed opens and lost streams since the last frame
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        # health state (guarded by _lock)
        self._up = False
        self._grabs: deque[float] = deque(maxlen=512)  # monotonic times of recent frames
        self._detects: deque[float] = deque(maxlen=128)
        self._last_frame = time.monotonic()
        self._size = (0, 0)
        self._declared_fps = 0.0
        self._decode_errors = 0
        self._reconnects = 0
        self._same_since: float | None = None
        self._frozen = False
        self._prev_sample: npt.NDArray[np.int16] | None = None
        self.finished = False  # a non-looping file reached its end

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> StreamReader:
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.device}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        with self._frame_ready:
            self._frame_ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def latest(self, timeout: float) -> tuple[Frame, float] | None:
        """The newest frame for the detector (each frame once), or None after ``timeout``."""
        with self._frame_ready:
            if self._frame is None:
                self._frame_ready.wait(timeout)
            got, self._frame = self._frame, None
            return got

    def last_frame(self) -> Frame | None:
        """The newest frame seen (not consumed: the detector still gets it)."""
        with self._lock:
            return self._last

    def failing(self) -> bool | None:
        """True when the stream gives no frames after at least one full attempt to open or
        reopen it, False while it does, None while the first attempt is still under way."""
        with self._lock:
            if self._up:
                return False
            if self._attempts == 0:
                return None
            return True

    # -- health ----------------------------------------------------------------------------

    def state(self) -> tuple[bool, bool]:
        """(up, frozen) as :meth:`health` reports them, cheap enough to ask ten times a second."""
        with self._lock:
            up = self._up and time.monotonic() - self._last_frame <= self.s.read_timeout_s
            return up, self._frozen and up

    def health(self, window_s: float = 10.0) -> Health:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._grabs if t >= now - window_s]
            fps = 0.0
            if len(recent) >= 2:
                span = max(now - recent[0], recent[-1] - recent[0], 1e-3)
                fps = (len(recent) - 1) / span
            detects = [t for t in self._detects if t >= now - window_s]
            dfps = (len(detects) - 1) / max(now - detects[0], 1e-3) if len(detects) >= 2 else 0.0
            nominal = self.s.expected_fps or self._declared_fps
            # A silent server keeps grab() blocked until FFmpeg's interrupt (up to twice the
            # read timeout, see rtsp.md): report it down as soon as the timeout has passed.
            up = self._up and now - self._last_frame <= self.s.read_timeout_s
            return Health(
                up=up,
                fps=round(fps, 2),
                nominal_fps=round(nominal, 2),
                width=self._size[0],
                height=self._size[1],
                frozen=self._frozen and up,
                decode_errors=self._decode_errors,
                last_frame_age_s=round(now - self._last_frame, 3),
                reconnects=self._reconnects,
                detect_fps=round(dfps, 2),
            )

    # -- the thread ------------------------------------------------------------------------

    def _is_file(self) -> bool:
        return "://" not in self.s.url and Path(self.s.url).exists()

    def _open(self) -> cv2.VideoCapture:
        if self.s.url.startswith("rtsp"):
            # FFmpeg reads its options from the environment at open time.
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{self.s.transport}"
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.s.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.s.read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(self.s.url, cv2.CAP_FFMPEG, params)

    def _run(self) -> None:
        attempt = 0
        first = True
        while not self._stop.is_set():
            cap = self._open()
            if not cap.isOpened():
                cap.release()
                with self._lock:
                    self._attempts += 1
                delay = backoff_delay(
                    attempt, min_s=self.s.reconnect_min_s, max_s=self.s.reconnect_max_s, rng=self._rng
                )
                log.warning(
                    "camera %s: cannot open stream %s: retrying in %.1f s (check the camera's power, "
                    "network and URL)",
                    self.device,
                    self.safe_url,
                    delay,
                    extra={"device": self.device},
                )
                attempt += 1
                self._stop.wait(delay)
                continue
            if not first and not self._is_file():
                with self._lock:
                    self._reconnects += 1
            first = False
            frames = self._read(cap)
            cap.release()
            with self._lock:
                self._attempts += 1
                self._up = False
                self._frozen = False
                self._same_since = None
            if self._stop.is_set():
                break
            if self._is_file() and frames > 0:
                if not self.s.loop_files:
                    log.info("camera %s: end of file %s", self.device, self.safe_url)
                    self.finished = True
                    return
                log.debug("camera %s: end of file %s: playing it again", self.device, self.safe_url)
                continue
            attempt = 0 if frames > 0 else attempt + 1
            delay = backoff_delay(
                attempt, min_s=self.s.reconnect_min_s, max_s=self.s.reconnect_max_s, rng=self._rng
            )
            age = time.monotonic() - self._last_frame
            log.warning(
                "camera %s: stream %s gave no frame for %.0f s: reconnecting in %.1f s",
                self.device,
                self.safe_url,
                age,
                delay,
                extra={"device": self.device},
            )
            self._stop.wait(delay)

    def _read(self, cap: cv2.VideoCapture) -> int:
        """Grab until the stream fails; returns how many frames arrived."""
        declared = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        with self._lock:
            self._declared_fps = declared if 0 < declared <= 120 else 0.0
        pace = 1.0 / declared if self.s.realtime_files and self._is_file() and 0 < declared <= 120 else 0.0
        period = 1.0 / self.s.detect_fps
        next_detect = 0.0
        count = 0
        started = time.monotonic()
        log.info("camera %s: stream %s open", self.device, self.safe_url, extra={"device": self.device})
        while not self._stop.is_set():
            asked = time.monotonic()
            if not cap.grab():  # server gone, read timeout, or end of file
                return count
            now = time.monotonic()
            if now - asked >= 0.9 * self.s.read_timeout_s and not self._is_file():
                # FFmpeg's interrupt fired: OpenCV may still hand back a stale frame after it
                # (measured: one every read timeout while the server was silent). Not alive.
                return count
            count += 1
            with self._lock:
                self._up = True
                self._attempts = 0
                self._grabs.append(now)
                self._last_frame = now
            if now >= next_detect:
                next_detect = max(next_detect + period, now - period)
                ok, frame = cap.retrieve()
                if not ok or frame is None or frame.size == 0:
                    with self._lock:
                        self._decode_errors += 1
                else:
                    self._offer(frame, now)
            if pace:
                target = started + count * pace
                delay = target - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        return count

    def _offer(self, frame: Frame, now: float) -> None:
        h, w = frame.shape[:2]
        sample = self._sample(frame)
        with self._frame_ready:
            self._size = (w, h)
            self._detects.append(now)
            prev = self._prev_sample
            if prev is not None and prev.shape == sample.shape:
                same = float(np.mean(np.abs(sample - prev))) < self.s.frozen_tolerance
                if not same:
                    self._same_since = None
                    if self._frozen:
                        log.info("camera %s: picture moves again", self.device)
                    self._frozen = False
                elif self._same_since is None:
                    self._same_since = now
                elif not self._frozen and now - self._same_since >= self.s.frozen_after_s:
                    self._frozen = True
                    log.warning(
                        "camera %s: frames arrive but the picture has not changed for %.0f s: the camera "
                        "is frozen (power-cycle it)",
                        self.device,
                        now - self._same_since,
                        extra={"device": self.device},
                    )
            self._prev_sample = sample
            self._frame = (frame, time.time())
            self._last = frame
            self._frame_ready.notify_all()

    @staticmethod
    def _sample(frame: Frame) -> npt.NDArray[np.int16]:
        """Every 8th pixel of the green channel, unaveraged: sensor noise survives, so a live
        still scene never looks frozen, while a stuck encoder repeats the picture exactly."""
        g: Any = frame[::8, ::8, 1] if frame.ndim == 3 else frame[::8, ::8]
        out: npt.NDArray[np.int16] = g.astype(np.int16)
        return out
