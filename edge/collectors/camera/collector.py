"""The camera collector: capture thread -> detector thread -> events and health into the sink.

Three parts run apart so none can stall another: the capture thread blocks in FFmpeg; the
detector thread takes the newest frame, detects and tracks events; the collector's coroutine
(the agent's event loop) only moves finished outputs into the outbox and writes the health
point every ``interval_s``, and at once when the stream's state changes (up, frozen,
tampering, camera moving), so a long interval (300 s on 3G) never delays a stream alert.
Between them sit one frame slot and a bounded queue, so memory stays flat whatever the stream
does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any
from urllib.parse import urlsplit

from edge.collectors.base import Collector, CollectorOptions, JobState, Sink, Unsupported
from edge.collectors.camera.capture import CaptureSettings, StreamReader
from edge.collectors.camera.config import CameraOptions, MotionSettings
from edge.collectors.camera.events import Emission, EventTracker, encode_jpeg
from edge.collectors.camera.hires import SnapshotStage
from edge.collectors.camera.labelling import LabelWorker
from edge.collectors.camera.masks import keep_mask, polygon_mask, zones_touched
from edge.collectors.camera.motion import MotionDetector
from edge.collectors.camera.tampering import TamperDetector
from wire import Point
from wire.messages import TAMPER_SNAPSHOT_FIELD, tamper_snapshot_suffix

log = logging.getLogger("edge.camera")

#: Shortest gap between two health points sent for a change of state: a camera that pans
#: back and forth or a stream that flickers sends a point a second at most.
CHANGE_GAP_S = 1.0
#: Outputs waiting for the event loop. Events are rate-bounded (start, update per update_s,
#: end), so this only fills if the loop is stuck; then the oldest is dropped and counted.
QUEUE_MAX = 64


def in_night(now: dtime, start: dtime, end: dtime) -> bool:
    return start <= now < end if start < end else now >= start or now < end


class Pipeline:
    """Detector + event tracker on their own thread, fed by a :class:`StreamReader`."""

    def __init__(self, opts: CameraOptions, device: str, reader: StreamReader) -> None:
        self.opts = opts
        self.device = device
        self.reader = reader
        self.out: queue.Queue[Emission] = queue.Queue(QUEUE_MAX)
        self.dropped = 0
        self.motion = False
        self.camera_moving = False
        self.tamper = TamperDetector(opts.tamper)
        #: What the stream health says about tampering: (kind, SHA-256 of the picture taken when
        #: it began); set together, so a point never names a kind without its picture.
        self.tampered: tuple[str, str] = ("", "")
        #: That picture, until the collector's loop has sent it (before the point naming it).
        self._tamper_jpeg: tuple[str, bytes] | None = None
        self._tamper_lock = threading.Lock()
        self.tracker = EventTracker(device, opts.events)
        self._profile = ""
        self.detector = self._detector("day")
        self._zones: dict[str, Any] = {}
        self._stop = threading.Event()
        self._pending: CameraOptions | None = None  # new detector options, taken by the thread
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"detect-{device}", daemon=True)
        # Object labels on the board, when switched on: messages pass through it on their way out.
        self.labels = LabelWorker(opts.labels, device, self._put) if opts.labels.enabled else None
        # Detecting on a substream: event snapshots from the main stream or the camera's HTTP
        # snapshot URL; messages pass through this stage (in order) before labels.
        self.snapshots = SnapshotStage(opts, device, self._labelled) if opts.hires_snapshots else None
        if self.snapshots is not None:
            self.tracker.on_best = self.snapshots.want

    def _detector(self, profile: str) -> MotionDetector:
        settings: MotionSettings = (
            self.opts.night if profile == "night" and self.opts.night else self.opts.motion
        )
        self._profile = profile
        keep = keep_mask(
            self.opts.masks,
            settings.detect_width,
            settings.detect_width,  # square source; resized to the detector's shape on first use
            [z.polygon for z in self.opts.zones] if self.opts.only_in_zones else (),
        )
        return MotionDetector(settings, fps=self.opts.detect_fps, ignore_mask=keep)

    def start(self) -> Pipeline:
        if self.labels is not None:
            self.labels.start()
        if self.snapshots is not None:
            self.snapshots.start()
        self._thread.start()
        return self

    def update(self, opts: CameraOptions) -> None:
        """New detector, mask, zone and event options; the detector thread takes them before its
        next frame (the background is learnt again, as after a reconnect)."""
        with self._pending_lock:
            self._pending = opts

    def _take_update(self) -> None:
        with self._pending_lock:
            opts, self._pending = self._pending, None
        if opts is None:
            return
        for em in self.tracker.close(time.time()):  # an event under the old rules ends here
            self._put(em)
        if opts.tamper != self.opts.tamper:
            self.tamper = TamperDetector(opts.tamper)
            with self._tamper_lock:
                self.tampered, self._tamper_jpeg = ("", ""), None
        self.opts = opts
        if self.snapshots is not None:
            self.snapshots.opts = opts
        self.tracker.s = opts.events
        self._zones = {}
        self.detector = self._detector(self._profile or "day")
        log.info("camera %s: new detector settings, masks and zones in use", self.device)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for em in self.tracker.close(time.time()):
            self._emit(em)
        if self.snapshots is not None:
            self.snapshots.stop()
        if self.labels is not None:
            self.labels.stop()

    def _emit(self, em: Emission) -> None:
        """An event message from the tracker: its high-resolution snapshot taken, then labelled
        when the board labels."""
        if self.snapshots is not None:
            self.snapshots.submit(em)
        else:
            self._labelled(em)

    def _labelled(self, em: Emission) -> None:
        if self.labels is not None:
            self.labels.submit(em)
        else:
            em.frame = None
            self._put(em)

    def _put(self, em: Emission) -> None:
        while True:
            try:
                self.out.put_nowait(em)
                return
            except queue.Full:
                try:
                    self.out.get_nowait()
                    self.dropped += 1
                    log.error("camera %s: event queue full, dropped the oldest output", self.device)
                except queue.Empty:
                    pass

    def _tamper_picture(self, frame: Any) -> None:
        """When tampering begins (or changes kind), the frame that shows it becomes the picture
        the technician's alert carries; sent on the event snapshots' channel."""
        kind = self.tamper.kind
        if kind == self.tampered[0]:
            return
        if not kind:
            with self._tamper_lock:
                self.tampered, self._tamper_jpeg = ("", ""), None
            return
        ev = self.opts.events
        try:
            jpeg = encode_jpeg(frame, ev.snapshot_width, ev.jpeg_quality)
        except Exception:  # no picture is better than no alert
            log.exception("camera %s: cannot encode the tampering picture", self.device)
            jpeg = b""
        sha = hashlib.sha256(jpeg).hexdigest() if jpeg else ""
        with self._tamper_lock:
            self.tampered = (kind, sha)
            self._tamper_jpeg = (sha, jpeg) if jpeg else None
        log.warning("camera %s: tampering (%s); picture %s", self.device, kind, sha[:12] or "none")

    def take_tamper_picture(self) -> tuple[tuple[str, str], tuple[str, bytes] | None]:
        """The tampering state now (kind, SHA-256) and its picture (SHA-256, JPEG) if not sent
        yet (then once): the caller sends the picture before a point that names it."""
        with self._tamper_lock:
            pic, self._tamper_jpeg = self._tamper_jpeg, None
            return self.tampered, pic

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take_update()
            got = self.reader.latest(timeout=0.5)
            now = time.time()
            if got is None:
                if not self.reader.health(5.0).up:
                    self.motion = False
                    for em in self.tracker.close(now):  # the stream is gone: close the event
                        self._emit(em)
                    if self.detector.frames:
                        self.detector.reset()
                continue
            frame, ts = got
            want = "day"
            if self.opts.night is not None and in_night(
                datetime.now().time(), self.opts.night_start, self.opts.night_end
            ):
                want = "night"
            if want != self._profile:
                log.info("camera %s: switching to the %s detector profile", self.device, want)
                self.detector = self._detector(want)
            try:
                result = self.detector.detect(frame)
            except Exception:  # a malformed frame must not kill detection for good
                log.exception("camera %s: detection failed on a frame", self.device)
                continue
            self.motion = result.motion
            self.camera_moving = result.camera_moving
            self.tamper.feed(frame, ts, camera_moving=result.camera_moving)
            self._tamper_picture(frame)
            zones: list[str] = []
            if result.motion and self.opts.zones and result.mask is not None:
                if not self._zones:
                    h, w = result.mask.shape
                    self._zones = {z.name: polygon_mask([z.polygon], w, h) for z in self.opts.zones}
                zones = zones_touched(result.mask, self._zones)
            for em in self.tracker.feed(result, frame if result.motion else None, ts, zones):
                self._emit(em)


class Camera(Collector):
    """A real camera stream (RTSP, HTTP, file) watched with OpenCV."""

    Options = CameraOptions

    def __init__(self, options: CollectorOptions, *, node: str) -> None:
        super().__init__(options, node=node)
        assert isinstance(options, CameraOptions)
        self.opts: CameraOptions = options
        self._reader: StreamReader | None = None
        self._pipeline: Pipeline | None = None

    def reconfigure(self, options: CollectorOptions) -> bool:
        """Detector, masks, zones, events and snapshots change live; the stream (URL,
        credentials, timeouts, rates) only with a restart of this collector."""
        if not isinstance(options, CameraOptions) or options.device != self.opts.device:
            return False
        if self.capture_settings(options) != self.capture_settings():
            return False
        if self._snapshot_settings(options) != self._snapshot_settings(self.opts):
            return False
        self.options = self.opts = options
        if self._pipeline is not None:
            self._pipeline.update(options)
        return True

    def job_state(self) -> JobState:
        reader = self._reader
        failing = reader.failing() if reader is not None else None
        if failing is None:
            return JobState(None, f"camera {self.device}: opening the stream")
        if failing:
            assert reader is not None
            return JobState(False, f"camera {self.device}: stream {reader.safe_url} gives no frames")
        return JobState(True)

    def addresses(self) -> dict[str, str]:
        host = urlsplit(self.opts.url).hostname
        return {self.device: host} if host else {}

    async def snapshot(self, device: str) -> bytes:
        """The picture now: from the snapshot URL or main stream when the camera has one
        configured (the detected substream frame if that fails), else the last detected frame."""
        stage = self._pipeline.snapshots if self._pipeline is not None else None
        if stage is not None:
            jpeg = await asyncio.to_thread(stage.jpeg_now)
            if jpeg is not None:
                return jpeg
        frame = self._reader.last_frame() if self._reader is not None else None
        if frame is None:
            raise Unsupported(f"camera {self.device}: no picture yet (stream down or still opening)")
        ev = self.opts.events
        return await asyncio.to_thread(encode_jpeg, frame, ev.snapshot_width, ev.jpeg_quality)

    @staticmethod
    def _snapshot_settings(o: CameraOptions) -> tuple[object, ...]:
        """What the snapshot stage is built from: a change restarts the collector."""
        return (o.snapshot_source, o.snapshot_url, o.snapshot_timeout_s, o.stream_url(), o.username)

    def capture_settings(self, opts: CameraOptions | None = None) -> CaptureSettings:
        o = opts or self.opts
        return CaptureSettings(
            url=o.detect_stream_url(),
            open_timeout_s=o.open_timeout_s,
            read_timeout_s=o.read_timeout_s,
            reconnect_min_s=o.reconnect_min_s,
            reconnect_max_s=max(o.reconnect_min_s, o.reconnect_max_s),
            detect_fps=o.detect_fps,
            transport=o.transport,
            frozen_after_s=o.frozen_after_s,
            expected_fps=o.expected_fps,
            loop_files=o.loop_file,
        )

    def point(
        self, reader: StreamReader, pipeline: Pipeline, tampered: tuple[str, str] | None = None
    ) -> Point:
        h = reader.health(window_s=max(2.0, min(self.opts.interval_s, 30.0)))
        kind, sha = (tampered or pipeline.tampered) if h.up else ("", "")
        extra: dict[str, str] = {TAMPER_SNAPSHOT_FIELD: sha} if kind and sha else {}
        return Point(
            measurement="camera",
            device=self.device,
            fields={
                "up": h.up,
                "fps": h.fps,
                "nominal_fps": h.nominal_fps,
                "width": h.width,
                "height": h.height,
                "frozen": h.frozen,
                "decode_errors": h.decode_errors,
                "last_frame_age_s": h.last_frame_age_s,
                "detect_fps": h.detect_fps,
                "motion": pipeline.motion and h.up,
                # the camera pans, tilts or zooms: motion is not reported until it settles
                "camera_moving": pipeline.camera_moving and h.up,
                # covered / dark / blurred / moved, "" when fine: a technician alert in the cloud
                "tampering": kind,
                "reconnects": h.reconnects,
                # the picture taken when it began (sent before, on the snapshot channel)
                **extra,
            },
            ts=datetime.now(UTC),
        )

    @staticmethod
    def state(reader: StreamReader, pipeline: Pipeline) -> tuple[bool, bool, str, bool]:
        """What the cloud alerts on, as the next point would say it: (up, frozen, tampering,
        camera_moving)."""
        up, frozen = reader.state()
        return up, frozen, pipeline.tampered[0] if up else "", pipeline.camera_moving and up

    async def run(self, sink: Sink) -> None:
        reader = self._reader = StreamReader(self.capture_settings(), device=self.device).start()
        pipeline = self._pipeline = Pipeline(self.opts, self.device, reader).start()
        log.info(
            "camera %s: watching %s (detect %.1f fps at %d px; snapshots from %s)",
            self.device,
            reader.safe_url,
            self.opts.detect_fps,
            self.opts.motion.detect_width,
            pipeline.snapshots.source.safe_url if pipeline.snapshots is not None else "the detected frames",
        )
        next_point = time.monotonic() + min(self.opts.interval_s, 2.0)
        sent: tuple[bool, bool, str, bool] | None = None  # the state the last point said
        sent_at = 0.0
        try:
            while True:
                self._drain(pipeline, sink)
                now = time.monotonic()
                due = now >= next_point
                changed = sent is not None and self.state(reader, pipeline) != sent
                if due or (changed and now - sent_at >= CHANGE_GAP_S):
                    tampered, pic = pipeline.take_tamper_picture()
                    if pic is not None:  # before the point that names it
                        sink.emit_snapshot(tamper_snapshot_suffix(pic[0]), pic[1])
                    point = self.point(reader, pipeline, tampered)
                    sink.emit_metrics([point])
                    f = point.fields
                    sent = (bool(f["up"]), bool(f["frozen"]), str(f["tampering"]), bool(f["camera_moving"]))
                    sent_at = now
                    if due:
                        next_point += self.opts.interval_s
                        if next_point < now:
                            next_point = now + self.opts.interval_s
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(reader.stop)
            await asyncio.to_thread(pipeline.stop)
            self._drain(pipeline, sink)

    @staticmethod
    def _drain(pipeline: Pipeline, sink: Sink) -> None:
        while True:
            try:
                em = pipeline.out.get_nowait()
            except queue.Empty:
                return
            sink.emit_event(em.event, em.jpeg)
