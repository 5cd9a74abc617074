"""The cloud's labeller: object labels for events from the snapshots the boards send.

Most boards do not have the CPU to run the detector (about 30-60 ms a view here, several
times that on a Pi), so by default the cloud labels: it runs in the ``serve`` process on a
thread of its own, woken by ingest whenever an event or a snapshot is committed and every
``sweep_s`` besides (events another ingest worker stored, a backlog after a restart). Each
pass takes the newest events whose current snapshot it has not labelled
(``EventStore.label_todo``), labels the picture with the policy the boards use
(``labels.labeller``), looking where the snapshot's own frame moved (``snapshot_boxes``; the
event's union ``boxes`` from older agents), and merges the result with what the event's earlier
snapshots showed. Events the board labels itself are left alone.

Labelling never holds up ingest (the acknowledgement does not wait for it) and failing to
label (a picture that cannot be decoded, no model) leaves the event unlabelled, never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from cloud.events.store import Event, EventStore
from cloud.storage.snapshots import SnapshotStore
from wire.topics import Channel

if TYPE_CHECKING:
    from cloud.config import LabelsConfig
    from cloud.ingest.convert import Converted
    from labels.labeller import Labeller

log = logging.getLogger(__name__)

BATCH = 16


def load_labeller(cfg: LabelsConfig) -> Labeller | None:
    """The labeller when labelling is on and possible; None (and why, in the log) otherwise."""
    if cfg.enabled is False:
        log.info("event labels: off (labels.enabled: false)")
        return None
    loud = cfg.enabled is True
    try:
        from labels.labeller import Labeller
        from labels.model import ModelError
    except ImportError as exc:
        (log.error if loud else log.info)(
            "event labels: off, the `labels` extra is not installed (%s): pip install 'commune-iot[labels]'",
            exc,
        )
        return None
    try:
        labeller = Labeller(cfg)
    except ModelError as exc:
        (log.error if loud else log.warning)("event labels: off, %s", exc)
        return None
    log.info(
        "event labels: from snapshots, model %s (%d thread(s)); classes %s",
        labeller.model_path,
        cfg.threads,
        ", ".join(sorted(cfg.min_confidence)),
    )
    return labeller


class SnapshotLabeller:
    """``start()``, ``heard`` as an ingest observer, ``stop()``; ``label_pending`` does one pass."""

    def __init__(
        self, cfg: LabelsConfig, store: EventStore, snapshots: SnapshotStore, labeller: Labeller
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.snapshots = snapshots
        self.labeller = labeller
        self.labelled = 0
        self.failed = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-labels", daemon=True)

    def start(self) -> SnapshotLabeller:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def heard(self, batch: list[tuple[Converted, float]]) -> None:
        """Ingest observer: an event or a snapshot was committed, so there may be work."""
        if any(res.channel in (Channel.EVENT, Channel.SNAPSHOT) for res, _ in batch):
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.cfg.sweep_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.label_pending()
            except Exception:  # the database away, a bug: keep the thread, try again later
                log.exception("event labels: a pass failed; retrying in %.0f s", self.cfg.sweep_s)

    def label_pending(self) -> int:
        """Label every event waiting (newest first); returns how many were labelled."""
        done = 0
        waiting: set[tuple[int, str | None]] = set()  # snapshot file not stored yet
        while not self._stop.is_set():
            todo = [
                ev
                for ev in self.store.label_todo(time.time() - self.cfg.window_h * 3600, BATCH + len(waiting))
                if (ev.id, ev.snapshot_sha256) not in waiting
            ]
            if not todo:
                return done
            for ev in todo:
                if self._stop.is_set():
                    break
                if self.label_event(ev):
                    done += 1
                else:
                    waiting.add((ev.id, ev.snapshot_sha256))
        return done

    def label_event(self, ev: Event) -> bool:
        """Label one event's current snapshot; False when its file is not there (yet)."""
        from PIL import Image, UnidentifiedImageError

        from labels.labeller import as_labels, merge

        sha = ev.snapshot_sha256 or ""
        path = self.snapshots.path_for(sha)
        if not sha or not path.exists():
            return False
        regions = [
            (float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"]))
            for b in (ev.snapshot_boxes if ev.snapshot_boxes is not None else ev.boxes)
        ]
        try:
            t0 = time.perf_counter()
            with Image.open(path) as img:
                picture = img.convert("RGB")
            found = self.labeller.label(picture, regions)
            ms = 1000 * (time.perf_counter() - t0)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            log.warning(
                "event labels: snapshot %s of event %d cannot be read (%s); left unlabelled", sha, ev.id, exc
            )
            self.failed += 1
            self.store.set_cloud_labels(ev.id, sha, None)
            return True
        previous = ev.labels if ev.labels_source == "cloud" else None  # an earlier snapshot's
        labels: list[dict[str, Any]] = merge(previous, as_labels(found))
        if self.store.set_cloud_labels(ev.id, sha, labels):
            self.labelled += 1
            log.debug(
                "event labels: event %d (%s) %s in %.0f ms",
                ev.id,
                ev.event_id,
                ", ".join(f"{lab['label']} {lab['confidence']:.2f}" for lab in labels) or "nothing",
                ms,
            )
        return True
