"""High-resolution event snapshots while the detector decodes a low-resolution substream.

Decoding a 1080p main stream all the time to find motion costs a Pi-class board most of a core;
the camera's substream (640x360) costs a fraction. Events then need a better picture than the
detected frame, taken when the event's best frame was seen, from:

* ``http``: the camera's JPEG snapshot URL (ONVIF GetSnapshotUri, Hikvision ISAPI, Dahua CGI),
  basic or digest auth: one request per new best frame, nothing decoded in between. Recommended.
* ``main``: the main stream itself, opened on the first request of an event and kept open
  (grabbing, so the picture stays live) only until ``MAIN_IDLE_S`` pass without a request:
  between events it costs nothing, during one it costs the main stream's decoding.

A :class:`HiResSource` thread does the fetching (requests coalesce: at most one in flight, the
newest waiting). A :class:`SnapshotStage` thread passes the event messages through, in order,
replacing each new snapshot by the high-resolution picture; if that fails or takes longer than
twice ``snapshot_timeout_s`` the detected frame is sent instead and the event says why
(``snapshot_fallback``). Boxes are fractions of the frame, so the substream's boxes and zones
hold at the snapshot's resolution as long as both streams show the same view (they do on
Hikvision, Dahua and ONVIF cameras: the substream is the sensor scaled, not cropped).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from edge.collectors.camera.capture import Frame, redact
from edge.collectors.camera.config import CameraOptions
from edge.collectors.camera.events import Emission, encode_jpeg
from wire.messages import MAX_SNAPSHOT_BYTES

log = logging.getLogger("edge.camera")

#: The main stream is closed after this long without a snapshot request (the event is over).
MAIN_IDLE_S = 15.0
#: Results kept for waiting emissions (each request is served by the first fetch after it).
KEEP_RESULTS = 16


@dataclass(frozen=True)
class Picture:
    """One fetch: the camera's JPEG (kept as bytes: decoded only if an event message uses it)
    or a decoded frame (main stream), or why there is none."""

    frame: Frame | None
    reason: str = ""
    jpeg: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.frame is not None or self.jpeg is not None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header without decoding it, or None if not a JPEG."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF:
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (w, h) if w and h else None
        i += 2 + length
    return None


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """The URL without user:password, and them (urllib does not read credentials in URLs)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, unquote(parts.username), unquote(parts.password) if parts.password is not None else None


def http_opener(url: str, username: str | None, password: str | None) -> urllib.request.OpenerDirector:
    """An opener answering the camera's basic or digest challenge with the camera account."""
    handlers: list[urllib.request.BaseHandler] = []
    if username is not None:
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, url, username, password or "")
        handlers += [urllib.request.HTTPDigestAuthHandler(mgr), urllib.request.HTTPBasicAuthHandler(mgr)]
    return urllib.request.build_opener(*handlers)


