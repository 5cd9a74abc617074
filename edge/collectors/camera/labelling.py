"""Object labels on the board: the camera's events labelled before they leave.

Off by default (``labels.enabled``): most boards beside a camera have no CPU to spare, and the
cloud labels the snapshots it receives with the same code. When on, the detector thread hands
every event message to this worker instead of the outbox queue; when the message brings a new
snapshot (with ``start``, then at most one per ``update_s``) the worker looks at its frame and
labels the event from all its snapshots so far (``Labeller.event_labels``: an object at the same
place in two of them is parked, not what moved); it puts ``labels`` on the message and passes it
on, in order. Detection never waits for it: a full queue passes messages on unlabelled
(counted and logged), and a model that cannot be loaded leaves every message unlabelled (the
cloud then labels them), saying why once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.collectors.camera.config import CameraLabels
from edge.collectors.camera.events import Emission

if TYPE_CHECKING:
    from labels.labeller import Labeller, Picture

log = logging.getLogger("edge.camera")

QUEUE_MAX = 32
#: The previous event's pictures tell what is parked for this long after it ended.
REFERENCE_S = 3600.0


class LabelWorker:
    def __init__(self, settings: CameraLabels, device: str, out: Callable[[Emission], None]) -> None:
        self.settings = settings
        self.device = device
        self.out = out
        self.labeller: Labeller | None = None
        self.unlabelled = 0  # messages passed on without labelling (queue full)
        self.last_ms = 0.0
        self._q: queue.Queue[Emission | None] = queue.Queue(QUEUE_MAX)
        self._pictures: dict[str, list[Picture]] = {}  # event id -> what its snapshots showed
        self._labels: dict[str, list[dict[str, Any]]] = {}  # event id -> its labels so far
        self._last: tuple[float, list[Picture]] = (0.0, [])  # the last ended event's, and when
        self._thread = threading.Thread(target=self._run, name=f"labels-{device}", daemon=True)

    def start(self) -> LabelWorker:
        self._thread.start()
        return self

    def submit(self, em: Emission) -> None:
        """From the detector thread; never blocks."""
        try:
            self._q.put_nowait(em)
        except queue.Full:
            self.unlabelled += 1
            log.error(
                "camera %s: labelling is behind (%d messages waiting); event %s sent without labels",
                self.device,
                QUEUE_MAX,
                em.event.get("event_id"),
            )
            em.frame = None
            self.out(em)

    def stop(self, timeout: float = 30.0) -> None:
        """Label and pass on what is queued, then end."""
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            log.error("camera %s: label worker stuck; messages still queued are lost", self.device)
        self._thread.join(timeout)

    def _load(self) -> None:
        try:
            from labels.labeller import Labeller

            self.labeller = Labeller(self.settings)
        except Exception as exc:  # ImportError (no extra), ModelError (no model), a broken file
            log.error(
                "camera %s: cannot label events on this board (%s); events go unlabelled and the cloud "
                "labels their snapshots. Install the `labels` extra and run `commune-iot models fetch`, "
                "or set labels.enabled: false",
                self.device,
                exc,
            )
            return
        log.info("camera %s: labelling events on the board with %s", self.device, self.labeller.model_path)

    def _run(self) -> None:
        self._load()
        while True:
            em = self._q.get()
            if em is None:
                return
            try:
                self.label(em)
            except Exception:  # a bad frame must not stop the camera's events
                log.exception("camera %s: labelling event %s failed", self.device, em.event.get("event_id"))
            em.frame = None
            self.out(em)

    def label(self, em: Emission) -> None:
        """Put the event's labels on ``em`` (labelling its new snapshot frame, if it has one)."""
        if self.labeller is None:
            return
        import numpy as np
        from PIL import Image

        event_id = str(em.event["event_id"])
        if em.frame is not None:
            t0 = time.perf_counter()
            picture = Image.fromarray(np.ascontiguousarray(em.frame[:, :, ::-1]))
            pictures = self._pictures.setdefault(event_id, [])
            pictures.append(self.labeller.picture(picture, em.regions))
            ended, reference = self._last
            recent = reference if time.monotonic() - ended < REFERENCE_S else []
            self._labels[event_id] = self.labeller.event_labels(pictures, recent)
            self.last_ms = 1000 * (time.perf_counter() - t0)
        if event_id in self._labels:
            em.event["labels"] = self._labels[event_id]
        if em.event.get("phase") == "end":
            self._labels.pop(event_id, None)
            self._last = (time.monotonic(), self._pictures.pop(event_id, []))
