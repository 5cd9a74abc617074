"""Runs alerting inside a cloud process: ingest feed, evaluator tick, notifiers, outage data.

The runtime creates one ``AlertRunner`` next to its ingest worker; all the runner needs
from ingest is the worker's ``observers`` hook and its ``connected`` flag (so judgement
pauses while the cloud itself has lost the broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Literal, Protocol

from sqlalchemy import Connection

from cloud.alerting.alerter import LEASE, Alerter, StepResult
from cloud.alerting.outages import OutageRecorder
from cloud.alerting.states import state_lines
from cloud.audit.trail import AuditTrail
from cloud.config import CloudConfig
from cloud.events.announce import EventAnnouncer
from cloud.ingest.convert import Converted
from cloud.inventory import Inventory
from cloud.notify.base import Notifier
from cloud.notify.dispatch import Dispatcher
from cloud.notify.messages import Notice, event_url
from cloud.notify.registry import CloudLinks, build_notifiers
from cloud.storage.alerts_sql import AlertStore
from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.lineproto import join
from cloud.storage.notice_outbox import SqlNoticeQueue
from cloud.storage.oauth_tokens import OAuthTokenStore
from cloud.storage.sql import SqlStore
from wire.topics import Channel

log = logging.getLogger(__name__)


class _Worker(Protocol):
    @property
    def connected(self) -> bool: ...

    observers: list[Any]
    flood_observers: list[Any]

    def backlog_since(self) -> float | None: ...


class _ChannelTrouble:
    """A channel that cannot send (Zalo's token refused) is announced on the other channels,
    through the durable notice outbox like any alert."""

    def __init__(self, runner: AlertRunner) -> None:
        self.runner = runner

    def queue(self, conn: Connection, channel: str, notice: Notice) -> None:
        others = [n for n in self.runner.people.names if n != channel and n in self.runner.alert_names]
        if not others:
            log.error(
                "no other alert channel to tell that %s cannot send: add one (webhook, e-mail)", channel
            )
        SqlNoticeQueue.add(conn, others, notice, notice.at)

    def wake(self) -> None:
        self.runner.people.wake()


class AlertRunner:
    def __init__(
        self,
        cfg: CloudConfig,
        inventory: Inventory,
        sql: SqlStore,
        influx: InfluxClient,
        worker: _Worker,
        holder: str,
    ) -> None:
        self.cfg = cfg.alerting
        self.worker = worker
        self.inventory = inventory
        self.influx = influx
        self.database = cfg.influx.database
        self.sql = sql
        self.store = AlertStore(sql.engine)
        scaled_out = bool(cfg.mqtt.share_group)
        lang = self.cfg.language
        self.queue = SqlNoticeQueue(sql.engine)
        links = CloudLinks(OAuthTokenStore(sql.engine), holder, _ChannelTrouble(self))
        self.audit = AuditTrail(sql.engine)
        self.people = Dispatcher(
            build_notifiers(self.cfg.notify, lang, links),
            inventory,
            lang,
            self.queue,
            cfg.web.public_url,
            on_settled=self._settled,
        )
        # Police event notifications (issue 19): rules over labelled events, same channels and outbox.
        self.events = (
            EventAnnouncer(self.cfg.notify, sql.engine, self.people.wake)
            if self.cfg.notify.event_rules
            else None
        )
        self.public_url = cfg.web.public_url
        recorder = OutageRecorder(
            influx, cfg.influx.database, inventory, rollup_days=cfg.influx.retention.rollup_days
        )
        self.outages = Dispatcher([recorder], inventory, lang, self.queue)
        # Technician alerts skip the channels kept for police events (alerts: false).
        self.alert_names = [n for n in self.people.names if n in self.cfg.notify.alert_names]
        channels = {"people": self.alert_names, "records": self.outages.names}
        self.alerter = Alerter(
            self.cfg,
            inventory,
            self.store,
            holder,
            last_seen_source=sql.last_seen,  # every worker's (shared subscription, restarts)
            follow_last_seen=scaled_out,
            status_source=sql.node_statuses,
            outbox=lambda conn, who, notice, at: SqlNoticeQueue.add(conn, channels[who], notice, at),
            # a board that just connected sends nothing but its birth until a worker announces itself
            hold_s=cfg.mqtt.host_heartbeat_s,
        )
        self._task: asyncio.Task[None] | None = None
        worker.observers.append(self.observe)
        worker.flood_observers.append(self.alerter.flooding)

    def notify_counts(self) -> dict[str, int]:
        """Notices to people since start, all channels together (self-monitoring)."""
        stats = self.people.stats.values()
        return {
            "sent": sum(c.sent for c in stats),
            "failed_attempts": sum(c.failed_attempts for c in stats),
            "given_up": sum(c.given_up for c in stats),
            "problems": sum(p is not None for p in self.people.problems().values()),
        }

    def observe(self, items: Iterable[tuple[Converted, float]]) -> None:
        batch = list(items)
        self.alerter.observe(batch)
        if self.events is not None and any(res.channel == Channel.EVENT for res, _ in batch):
            self.events.poke()  # a board's labels arrive with its event

    async def _settled(
        self, n: Notifier, notice: Notice, outcome: Literal["sent", "failed"], error: str
    ) -> None:
        """Each police event notice sent (or given up) goes on the audit trail: who was told what."""
        if notice.kind != "event":
            return
        detail = {
            "rule": notice.rule,
            "notifier": n.name,
            "channel": n.kind,
            "to": n.audience,
            "label": notice.label,
            "confidence": notice.confidence,
            "camera": notice.subject,
            "event_start": notice.started_at,
            "url": event_url(self.public_url, notice.event_id),
        }
        if error:
            detail["error"] = error
        await asyncio.to_thread(
            self.audit.record,
            "system",
            "event_notified" if outcome == "sent" else "event_notify_failed",
            f"event:{notice.event_id}",
            commune=notice.commune,
            detail=detail,
        )

    async def start(self) -> None:
        self.people.start()
        self.outages.start()
        if self.events is not None:
            self.events.start()
        self._task = asyncio.create_task(self._loop(), name="alert-evaluator")

    async def _write_states(self, now: float) -> None:
        """The fleet's states for Grafana (lease holder only; best effort, next round repairs)."""
        active = await asyncio.to_thread(self.store.query, state="active", limit=10_000)
        lines = state_lines(self.alerter.device_states(), active, self.inventory, now)
        result = await self.influx.write(self.database, join(lines))
        if result.outcome is not WriteOutcome.OK:
            log.debug("device states not written (%s); next round", result.error)

    async def _loop(self) -> None:
        states_at = 0.0
        while True:
            started = time.monotonic()
            if self.cfg.states_s and self.alerter.leader and started - states_at >= self.cfg.states_s:
                states_at = started
                with contextlib.suppress(Exception):
                    await self._write_states(time.time())
            try:
                result = await asyncio.to_thread(
                    self.alerter.step, time.time(), self.worker.connected, self.worker.backlog_since()
                )
            except Exception as exc:  # SQL locked or gone: judge again next tick
                log.error("alert evaluation failed (%s: %s); retrying next tick", type(exc).__name__, exc)
            else:
                self._wake(result)
            await asyncio.sleep(max(0.0, self.cfg.tick_s - (time.monotonic() - started)))

    async def tick_now(self) -> None:
        """One evaluation right away (tests, and after an API change)."""
        self._wake(
            await asyncio.to_thread(
                self.alerter.step, time.time(), self.worker.connected, self.worker.backlog_since()
            )
        )

    def _wake(self, result: StepResult) -> None:
        """The step queued its notices in SQL with the alert changes; deliver them now."""
        if result.records:
            self.outages.wake()
        if result.notices:
            self.people.wake()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.events is not None:
            await self.events.stop()
        await self.people.stop(flush_s=2.0)
        await self.outages.stop(flush_s=2.0)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.release_lease, LEASE, self.alerter.holder)