class HiResSource:
    """Fetches high-resolution pictures on request, on its own thread."""

    def __init__(self, opts: CameraOptions, device: str) -> None:
        self.opts = opts
        self.device = device
        self.kind = opts.snapshot_source
        self.timeout_s = opts.snapshot_timeout_s
        if self.kind == "http":
            assert opts.snapshot_url is not None
            bare, user, pw = _split_credentials(opts.snapshot_url)
            self._http_url = bare
            self._opener = http_opener(bare, opts.username or user, opts.secret() or pw)
            self.safe_url = redact(opts.snapshot_url)
        else:
            self._main_url = opts.stream_url()
            self.safe_url = redact(self._main_url)
        self._cond = threading.Condition()
        self._wanted: float | None = None
        self._last_want = 0.0
        self._results: list[tuple[float, Picture]] = []  # (newest request served, picture)
        self._cap: cv2.VideoCapture | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hires-{device}", daemon=True)
        self.fetches = 0
        self.failures = 0

    def start(self) -> HiResSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(self.timeout_s * 2 + 5)

    def want(self, ts: float) -> None:
        """A new best frame was detected at ``ts``: take a picture now (never blocks)."""
        with self._cond:
            self._wanted = ts if self._wanted is None else max(self._wanted, ts)
            self._last_want = time.monotonic()
            self._cond.notify_all()

    def result(self, ts: float, timeout: float) -> Picture:
        """The first picture taken after ``ts`` was wanted, waiting at most ``timeout``."""

        def served() -> Picture | None:
            for served_ts, pic in self._results:
                if served_ts >= ts:
                    return pic
            return None

        with self._cond:
            self._cond.wait_for(lambda: served() is not None or self._stop.is_set(), timeout)
            pic = served()
        return pic or Picture(None, f"no picture within {timeout:.1f} s")

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._cond:
                    if self._wanted is None and self._cap is None:
                        self._cond.wait(0.5)
                    ts, self._wanted = self._wanted, None
                    idle = time.monotonic() - self._last_want
                if ts is None:
                    if self._cap is not None:  # keep the main stream live while an event lasts
                        if idle > MAIN_IDLE_S:
                            self._close("idle")
                        elif not self._cap.grab():
                            self._close("stream ended")
                    continue
                started = time.monotonic()
                pic = self._fetch()
                self.fetches += 1
                if not pic.ok:
                    self.failures += 1
                log.debug(
                    "camera %s: %s snapshot in %.2f s%s",
                    self.device,
                    self.kind,
                    time.monotonic() - started,
                    "" if pic.ok else f" failed: {pic.reason}",
                )
                with self._cond:
                    self._results.append((ts, pic))
                    del self._results[:-KEEP_RESULTS]
                    self._cond.notify_all()
        finally:
            self._close("stopping")

    def _fetch(self) -> Picture:
        try:
            return self._fetch_http() if self.kind == "http" else self._fetch_main()
        except Exception as exc:  # any failure falls back to the detected frame
            return Picture(None, f"{type(exc).__name__}: {exc}"[:160])

    def _fetch_http(self) -> Picture:
        try:
            with self._opener.open(self._http_url, timeout=self.timeout_s) as resp:
                body = resp.read(8 * 1024 * 1024)
        except urllib.error.HTTPError as exc:
            hint = " (check username/password_file)" if exc.code in (401, 403) else ""
            return Picture(None, f"HTTP {exc.code} {exc.reason}{hint}")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Picture(None, f"{type(exc).__name__}: {reason}"[:160])
        if jpeg_size(body) is None:
            return Picture(None, f"not a JPEG picture ({len(body)} bytes)")
        return Picture(None, jpeg=body)

    def _fetch_main(self) -> Picture:
        if self._cap is None:
            if self._main_url.startswith("rtsp"):
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{self.opts.transport}"
            ms = int(self.timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            cap = cv2.VideoCapture(self._main_url, cv2.CAP_FFMPEG, params)
            if not cap.isOpened():
                cap.release()
                return Picture(None, "cannot open the main stream")
            self._cap = cap
            log.info("camera %s: main stream %s open for snapshots", self.device, self.safe_url)
        ok, frame = self._cap.read()
        if not ok or frame is None or frame.size == 0:
            self._close("read failed")
            return Picture(None, "the main stream gave no frame")
        return Picture(frame)

    def _close(self, why: str) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
            log.info("camera %s: main stream closed (%s)", self.device, why)


class SnapshotStage:
    """Event messages pass through here in order; new snapshots become high-resolution ones."""

    def __init__(self, opts: CameraOptions, device: str, forward: Callable[[Emission], None]) -> None:
        self.opts = opts
        self.device = device
        self.forward = forward
        self.source = HiResSource(opts, device)
        self._in: queue.Queue[Emission | None] = queue.Queue()
        self._sent: dict[str, dict[str, Any]] = {}  # event_id -> snapshot fields repeated later
        self._thread = threading.Thread(target=self._run, name=f"snapshots-{device}", daemon=True)
        #: Longest an event message waits here: one fetch in flight plus its own.
        self.bound_s = 2 * opts.snapshot_timeout_s + 0.5

    def start(self) -> SnapshotStage:
        self.source.start()
        self._thread.start()
        return self

    def want(self, ts: float) -> None:
        self.source.want(ts)

    def submit(self, em: Emission) -> None:
        self._in.put(em)

    def stop(self) -> None:
        """Pass on what is queued (each within the bound), then stop."""
        self._in.put(None)
        self._thread.join(self.bound_s * 4 + 5)
        self.source.stop()

    def _run(self) -> None:
        while True:
            em = self._in.get()
            if em is None:
                return
            try:
                self._process(em)
            except Exception:  # the event must go out whatever happened to its picture
                log.exception("camera %s: high-resolution snapshot failed", self.device)
            self.forward(em)

    def _process(self, em: Emission) -> None:
        doc = em.event
        eid = str(doc["event_id"])
        if em.jpeg is not None and em.best_ts is not None:
            pic = self.source.result(em.best_ts, self.bound_s)
            size: tuple[int, int] | None = None
            reason = pic.reason
            if pic.ok:
                try:
                    size = self._use(em, pic)
                except Exception as exc:  # a corrupt picture: the detected frame will do
                    reason = f"unusable picture: {type(exc).__name__}: {exc}"[:200]
            fields: dict[str, Any]
            if size is not None:
                fields = {"snapshot_source": self.opts.snapshot_source}
            else:
                fields = {
                    "snapshot_source": "detect",
                    "snapshot_fallback": reason[:200],
                    "snapshot_wanted": self.opts.snapshot_source,
                }
                log.warning(
                    "camera %s: event %s: %s snapshot from %s failed (%s): sent the detected frame "
                    "instead; check snapshot_url, the camera account and that the camera answers "
                    "within snapshot_timeout_s=%.1f",
                    self.device,
                    eid,
                    self.opts.snapshot_source,
                    self.source.safe_url,
                    reason,
                    self.opts.snapshot_timeout_s,
                    extra={"device": self.device},
                )
                assert em.frame is not None
                size = (int(em.frame.shape[1]), int(em.frame.shape[0]))
            fields["snapshot_width_px"], fields["snapshot_height_px"] = size
            assert em.jpeg is not None
            doc.update(fields)
            self._sent[eid] = {
                **fields,
                "snapshot_sha256": hashlib.sha256(em.jpeg).hexdigest(),
                "snapshot_bytes": len(em.jpeg),
            }
        elif "snapshot_sha256" in doc and eid in self._sent:
            doc.update(self._sent[eid])  # repeat the picture really sent
        if doc.get("phase") == "end":
            self._sent.pop(eid, None)

    def _use(self, em: Emission, pic: Picture) -> tuple[int, int]:
        """Put the picture on ``em`` (JPEG, and the frame for the board's labeller); its size."""
        em.jpeg, frame, size = self.encode(pic, keep_frame=self.opts.labels.enabled)
        em.frame = frame
        return size

    def encode(self, pic: Picture, *, keep_frame: bool) -> tuple[bytes, Frame | None, tuple[int, int]]:
        """The snapshot JPEG of ``pic``, its frame if asked, its size.

        The camera's own JPEG goes out as it is when it already fits (width, bytes) and nobody on
        the board needs its pixels: no decoding at all. Otherwise it is decoded (at half or a
        quarter of its size when that still covers snapshot_width) and encoded again.
        """
        ev = self.opts.events
        if pic.jpeg is not None:
            dims = jpeg_size(pic.jpeg)
            assert dims is not None
            if dims[0] <= ev.snapshot_width and len(pic.jpeg) <= MAX_SNAPSHOT_BYTES and not keep_frame:
                return pic.jpeg, None, dims
            flag = cv2.IMREAD_COLOR
            if dims[0] >= 4 * ev.snapshot_width:
                flag = cv2.IMREAD_REDUCED_COLOR_4
            elif dims[0] >= 2 * ev.snapshot_width:
                flag = cv2.IMREAD_REDUCED_COLOR_2
            frame = cv2.imdecode(np.frombuffer(pic.jpeg, np.uint8), flag)
            if frame is None:
                raise ValueError("the camera's JPEG does not decode")
        else:
            assert pic.frame is not None
            frame = pic.frame
        h, w = frame.shape[:2]
        if w > ev.snapshot_width:
            frame = cv2.resize(
                frame,
                (ev.snapshot_width, max(1, round(h * ev.snapshot_width / w))),
                interpolation=cv2.INTER_AREA,
            )
        jpeg = encode_jpeg(frame, ev.snapshot_width, ev.jpeg_quality)
        # the labeller's copy, bounded like the tracker's
        return jpeg, frame if keep_frame else None, (int(frame.shape[1]), int(frame.shape[0]))

    def jpeg_now(self) -> bytes | None:
        """A full-resolution picture now (the remote ``snapshot`` command), or None (logged)."""
        ts = time.time()
        self.source.want(ts)
        pic = self.source.result(ts, self.bound_s)
        if pic.ok:
            try:
                return self.encode(pic, keep_frame=False)[0]
            except Exception as exc:
                pic = Picture(None, f"unusable picture: {type(exc).__name__}: {exc}")
        log.warning(
            "camera %s: %s snapshot from %s failed (%s): the detected frame will do",
            self.device,
            self.opts.snapshot_source,
            self.source.safe_url,
            pic.reason,
            extra={"device": self.device},
        )
        return None
