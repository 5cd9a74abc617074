"""Police event notifications: "a person at the school gate at 02:10", not forty events of leaves.

The rules (``alerting.notify.event_rules``) say which events of which communes, cameras and
hours are told to which notifiers, usually only those labelled with a class (person,
vehicle...). An event is judged when its labels change: when the board sends them with the
event, or when the cloud's labeller has labelled its snapshot (``cloud.events.labelling``).
Ingest and the labeller wake the announcer; it also sweeps every ``SWEEP_S``, so an event
labelled by another worker, or while this one was down, is judged all the same.

Each rule tells of an event at most once: the row ``event_notices(event, rule)`` (unique) is
written in the same transaction as the notices it queues in the durable outbox
(``cloud.storage.notice_outbox``), so neither a redelivered or replayed message, nor a cloud
restart, nor two workers judging the same event announce it twice. ``events.announced_labels``
keeps the label set last judged, so an event is judged again only when its labels change (a
later snapshot shows a person). Events the cloud first received more than
``event_window_h`` ago are never announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select, update

from cloud.events.store import Event, event_notices, events
from cloud.notify.messages import Notice
from cloud.notify.settings import EventRule, NotifyConfig
from cloud.storage.notice_outbox import SqlNoticeQueue
from labels.classes import members

log = logging.getLogger(__name__)

#: How often the announcer looks for events nobody woke it for.
SWEEP_S = 5.0
BATCH = 200


@dataclass(frozen=True, slots=True)
class Match:
    rule: EventRule
    label: str  # the class that matched ("" for a rule without require_label on an unlabelled event)
    confidence: float


def match(rule: EventRule, ev: Event, local_minute: int) -> Match | None:
    """Whether ``rule`` announces ``ev`` (which started ``local_minute`` after local midnight)."""
    if ev.commune not in rule.communes:
        return None
    if rule.cameras and ev.device not in rule.cameras:
        return None
    if rule.sites and ev.site not in rule.sites:
        return None
    span = rule.minutes
    if span is not None:
        lo, hi = span
        inside = lo <= local_minute < hi if lo < hi else (local_minute >= lo or local_minute < hi)
        if not inside:
            return None
    found = sorted(ev.labels or [], key=lambda x: -float(x["confidence"]))
    if rule.require_label is None:
        best = found[0] if found else None
        return Match(rule, str(best["label"]) if best else "", float(best["confidence"]) if best else 0.0)
    wanted = members(rule.require_label)
    best = next(
        (x for x in found if x["label"] in wanted and float(x["confidence"]) >= rule.min_confidence), None
    )
    return Match(rule, str(best["label"]), float(best["confidence"])) if best is not None else None


class EventAnnouncer:
    """``start()`` on the event loop, ``poke()`` from any thread, ``stop()``; ``judge`` does one pass."""

    def __init__(
        self,
        cfg: NotifyConfig,
        engine: Engine,
        wake_channels: Callable[[], None],
    ) -> None:
        self.rules = cfg.event_rules
        self.window_s = cfg.event_window_h * 3600
        self.engine = engine
        self.wake_channels = wake_channels  # the notices are in the outbox: deliver them
        self.announced = 0
        self._communes = sorted({c for r in self.rules for c in r.communes})
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # one pass at a time in this process

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="event-announcer")
        log.info(
            "police event notifications: %d rule(s): %s",
            len(self.rules),
            "; ".join(
                f"{r.name} ({r.require_label or 'every event'}, {', '.join(r.communes)}"
                f"{', ' + r.hours if r.hours else ''} -> {', '.join(r.notifiers)})"
                for r in self.rules
            ),
        )
        for r in self.rules:
            if r.require_label is None:
                log.warning("event rule %s has no require_label: every event is announced (noisy)", r.name)

    def poke(self, *_args: Any) -> None:
        """Labels may have changed (ingest, the labeller): judge soon. Safe from any thread."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP_S)
            self._wake.clear()
            try:
                n = await asyncio.to_thread(self.judge, time.time())
            except Exception as exc:  # SQL away for a moment: the next pass finds the same events
                log.error("police event notifications: a pass failed (%s: %s)", type(exc).__name__, exc)
                continue
            if n:
                self.wake_channels()

    def judge(self, now: float) -> int:
        """Judge every event whose labels changed since last judged; returns notices queued."""
        if not self.rules:
            return 0
        queued = 0
        with self._lock:
            while True:
                todo = self._todo(now)
                for ev, label_set, minute in todo:
                    queued += self._judge_one(ev, label_set, minute, now)
                if len(todo) < BATCH:
                    return queued

    def _todo(self, now: float) -> list[tuple[Event, str, int]]:
        c = events.c
        seen = func.coalesce(c.label_set, "")
        q = (
            select(events)
            .where(
                c.received_at >= now - self.window_s,
                c.commune.in_(self._communes),
                or_(c.announced_labels.is_(None), c.announced_labels != seen),
            )
            .order_by(c.received_at)
            .limit(BATCH)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [(Event.from_row(r), r.label_set or "", int(r.local_minute)) for r in rows]

    def _judge_one(self, ev: Event, label_set: str, minute: int, now: float) -> int:
        hits = [m for m in (match(rule, ev, minute) for rule in self.rules) if m is not None]
        queued = 0
        with self.engine.begin() as conn:
            for hit in hits:
                if self._claim(conn, ev, hit, now):
                    SqlNoticeQueue.add(conn, hit.rule.notifiers, _notice(ev, hit, now), now)
                    queued += len(hit.rule.notifiers)
                    log.info(
                        "police event notifications: rule %s announces event %d (%s %s %.2f) to %s",
                        hit.rule.name,
                        ev.id,
                        ev.device,
                        hit.label or "motion",
                        hit.confidence,
                        ", ".join(hit.rule.notifiers),
                    )
            # Judged at this label set; if the labels changed meanwhile, the next pass judges again.
            c = events.c
            conn.execute(
                update(events)
                .where(c.id == ev.id, func.coalesce(c.label_set, "") == label_set)
                .values(announced_labels=label_set)
            )
        self.announced += queued
        return queued

    @staticmethod
    def _claim(conn: Connection, ev: Event, hit: Match, now: float) -> bool:
        """Record that ``hit.rule`` announces ``ev``; False when it already did (or another worker)."""
        row = {
            "event": ev.id,
            "rule": hit.rule.name,
            "at": now,
            "label": hit.label,
            "confidence": hit.confidence,
            "notifiers": ",".join(hit.rule.notifiers),
        }
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(event_notices).on_conflict_do_nothing(
                index_elements=[event_notices.c.event, event_notices.c.rule]
            )
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(event_notices).on_conflict_do_nothing(
                index_elements=[event_notices.c.event, event_notices.c.rule]
            )
        # RETURNING, not rowcount: on PostgreSQL (psycopg) rowcount said 1 for rows DO NOTHING skipped
        # (two workers told each event twice in the test); a returned id is what was inserted.
        return conn.execute(stmt.returning(event_notices.c.id), row).first() is not None


def _notice(ev: Event, hit: Match, now: float) -> Notice:
    return Notice(
        "event",
        0,
        f"event:{ev.id}:{hit.rule.name}",
        "event",
        ev.device,
        ev.commune,
        "event",
        "info",
        ev.start,
        now,
        event_id=ev.id,
        rule=hit.rule.name,
        label=hit.label,
        confidence=round(hit.confidence, 3),
        site=ev.site,
    )
