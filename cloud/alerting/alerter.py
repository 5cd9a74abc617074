"""The evaluator: feeds the engine from ingest, records its changes in SQL, decides what is sent.

Threads: ingest's committer calls ``observe`` once per committed batch (cheap: a lock and
a few dict updates, never raises); ``step`` runs once per tick in a worker thread and
returns the notices for the event loop to hand to the dispatchers, which never block.

Several cloud workers: each one's engine is fed and ticks, but only the holder of the SQL
lease records and notifies; a new holder first takes over the alerts open in SQL. Opening
is idempotent (one unresolved row per alert key), so a hand-over cannot duplicate alerts.
With a shared subscription each worker hears only part of the traffic, so the holder also
folds in every node's ``last_seen`` from the ``nodes`` table before judging.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from cloud.alerting.engine import AlertEngine, Change
from cloud.alerting.maintenance import Window, in_maintenance
from cloud.alerting.settings import AlertingConfig
from cloud.ingest.convert import Converted
from cloud.inventory import Inventory
from cloud.notify.messages import Notice
from cloud.storage.alerts_sql import AlertRow, AlertStore
from wire import Health, Metrics, Status

log = logging.getLogger(__name__)

LEASE = "alert-evaluator"
#: Device problems read from collector points: (measurement, field, bad value) -> problem.
_PROBLEMS: dict[tuple[str, str], tuple[object, str]] = {
    ("camera", "up"): (False, "stream_down"),
    ("camera", "frozen"): (True, "frozen"),
    ("ap", "reachable"): (False, "unreachable"),
}


@dataclass(slots=True)
class StepResult:
    notices: list[Notice] = field(default_factory=list)  # for people (maintenance and silence applied)
    records: list[Notice] = field(default_factory=list)  # for the outage data (everything)


def notice_of(row: AlertRow, kind: Literal["open", "reminder", "resolve"], at: float) -> Notice:
    return Notice(
        kind=kind,
        alert_id=row.id,
        key=row.key,
        scope=row.scope,
        subject=row.subject,
        commune=row.commune,
        cause=row.cause,
        severity=row.severity,
        started_at=row.started_at,
        at=at,
        duration_s=row.duration_s or 0.0,
        flaps=row.flaps,
        down=row.down,
        total=row.total,
        problem=row.problem,
        members=row.members,
    )


class Alerter:
    def __init__(
        self,
        cfg: AlertingConfig,
        inventory: Inventory,
        store: AlertStore,
        holder: str,
        *,
        last_seen_source: Callable[[], dict[str, tuple[str, float]]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.inventory = inventory
        self.store = store
        self.holder = holder
        self.engine = AlertEngine(cfg, inventory)
        self.leader = False
        self.last_seen_source = last_seen_source
        self._lock = threading.Lock()
        self._windows: list[Window] = []
        self._windows_at = -1e18
        self._lease_at = -1e18
        self._lease_ok = False

    # ------------------------------------------------------------------ feed (ingest thread)
    def observe(self, items: Iterable[tuple[Converted, float]]) -> None:
        """What one committed batch tells about nodes; must never disturb ingest."""
        try:
            with self._lock:
                for res, at in items:
                    self._observe_one(res, at)
        except Exception:
            log.exception("alerting could not read an ingest batch; judgement continues")

    def _observe_one(self, res: Converted, at: float) -> None:
        msg = res.message
        eng = self.engine
        if isinstance(msg, Status):
            eng.status(
                res.node,
                res.commune,
                msg.state,
                msg.reason,
                at,
                session=msg.session,
                health_interval_s=msg.health_interval_s,
            )
            return
        eng.seen(res.node, res.commune, at)
        if isinstance(msg, Metrics):
            for p in msg.points:
                for fname, value in p.fields.items():
                    rule = _PROBLEMS.get((p.measurement, fname))
                    if rule is not None:
                        bad, problem = rule
                        eng.device_problem(p.device, problem, bool(value) == bad, at)
        elif isinstance(msg, Health) and not msg.replay:
            eng.device_problem(res.node, "outbox_backlog", msg.outbox_oldest_s > self.cfg.backlog_warn_s, at)
            skew = abs(msg.ts.timestamp() - at)
            eng.device_problem(res.node, "clock_skew", skew > self.cfg.clock_skew_warn_s, at)

    def broker(self, connected: bool, at: float) -> None:
        with self._lock:
            self.engine.broker(connected, at)

    # ------------------------------------------------------------------ judge (worker thread)
    def step(self, now: float, broker_connected: bool) -> StepResult:
        """One tick: lease, judge, record, decide notices. Blocking (SQL): run it in a thread."""
        out = StepResult()
        if now - self._lease_at >= self.cfg.lease_s / 3:  # renew a third of the way: one write per 5 s
            self._lease_at = now
            self._lease_ok = self.store.try_lease(LEASE, self.holder, now, self.cfg.lease_s)
        leader = self._lease_ok
        if leader and not self.leader:
            log.info("this worker (%s) now evaluates alerts", self.holder, extra={"holder": self.holder})
            with self._lock:
                for row in self.store.unresolved():
                    self.engine.restore(row.as_change())
        self.leader = leader
        seen = self.last_seen_source() if leader and self.last_seen_source is not None else {}
        with self._lock:
            for node, (commune, at) in seen.items():
                self.engine.seen(node, commune, at)
            self.engine.broker(broker_connected, now)
            changes = self.engine.tick(now)
        if not leader:
            return out
        if now - self._windows_at >= 5.0:
            self._windows = self.store.windows(now)
            self._windows_at = now
        for ch in changes:
            self._record(ch, now, out)
        self._remind(now, out)
        return out

    def refresh_windows(self) -> None:
        """Maintenance changed (API): read the windows at the next tick."""
        self._windows_at = -1e18

    def _quiet(self, row: AlertRow, now: float) -> bool:
        """Recorded but not sent: maintenance covers it, or someone silenced it."""
        if row.silenced_until is not None and now < row.silenced_until:
            return True
        if in_maintenance(self._windows, row.scope, row.subject, self.inventory, now):
            return True
        # a commune alert whose every silent node is in maintenance
        return bool(row.members) and all(
            in_maintenance(self._windows, "node", m, self.inventory, now) for m in row.members
        )

    def _record(self, ch: Change, now: float, out: StepResult) -> None:
        if ch.kind == "open":
            probe = self.store.apply(ch)
            if probe is None:
                return  # already open (another evaluator, or restored)
            quiet = self._quiet(probe, now)
            extra = {"alert_id": probe.id, "alert": ch.key, "cause": ch.cause.value, "commune": ch.commune}
            log.warning(
                "alert #%d opened: %s %s (%s)%s",
                probe.id,
                ch.scope.value,
                ch.subject,
                ch.cause.value,
                ", in maintenance: not sent" if quiet else "",
                extra=extra,
            )
            out.records.append(notice_of(probe, "open", now))
            if quiet:
                self.store.set_suppressed(probe.id)
            else:
                out.notices.append(notice_of(probe, "open", now))
                self.store.mark_notified(probe.id, now)
            return
        row = self.store.apply(ch)
        if row is None or ch.kind == "update":
            return
        log.info(
            "alert #%d resolved after %.0f s: %s %s",
            row.id,
            row.duration_s or 0.0,
            ch.scope.value,
            ch.subject,
            extra={"alert_id": row.id, "alert": ch.key, "duration_s": row.duration_s},
        )
        out.records.append(notice_of(row, "resolve", now))
        if row.notified_at is not None:  # nobody heard of it: nobody needs to hear it is over
            out.notices.append(notice_of(row, "resolve", now))

    def _remind(self, now: float, out: StepResult) -> None:
        for row in self.store.unresolved():
            if row.state != "open" or self._quiet(row, now):
                continue
            if row.notified_at is None:  # opened in maintenance and still down after it
                out.notices.append(notice_of(row, "open", now))
                self.store.mark_notified(row.id, now)
            elif self.cfg.reminder_s and now - row.notified_at >= self.cfg.reminder_s:
                out.notices.append(notice_of(row, "reminder", now))
                self.store.mark_notified(row.id, now, reminder=True)

    # ------------------------------------------------------------------ reading
    def summary(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return self.engine.summary()
