"""The evaluator: feeds the engine from ingest, records its changes in SQL, decides what is sent.

Threads: ingest's committer calls ``observe`` once per committed batch (cheap: a lock and
a few dict updates, never raises); ``step`` runs once per tick in a worker thread and
returns the notices for the event loop to hand to the dispatchers, which never block.

Several cloud workers: each one's engine is fed and ticks, but only the holder of the SQL
lease records and notifies; a new holder first takes over the alerts open in SQL, and
judges again what its own engine opened meanwhile (the old holder may have died before
recording it). Opening is idempotent (one unresolved row per alert key), so a hand-over
cannot duplicate alerts.
With a shared subscription each worker hears only part of the traffic, so every worker
folds in each node's ``last_seen`` and status in force from the ``nodes`` table before
judging (the evaluator judges on all of it; every process's API shows the same). A new holder
reads that table once in any case: a board that went silent while no evaluator ran
(the cloud was down) would otherwise never be judged, since nothing from it arrives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from sqlalchemy import Connection

from cloud.alerting.engine import AlertEngine, Change, Scope, Severity, State
from cloud.alerting.maintenance import Window, in_maintenance
from cloud.alerting.settings import AlertingConfig
from cloud.ingest.convert import Converted
from cloud.ingest.ratelimit import FloodReport
from cloud.inventory import Inventory
from cloud.notify.messages import Notice
from cloud.storage.alerts_sql import AlertRow, AlertStore
from cloud.storage.sql import NodeStatus
from wire import Health, Metrics, Point, Status
from wire.messages import TAMPER_SNAPSHOT_FIELD
from wire.topics import valid_id

log = logging.getLogger(__name__)

LEASE = "alert-evaluator"
#: Severity of each device problem a node can report. A village without Wi-Fi or a camera
#: without a picture is critical; a degraded picture or an SNMP agent that stopped
#: answering while the AP still pings is a warning; board housekeeping is information.
PROBLEM_SEVERITY: dict[str, Severity] = {
    "stream_down": Severity.CRITICAL,
    "unreachable": Severity.CRITICAL,
    "frozen": Severity.WARNING,
    "fps_low": Severity.WARNING,
    # covered, dark without IR, blurred or turned away: the stream is up but shows nothing useful
    "tampering": Severity.WARNING,
    "snmp_unreachable": Severity.WARNING,
    "outbox_backlog": Severity.INFO,
    "clock_skew": Severity.INFO,
    # the board sends more than its rate limit (ingest throttles it): a bug or tampering
    "flooding": Severity.WARNING,
}


def point_problems(p: Point, fps_low_ratio: float) -> list[tuple[str, bool, str]]:
    """(problem, active, detail) that one collector point reports or clears.

    A point only speaks about what its fields say: a camera point without ``nominal_fps``
    neither raises nor clears a frame-rate problem. A stream that is down is not also
    frozen or slow (one alert, the root one). Nor is a tampered camera also frozen: a covered
    lens or a camera facing a wall sends the same flat picture over and over, which the board
    also calls frozen after ``frozen_after_s``; the tampering warning (with its picture) is the
    one alert, and "frozen (power-cycle it)" would send a technician to do the wrong thing.
    """
    f = p.fields
    out: list[tuple[str, bool, str]] = []
    if p.measurement == "camera" and "up" in f:
        up = bool(f["up"])
        tampered = up and bool(f.get("tampering"))
        out.append(("stream_down", not up, ""))
        if "frozen" in f or not up:
            out.append(("frozen", up and bool(f.get("frozen")) and not tampered, ""))
        fps, nominal = f.get("fps"), f.get("nominal_fps")
        if isinstance(fps, int | float) and isinstance(nominal, int | float) and nominal > 0:
            low = up and fps < fps_low_ratio * nominal
            out.append(("fps_low", low, f"{fps:.1f}/{nominal:.0f} fps" if low else ""))
        elif not up:
            out.append(("fps_low", False, ""))
        if "tampering" in f or not up:
            kind = str(f.get("tampering") or "") if up else ""
            out.append(("tampering", bool(kind), kind))
    elif p.measurement == "ap" and "reachable" in f:
        snmp_ok = bool(f["reachable"])
        ping = f.get("ping")
        pings = ping is not None and bool(ping)
        # SNMP silent but the AP answers ping: the radio may serve clients, the agent is broken
        out.append(("unreachable", not snmp_ok and not pings, ""))
        out.append(("snmp_unreachable", not snmp_ok and pings, ""))
    return out


Audience = Literal["people", "records"]
Reminder = Literal["open", "reminder"]  # what an alert already open may still need to say
#: Queues a notice durably inside the transaction that records its alert change.
Outbox = Callable[[Connection, Audience, Notice, float], None]


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
        detail=row.detail,
        ended_at=row.ended_at,
        snapshot_sha256=row.snapshot_sha256 or "",
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
        follow_last_seen: bool = False,
        status_source: Callable[[], list[NodeStatus]] | None = None,
        outbox: Outbox | None = None,
        hold_s: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.inventory = inventory
        self.store = store
        self.holder = holder
        self.engine = AlertEngine(cfg, inventory, hold_s=hold_s)
        self.leader = False
        self.last_seen_source = last_seen_source
        self.follow_last_seen = follow_last_seen
        self.status_source = status_source
        self.outbox = outbox
        self._lock = threading.Lock()
        self._windows: list[Window] = []
        self._windows_at = -1e18
        self._lease_at = -1e18
        self._lease_ok = False
        self._inventory_version = -1  # the inventory this engine last followed

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
        if self.inventory.is_retired(res.node):
            return  # decommissioned: its retained status, or a message the broker let through
        if isinstance(msg, Status):
            eng.status(
                res.node,
                res.commune,
                msg.state,
                msg.reason,
                at,
                session=msg.session,
                stamp=msg.ts.timestamp(),
                health_interval_s=msg.health_interval_s,
            )
            return
        eng.seen(res.node, res.commune, at)
        if isinstance(msg, Metrics):
            if msg.replay:
                return  # the past: the device's state now comes with live data
            for p in msg.points:
                if self.inventory.is_retired(p.device):
                    continue  # a device decommissioned from a board that still polls it
                # a tampered camera's picture (newer agents): the technician sees what it sees
                pic = str(p.fields.get(TAMPER_SNAPSHOT_FIELD) or "") if p.measurement == "camera" else ""
                for problem, active, detail in point_problems(p, self.cfg.fps_low_ratio):
                    eng.device_problem(
                        p.device,
                        problem,
                        active,
                        at,
                        detail,
                        PROBLEM_SEVERITY[problem],
                        snapshot_sha256=pic if problem == "tampering" else "",
                    )
        elif isinstance(msg, Health) and not msg.replay:
            backlog = msg.outbox_oldest_s > self.cfg.backlog_warn_s
            eng.device_problem(
                res.node,
                "outbox_backlog",
                backlog,
                at,
                f"{msg.outbox_depth} msg, {msg.outbox_oldest_s:.0f} s" if backlog else "",
                PROBLEM_SEVERITY["outbox_backlog"],
            )
            skew = msg.ts.timestamp() - at
            skewed = abs(skew) > self.cfg.clock_skew_warn_s
            eng.device_problem(
                res.node,
                "clock_skew",
                skewed,
                at,
                f"{skew:+.0f} s" if skewed else "",
                PROBLEM_SEVERITY["clock_skew"],
            )

    def flooding(self, reports: Iterable[FloodReport], at: float) -> None:
        """Ingest throttles (or stopped throttling) these nodes: a ``flooding`` device problem."""
        try:
            with self._lock:
                for rep in reports:
                    if not valid_id(rep.node):
                        continue
                    detail = ""
                    if rep.active:
                        detail = f"{rep.rate_per_s:.0f} msg/s, {rep.dropped_total} throttled"
                    self.engine.device_problem(
                        rep.node, "flooding", rep.active, at, detail, PROBLEM_SEVERITY["flooding"]
                    )
        except Exception:
            log.exception("alerting could not read a flood report; judgement continues")

    def broker(self, connected: bool, at: float) -> None:
        with self._lock:
            self.engine.broker(connected, at)

    # ------------------------------------------------------------------ judge (worker thread)
    def step(self, now: float, broker_connected: bool, heard_until: float | None = None) -> StepResult:
        """One tick: lease, judge, record, decide notices. Blocking (SQL): run it in a thread.

        ``heard_until``: the receive time of ingest's oldest uncommitted message, if any (a cloud
        short of CPU must not take its own backlog for silent boards)."""
        out = StepResult()
        if now - self._lease_at >= self.cfg.lease_s / 3:  # renew a third of the way: one write per 5 s
            self._lease_at = now
            self._lease_ok = self.store.try_lease(LEASE, self.holder, now, self.cfg.lease_s)
        leader = self._lease_ok
        taking_over = leader and not self.leader
        rejudge: set[str] = set()
        if taking_over:
            log.info("this worker (%s) now evaluates alerts", self.holder, extra={"holder": self.holder})
            rows = self.store.unresolved()
            recorded = {row.key for row in rows}
            with self._lock:
                # What this engine opened while another worker held the lease was never
                # recorded (the holder may have died before judging it): judge those nodes
                # again from every worker's last-seen, since this one heard only part of
                # the traffic; still down, they are recorded and announced below.
                for ch in self.engine.open_alerts():
                    if ch.key not in recorded:
                        self.engine.forget_alert(ch.key)
                        if ch.scope is not Scope.DEVICE:
                            rejudge.update(ch.members if ch.scope is Scope.COMMUNE else (ch.subject,))
                for row in rows:
                    self.engine.restore(row.as_change())
        self.leader = leader
        # Scaled out, every worker hears part of the traffic: each one (not only the evaluator)
        # folds in what the others stored, so every process's API tells what the evaluator judges.
        source = self.last_seen_source
        seen = source() if source is not None and (taking_over or self.follow_last_seen) else {}
        statuses = self.status_source() if self.status_source is not None and self.follow_last_seen else []
        with self._lock:
            followed: list[Change] = []
            if taking_over or self.inventory.version != self._inventory_version:
                self._inventory_version = self.inventory.version
                followed = self.engine.follow_inventory(now)
            for st in statuses:
                if not self.inventory.is_retired(st.node):
                    self.engine.folded_status(st.node, st.commune, st.state, st.reason, st.at, st.stamp)
            for node, (commune, at) in seen.items():
                if self.inventory.is_retired(node):
                    continue  # decommissioned: its history stays, nobody watches it
                if now - at > self.cfg.forget_after_s and self.inventory.node(node) is None:
                    continue  # a stranger heard once, long ago: not ours to watch
                if taking_over and node not in rejudge:  # known, not alive: a restored alert stays open
                    self.engine.remember(node, commune, at)  # boards gone quiet while nobody judged
                else:
                    self.engine.seen(node, commune, at)
            self.engine.broker(broker_connected, now)
            changes = followed + self.engine.tick(now, heard_until)
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
        """Record one change and queue its notices in the same transaction."""
        if ch.kind == "update":
            self.store.apply(ch)
            return
        done = StepResult()

        def follow(conn: Connection, row: AlertRow) -> None:
            done.notices.clear()
            done.records.clear()
            kind: Literal["open", "resolve"] = "open" if ch.kind == "open" else "resolve"
            self._queue(conn, "records", notice_of(row, kind, now), done)
            if ch.kind == "open":
                if self._quiet(row, now):
                    self.store.set_suppressed(conn, row.id)
                else:
                    self._queue(conn, "people", notice_of(row, "open", now), done)
                    self.store.set_notified(conn, row.id, now)
            elif row.notified_at is not None and not ch.decommissioned:  # nobody heard of it, or
                # it is over because the board is gone: nobody needs to hear "back up"
                self._queue(conn, "people", notice_of(row, "resolve", now), done)

        row = self.store.apply(ch, then=follow)
        if row is None:
            return  # already recorded (another evaluator, or restored)
        out.notices += done.notices
        out.records += done.records
        extra = {"alert_id": row.id, "alert": ch.key, "cause": ch.cause.value, "commune": ch.commune}
        if ch.kind == "open":
            log.warning(
                "alert #%d opened: %s %s (%s%s)%s",
                row.id,
                ch.scope.value,
                ch.subject,
                ch.problem or ch.cause.value,
                f": {ch.detail}" if ch.detail else "",
                "" if done.notices else ", in maintenance or silenced: not sent",
                extra=extra,
            )
        else:
            log.info(
                "alert #%d resolved after %.0f s: %s %s%s",
                row.id,
                row.duration_s or 0.0,
                ch.scope.value,
                ch.subject,
                " (decommissioned)" if ch.decommissioned else "",
                extra={**extra, "duration_s": row.duration_s},
            )

    def _announce(
        self,
        conn: Connection,
        *,
        row: AlertRow,
        kind: Literal["open", "reminder"],
        now: float,
        out: StepResult,
    ) -> None:
        self._queue(conn, "people", notice_of(row, kind, now), out)
        self.store.set_notified(conn, row.id, now, reminder=kind == "reminder")

    def _queue(self, conn: Connection, who: Audience, notice: Notice, out: StepResult) -> None:
        (out.notices if who == "people" else out.records).append(notice)
        if self.outbox is not None:
            self.outbox(conn, who, notice, notice.at)

    def _remind(self, now: float, out: StepResult) -> None:
        for row in self.store.unresolved():
            if row.state != "open" or self._quiet(row, now):
                continue
            if row.notified_at is None:  # opened in maintenance and still down after it
                kind: Reminder = "open"
            elif self.cfg.reminder_s and now - row.notified_at >= self.cfg.reminder_s:
                kind = "reminder"
            else:
                continue

            self.store.transaction(partial(self._announce, row=row, kind=kind, now=now, out=out))

    # ------------------------------------------------------------------ reading
    def summary(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return self.engine.summary()

    def judgement(self, devices: Iterable[str]) -> dict[str, tuple[State, State]]:
        """Device -> (its board's state, its own state), as this evaluator judges them now."""
        with self._lock:
            return {d: self.engine.judge(d) for d in devices}

    def details(self, devices: Iterable[str]) -> dict[str, tuple[State, State, dict[str, str], float | None]]:
        """Device -> (its board's state, its own, its problems now with their figures, its
        board's last message): what the console shows, in one look at the engine."""
        with self._lock:
            out = {}
            for dev in devices:
                d = self.inventory.device(dev)
                board, own = self.engine.judge(dev)
                seen = self.engine.last_seen(d.node if d is not None else dev)
                out[dev] = (board, own, self.engine.device_problems(dev), seen)
            return out

    def device_states(self) -> list[tuple[str, State, float | None]]:
        """(device, state, its node's last message) for every inventory device."""
        with self._lock:
            return [
                (d.id, self.engine.device_state(d.id), self.engine.last_seen(d.node))
                for d in self.inventory.devices
            ]
