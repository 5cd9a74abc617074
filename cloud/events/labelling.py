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
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from cloud.events.store import Event, EventStore
from cloud.storage.snapshots import SnapshotStore
from wire.topics import Channel

if TYPE_CHECKING:
    from cloud.config import LabelsConfig
    from cloud.ingest.convert import Converted
    from labels.labeller import Labeller, Picture

log = logging.getLogger(__name__)

BATCH = 16
SEEN_MAX = 512  # snapshots whose detections are kept for their events' later snapshots
REFERENCE_S = 3600.0  # the previous event's snapshot tells what is parked, if it ended this recently


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
        self._seen: OrderedDict[str, Picture] = OrderedDict()  # snapshot -> what the model saw
        #: called (on the labeller's thread) after an event's labels were stored: the police
        #: notification rules judge it (cloud.events.announce)
        self.labelled_observers: list[Callable[[], None]] = []
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
                try:
                    labelled = self.label_event(ev)
                except Exception:  # one event must not stop the others being labelled
                    log.exception("event labels: event %d could not be labelled; left unlabelled", ev.id)
                    self.failed += 1
                    self.store.set_cloud_labels(
                        ev.id, ev.snapshot_sha256 or "", [ev.snapshot_sha256 or ""], None
                    )
                    labelled = True
                if labelled:
                    done += 1
                else:
                    waiting.add((ev.id, ev.snapshot_sha256))
        return done

    def snapshots_of(self, ev: Event) -> list[str]:
        """Every snapshot the event has had, oldest first (the ``snapshots`` table of ingest)."""
        from sqlalchemy import select

        from cloud.storage.sql import snapshots

        c = snapshots.c
        q = select(c.sha256).where(c.node == ev.node, c.event_id == ev.event_id).order_by(c.received_at)
        with self.store.engine.connect() as conn:
            return [r.sha256 for r in conn.execute(q)]

    def _picture(self, sha: str, regions: list[tuple[float, float, float, float]]) -> Picture | None:
        """What the model sees in one stored snapshot (cached); None when it cannot be read."""
        from PIL import Image, UnidentifiedImageError

        pic = self._seen.get(sha)
        if pic is not None:
            self._seen.move_to_end(sha)
            return pic
        try:
            with Image.open(self.snapshots.path_for(sha)) as img:
                picture = img.convert("RGB")
            pic = self.labeller.picture(picture, regions)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            log.warning("event labels: snapshot %s cannot be read (%s); not labelled from it", sha, exc)
            self.failed += 1
            return None
        self._seen[sha] = pic
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        return pic

    def _reference(self, ev: Event) -> list[Picture]:
        """The camera's previous event's snapshot, when recent: what is parked there."""
        before, _ = self.store.neighbours(ev, 1)
        prev = before[-1] if before else None
        if (
            prev is None
            or not prev.snapshot_sha256
            or ev.start - (prev.start + prev.duration_s) > REFERENCE_S
        ):
            return []
        if not self.snapshots.path_for(prev.snapshot_sha256).exists():
            return []
        boxes = prev.snapshot_boxes if prev.snapshot_boxes is not None else prev.boxes
        pic = self._picture(prev.snapshot_sha256, [(b["x"], b["y"], b["w"], b["h"]) for b in boxes])
        return [pic] if pic is not None else []

    def label_event(self, ev: Event) -> bool:
        """Label the event from all its stored snapshots, its current one last (its labels keep
        their boxes; classes only earlier snapshots showed stay without one; objects at the same
        place in two of them are parked, see ``labels.labeller``). False when the current
        snapshot's file is not there (yet)."""
        sha = ev.snapshot_sha256 or ""
        if not sha or not self.snapshots.path_for(sha).exists():
            return False
        union = [(float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"])) for b in ev.boxes]
        here = (
            union
            if ev.snapshot_boxes is None
            else [(float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"])) for b in ev.snapshot_boxes]
        )
        t0 = time.perf_counter()
        current = self._picture(sha, here)
        shas = [old for old in self.snapshots_of(ev) if old != sha and self.snapshots.path_for(old).exists()]
        # Where an earlier snapshot moved is not kept; the event's union of boxes stands in.
        earlier = [p for p in (self._picture(old, union) for old in shas) if p is not None]
        labels = (
            self.labeller.event_labels([*earlier, current], self._reference(ev))
            if current is not None
            else None
        )
        ms = 1000 * (time.perf_counter() - t0)
        if self.store.set_cloud_labels(ev.id, sha, [*shas, sha], labels):
            self.labelled += 1
            for observe in self.labelled_observers:
                observe()
            log.debug(
                "event labels: event %d (%s) %s in %.0f ms",
                ev.id,
                ev.event_id,
                ", ".join(f"{lab['label']} {lab['confidence']:.2f}" for lab in labels or []) or "nothing",
                ms,
            )
        return True
