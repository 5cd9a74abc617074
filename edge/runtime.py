"""The agent: collectors and board health in, durable outbox in the middle, MQTT out.

Each start is a new session (a random id, Sparkplug's bdSeq): the cloud can tell a
restart from a gap, and ``seq`` restarts at 1. Sequence numbers are assigned when a
message enters the outbox, so they follow production order whatever happens to the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from commune_iot import __version__, logs
from edge.collectors.base import Collector
from edge.collectors.registry import resolve
from edge.config import ConfigError, EdgeConfig, load_config
from edge.delivery import Courier
from edge.health import AgentClock, BoardHealth
from edge.link import Link
from edge.outbox import Outbox, Priority, messages
from edge.update.layout import Layout
from wire import Health, Metrics, MotionEvent, Point, Status, UpdateReport, encode
from wire.messages import MAX_JSON_BYTES
from wire.topics import Channel, topic_for

log = logging.getLogger(__name__)

#: Pause before restarting a collector that raised; doubles up to the cap.
COLLECTOR_RESTART_S = (1.0, 60.0)


class Agent:
    """One edge agent. Build it from a config, ``await run()``; ``stop()`` or SIGTERM ends it."""

    def __init__(self, cfg: EdgeConfig) -> None:
        self.cfg = cfg
        self.session = secrets.token_hex(8)
        self.seq = 0
        self.clock = AgentClock()
        self.outbox = Outbox(
            cfg.outbox.path,
            max_messages=cfg.outbox.max_messages,
            max_bytes=cfg.outbox.max_bytes,
            max_age_s=cfg.outbox.max_age_s,
            sync=cfg.outbox.sync,
        )
        self.board = BoardHealth(cfg.outbox.path.parent)
        #: The install root when started by the update launcher (firmware_config/launcher).
        self.install = Layout.from_env()
        self._update_report = self._read_update_report()
        self.courier = Courier(self.outbox, session=self.session, window=cfg.outbox.inflight_window)
        self.link = Link(
            cfg.broker,
            client_id=cfg.client_id,
            status_topic=self._topic(Channel.STATUS),
            birth=lambda: self._status("online", "birth"),
            will=lambda: self._status("offline", "will"),
            listener=self.courier,
            inflight_window=cfg.outbox.inflight_window,
            hold_until_cloud=cfg.hold_until_cloud,
            birth_acked=self._birth_acked,
        )
        self.courier.link = self.link
        self.collectors: list[Collector] = [
            resolve(spec.type)(spec.options, node=cfg.node) for spec in cfg.collectors
        ]
        self._stop = asyncio.Event()

    # -- producing -------------------------------------------------------------------------

    def _topic(self, channel: Channel, suffix: str | None = None) -> str:
        return topic_for(self.cfg.commune, self.cfg.node, channel, suffix)

    def _envelope(self) -> dict[str, Any]:
        """Envelope of the next sequenced message. ``seq`` is only taken (``_taken``) once the
        message validated, so a collector's bad data never shows up as a gap at the cloud."""
        return {"node": self.cfg.node, "session": self.session, "seq": self.seq + 1, "ts": datetime.now(UTC)}

    def _taken(self, seq: int) -> None:
        self.seq = seq

    def _status(
        self, state: Literal["online", "offline"], reason: Literal["birth", "will", "shutdown"]
    ) -> bytes:
        return encode(
            Status(
                node=self.cfg.node,
                session=self.session,
                seq=0,
                ts=datetime.now(UTC),
                state=state,
                reason=reason,
                agent_version=__version__,
                devices=self.cfg.devices[:16],
                health_interval_s=self.cfg.health_interval_s,
                update=self._update_report if state == "online" else None,
            )
        )

    # -- self-update (edge/update) ------------------------------------------------------------

    def _read_update_report(self) -> UpdateReport | None:
        return self.install.report(__version__) if self.install is not None else None

    def _birth_acked(self) -> None:
        """The proof of health the launcher waits for before it keeps a new version."""
        if self.install is None:
            return
        try:
            self.install.mark_healthy(__version__, self.session)
        except OSError as exc:
            log.error("cannot write the health marker %s: %s", self.install.healthy_file, exc)

    def _check_update_report(self) -> None:
        """Publish a new birth when the last update's outcome changed (an update refused
        while this version runs, or kept by the launcher), so the cloud hears it now."""
        report = self._read_update_report()
        if report != self._update_report:
            self._update_report = report
            self.link.rebirth()

    def _put(
        self,
        channel: Channel,
        payload: bytes,
        priority: Priority,
        *,
        suffix: str | None = None,
        is_json: bool = True,
        created: float | None = None,
    ) -> None:
        self.outbox.put(
            self._topic(channel, suffix),
            payload,
            priority=priority,
            is_json=is_json,
            session=self.session,
            link_gen=self.link.stamp(),
            created=created,
        )
        self.courier.pump()

    def emit_metrics(self, points: Sequence[Point]) -> None:
        """Sink API: one ``metrics`` message, split when above the contract's limits
        (500 points, 64 KiB of JSON) so that the cloud never has to dead-letter it."""
        if not points:
            return
        for i in range(0, len(points), 500):
            self._emit_metrics_chunk(list(points[i : i + 500]))

    def _emit_metrics_chunk(self, points: list[Point]) -> None:
        msg = Metrics(**self._envelope(), points=points)
        payload = encode(msg)
        if len(payload) > MAX_JSON_BYTES and len(points) > 1:
            half = len(points) // 2
            self._emit_metrics_chunk(points[:half])
            self._emit_metrics_chunk(points[half:])
            return
        self._taken(msg.seq)
        self._put(Channel.METRICS, payload, Priority.METRICS, created=msg.ts.timestamp())

    def emit_event(self, event: Mapping[str, Any], jpeg: bytes | None = None) -> None:
        """Sink API: snapshot first (so the cloud can attach it), then the event."""
        fields = dict(event)
        if jpeg is not None:
            fields.setdefault("snapshot_sha256", hashlib.sha256(jpeg).hexdigest())
            fields.setdefault("snapshot_bytes", len(jpeg))
        msg = MotionEvent(**self._envelope(), **fields)  # validate before anything is stored
        self._taken(msg.seq)
        if jpeg is not None:
            self._put(
                Channel.SNAPSHOT,
                jpeg,
                Priority.EVENT,
                suffix=msg.event_id,
                is_json=False,
                created=msg.ts.timestamp(),
            )
        self._put(Channel.EVENT, encode(msg), Priority.EVENT, created=msg.ts.timestamp())

    def health(self) -> Health:
        self.outbox.expire()
        stats = self.outbox.stats()
        msg = Health(
            **self._envelope(),
            **self.board.read(),
            agent_uptime_s=self.clock.uptime_s(),
            outbox_depth=stats.depth,
            outbox_bytes=stats.bytes,
            outbox_oldest_s=round(stats.oldest_s, 3),
            outbox_dropped=stats.dropped,
        )
        self._taken(msg.seq)
        return msg

    # -- tasks -----------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        interval = self.cfg.health_interval_s
        next_at = time.monotonic()
        while True:
            try:
                self._check_update_report()
                msg = self.health()
                self._put(Channel.HEALTH, encode(msg), Priority.HEALTH, created=msg.ts.timestamp())
            except Exception:  # e.g. disk full: keep the heartbeat task alive and try again
                log.exception("could not produce or store a health message; trying again next interval")
            next_at += interval
            now = time.monotonic()
            if next_at < now:
                next_at = now + interval
            await asyncio.sleep(next_at - now)

    async def _supervise(self, collector: Collector) -> None:
        """Run a collector forever; restart it (with growing pauses) when it fails."""
        pause = COLLECTOR_RESTART_S[0]
        name = type(collector).__name__
        while True:
            started = time.monotonic()
            try:
                await collector.run(self)
                log.warning("collector %s for %s returned; restarting it", name, collector.device)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "collector %s for %s failed; restarting in %.0f s",
                    name,
                    collector.device,
                    pause,
                    extra={"device": collector.device},
                )
            if time.monotonic() - started > 10 * COLLECTOR_RESTART_S[1]:
                pause = COLLECTOR_RESTART_S[0]
            await asyncio.sleep(pause)
            pause = min(pause * 2, COLLECTOR_RESTART_S[1])

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        """Run until :meth:`stop` (or SIGTERM/SIGINT when on the main thread); return the exit code."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        pending = self.outbox.stats()
        log.info(
            "agent %s starting: session %s, %d collector(s), %s pending in outbox from earlier runs",
            self.cfg.node,
            self.session,
            len(self.collectors),
            messages(pending.depth),
            extra={"node": self.cfg.node, "session": self.session, "outbox": str(self.cfg.outbox.path)},
        )
        self.link.start()
        tasks = [asyncio.create_task(self._health_loop(), name="health")]
        tasks += [
            asyncio.create_task(self._supervise(c), name=f"collector-{i}")
            for i, c in enumerate(self.collectors)
        ]
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._shutdown()
        return 0

    async def _shutdown(self) -> None:
        flushed = await self.courier.drain(self.cfg.outbox.flush_on_shutdown_s)
        left = len(self.outbox)
        acked = await self.link.close(self._status("offline", "shutdown"))
        log.info(
            "agent %s stopped: offline status %s; %s left in outbox for the next start",
            self.cfg.node,
            "acknowledged by the broker" if acked else "not delivered (broker unreachable)",
            messages(left),
            extra={"flushed": flushed, "outbox_depth": left},
        )
        self.outbox.close()


def run_from_config(path: Path | None) -> int:
    """Entry point of ``commune-iot edge run`` and ``python -m edge``: 0 on orderly stop,
    2 on a configuration error, 1 when the outbox cannot be opened."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"commune-iot edge: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.log.level, json_lines=cfg.log.json_lines)
    try:
        agent = Agent(cfg)
    except (sqlite3.Error, OSError) as exc:
        log.error(
            "cannot open the outbox at %s: %s", cfg.outbox.path, exc, extra={"outbox": str(cfg.outbox.path)}
        )
        return 1
    return asyncio.run(agent.run())
