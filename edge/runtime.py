"""The agent: collectors and board health in, durable outbox in the middle, MQTT out.

Each start is a new session (a random id, Sparkplug's bdSeq): the cloud can tell a
restart from a gap, and ``seq`` restarts at 1. Sequence numbers are assigned when a
message enters the outbox, so they follow production order whatever happens to the link.

The cloud's control plane (``edge.control``) sits beside the collectors: it may hand the
agent a new configuration (:meth:`Agent.apply_config` applies it live, restarting only the
collectors that cannot take it) and ask it things through commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge.clock import SyncClock
from edge.collectors.base import Collector, Sink
from edge.collectors.registry import RegistryError, resolve
from edge.config import CollectorSpec, ConfigError, EdgeConfig, load_config
from edge.control.commands import diagnostics_base
from edge.control.plane import Control
from edge.delivery import Courier
from edge.health import AgentClock, BoardHealth
from edge.link import Link
from edge.outbox import Outbox, Priority, messages
from edge.update.layout import Layout
from edge.watchdog import LoopWatchdog
from wire import Health, Metrics, MotionEvent, Point, Status, UpdateReport, encode, logs
from wire.messages import MAX_JSON_BYTES
from wire.topics import Channel, beat_topic, topic_for
from wire.version import __version__

log = logging.getLogger(__name__)

#: Pause before restarting a collector that raised; doubles up to the cap.
COLLECTOR_RESTART_S = (1.0, 60.0)
#: Exit code of an agent that restarts itself (``restart`` command) where it cannot exec.
EXIT_RESTART = 75


@dataclass
class _Running:
    """One configured collector and the task that supervises it (None until ``run``)."""

    spec: CollectorSpec
    collector: Collector
    task: asyncio.Task[None] | None = None


class Agent:
    """One edge agent. Build it from a config, ``await run()``; ``stop()`` or SIGTERM ends it."""

    def __init__(self, cfg: EdgeConfig) -> None:
        #: The board's own file; ``cfg`` is what runs (the cloud's desired version, if any).
        self.local = cfg
        self.control = Control(cfg) if cfg.control.enabled else None
        self.cfg = self.control.startup_config() if self.control is not None else cfg
        self.session = secrets.token_hex(8)
        self.seq = 0
        self.clock = AgentClock()
        self.sync = SyncClock(cfg.clock.sync_check)
        self._times_corrected = False
        self.outbox = Outbox(
            cfg.outbox.path,
            max_messages=cfg.outbox.max_messages,
            max_bytes=cfg.outbox.max_bytes,
            max_age_s=cfg.outbox.max_age_s,
            sync=cfg.outbox.sync,
            commit_interval_s=cfg.outbox.commit_interval_s,
        )
        self.board = BoardHealth(cfg.outbox.path.parent)
        #: The install root when started by the update launcher (firmware_config/launcher).
        self.install = Layout.from_env()
        self._update_report = self._read_update_report()
        self.courier = Courier(
            self.outbox, session=self.session, window=cfg.outbox.inflight_window, compress=cfg.broker.compress
        )
        self.link = Link(
            cfg.broker,
            client_id=cfg.client_id,
            status_topic=self._topic(Channel.STATUS),
            birth=lambda stamp: self._status("online", "birth", stamp),
            will=lambda stamp: self._status("offline", "will", stamp),
            stamp=self.outbox.status_stamp,
            listener=self.courier,
            inflight_window=cfg.outbox.inflight_window,
            hold_until_cloud=cfg.hold_until_cloud,
            subscriptions=self.control.topics if self.control is not None else (),
            on_message=self.control.on_message if self.control is not None else None,
            birth_acked=self._birth_acked,
            beat_topic=beat_topic(cfg.node),
        )
        self.courier.link = self.link
        try:
            self._running = [_Running(spec, self._collector(spec)) for spec in self.cfg.collectors]
        except RegistryError as exc:
            if self.cfg is cfg:
                raise
            log.error("cannot run the cloud's configuration (%s): starting from the local file", exc)
            self.cfg = cfg
            self._running = [_Running(spec, self._collector(spec)) for spec in cfg.collectors]
        self._stop = asyncio.Event()
        self._health_changed = asyncio.Event()
        self.watchdog = (
            LoopWatchdog(
                cfg.watchdog_s,
                lambda: 2 * self.cfg.health_interval_s + cfg.watchdog_s,
                self.link.client.socket,
            )
            if cfg.watchdog_s > 0
            else None
        )
        self.restart_requested = False

    def _collector(self, spec: CollectorSpec) -> Collector:
        return resolve(spec.type)(spec.options, node=self.cfg.node)

    def collectors(self) -> list[Collector]:
        return [r.collector for r in self._running]

    @property
    def sink(self) -> Sink:
        return self

    @property
    def config_version(self) -> int:
        return self.control.version if self.control is not None else 0

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
        self,
        state: Literal["online", "offline"],
        reason: Literal["birth", "will", "shutdown"],
        stamp: float,
    ) -> bytes:
        """A status message; ``stamp`` orders it (one per connection, see ``Outbox.status_stamp``)."""
        return encode(
            Status(
                node=self.cfg.node,
                session=self.session,
                seq=0,
                ts=datetime.fromtimestamp(stamp, UTC),
                state=state,
                reason=reason,
                agent_version=__version__,
                devices=self.cfg.devices[:16],
                health_interval_s=self.cfg.health_interval_s,
                config_version=self.config_version,
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
        synced = self._check_clock()
        self.outbox.put(
            self._topic(channel, suffix),
            payload,
            priority=priority,
            is_json=is_json,
            session=self.session,
            link_gen=self.link.stamp(),
            created=created,
            unsynced=None if synced else (self.sync.offset(), self.sync.boot),
        )
        self.courier.pump()

    def _check_clock(self) -> bool:
        """True once the clock is trusted; the first time, correct and release what was held."""
        if self._times_corrected:
            return True
        if not self.sync.synced():
            return False
        self._times_corrected = True
        held = self.outbox.held()
        if held:
            corrected, dropped = self.outbox.correct_times(self.sync.boot, self.sync.offset())
            log.warning(
                "the clock is synchronised: corrected the time of %s stamped before, dropped %d of an "
                "earlier boot that cannot be placed",
                messages(corrected),
                dropped,
                extra={"corrected": corrected, "dropped": dropped},
            )
        self.courier.pump()
        return True

    async def _commit_loop(self) -> None:
        """Commit the outbox's group transaction on time even when nothing else touches it."""
        interval = self.cfg.outbox.commit_interval_s
        while interval > 0:
            await asyncio.sleep(interval)
            try:
                self.outbox.flush()
            except sqlite3.Error:
                log.exception("could not commit the outbox; trying again next interval")

    async def _clock_loop(self) -> None:
        """Watch for the clock's synchronisation while it is not (held messages wait for it)."""
        logged: float | None = None
        while not self._check_clock():
            if logged is None or time.monotonic() - logged > 600:
                logged = time.monotonic()
                log.warning(
                    "the clock is not synchronised (check %s): %s held until it is; check NTP",
                    self.sync.check,
                    messages(self.outbox.held()),
                )
            await asyncio.sleep(1.0)

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
            agent_version=__version__,
            config_version=self.config_version,
        )
        self._taken(msg.seq)
        return msg

    # -- the control plane's side of the agent ---------------------------------------------

    def emit_control(self, channel: Channel, payload: bytes) -> None:
        """A report or a command reply: through the outbox, like all data."""
        self._put(channel, payload, Priority.EVENT)

    def emit_snapshot(self, suffix: str, jpeg: bytes) -> None:
        self._put(Channel.SNAPSHOT, jpeg, Priority.EVENT, suffix=suffix, is_json=False)

    def rebirth(self) -> None:
        """Birth certificate and configuration report again (Sparkplug's rebirth)."""
        self.link.rebirth()
        if self.control is not None:
            self.control.report()

    def request_restart(self) -> None:
        self.restart_requested = True
        self.stop()

    def diagnostics(self) -> dict[str, Any]:
        stats = self.outbox.stats()
        board = self.board.read()
        return {
            **diagnostics_base(),
            "node": self.cfg.node,
            "session": self.session,
            "config_version": self.config_version,
            "agent_uptime_s": self.clock.uptime_s(),
            "board_uptime_s": board.get("board_uptime_s"),
            "disk_used_pct": board.get("disk_used_pct"),
            "disk_free_mb": board.get("disk_free_mb"),
            "mem_used_pct": board.get("mem_used_pct"),
            "temp_c": board.get("temp_c"),
            "outbox": {
                "depth": stats.depth,
                "bytes": stats.bytes,
                "oldest_s": round(stats.oldest_s, 3),
                "dropped": stats.dropped,
            },
            "broker": {"url": self.link.url, "connected": self.link.connected},
            "collectors": [
                {"type": r.spec.type, "device": r.collector.device, "ok": s.ok, "detail": s.detail}
                for r in self._running
                for s in [r.collector.job_state()]
            ],
        }

    async def apply_config(self, cfg: EdgeConfig) -> None:
        """Run ``cfg`` from now on: health interval and log level at once; each collector takes
        its new options live when it can (``Collector.reconfigure``), else it is restarted with
        them; collectors added or removed start or stop. Every new collector is built before
        anything changes, so one that cannot be built (the error is raised) changes nothing."""
        changed = {
            i: self._collector(spec)
            for i, spec in enumerate(cfg.collectors)
            if i >= len(self._running) or self._running[i].spec.model_dump() != spec.model_dump()
        }
        old, self.cfg = self.cfg, cfg
        if cfg.health_interval_s != old.health_interval_s:
            self._health_changed.set()
        if cfg.log.level != old.log.level:
            logging.getLogger().setLevel(cfg.log.level)
        running: list[_Running] = []
        for i, spec in enumerate(cfg.collectors):
            if i not in changed:
                running.append(self._running[i])
                continue
            if i < len(self._running):
                current = self._running[i]
                if current.spec.type == spec.type and self._reconfigure(current.collector, spec):
                    current.spec = spec
                    running.append(current)
                    continue
                await self._halt(current)
            running.append(self._start(_Running(spec, changed[i]), i))
        for current in self._running[len(cfg.collectors) :]:
            await self._halt(current)
        self._running = running

    @staticmethod
    def _reconfigure(collector: Collector, spec: CollectorSpec) -> bool:
        try:
            return collector.reconfigure(spec.options)
        except Exception:
            log.exception("collector %s could not take its new options live; restarting it", spec.type)
            return False

    def _start(self, run: _Running, index: int) -> _Running:
        if self._started:
            run.task = asyncio.create_task(self._supervise(run.collector), name=f"collector-{index}")
        return run

    @staticmethod
    async def _halt(run: _Running) -> None:
        if run.task is not None:
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    # -- tasks -----------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        next_at = time.monotonic()
        while True:
            try:
                self._check_update_report()
                msg = self.health()
                self._put(Channel.HEALTH, encode(msg), Priority.HEALTH, created=msg.ts.timestamp())
            except Exception:  # e.g. disk full: keep the heartbeat task alive and try again
                log.exception("could not produce or store a health message; trying again next interval")
            if self.watchdog is not None:  # the task runs (a restart would not cure a full disk)
                self.watchdog.health_produced()
            interval = self.cfg.health_interval_s
            next_at += interval
            now = time.monotonic()
            if next_at < now:
                next_at = now + interval
            self._health_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._health_changed.wait(), next_at - now)
            if self._health_changed.is_set():  # a new interval starts now
                next_at = time.monotonic()

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
            "agent %s %s starting: session %s, configuration version %d, %d collector(s), %s pending in "
            "outbox from earlier runs",
            self.cfg.node,
            __version__,
            self.session,
            self.config_version,
            len(self._running),
            messages(pending.depth),
            extra={"node": self.cfg.node, "session": self.session, "outbox": str(self.cfg.outbox.path)},
        )
        self._started = True
        self.link.start()
        if self.control is not None:
            self.control.start(self)
        health = asyncio.create_task(self._health_loop(), name="health")
        clock = asyncio.create_task(self._clock_loop(), name="clock")
        commits = asyncio.create_task(self._commit_loop(), name="commits")
        tasks = [health, clock, commits]
        if self.watchdog is not None:
            tasks.append(asyncio.create_task(self.watchdog.beat(), name="watchdog"))
            self.watchdog.start()
        for i, run in enumerate(self._running):
            run.task = asyncio.create_task(self._supervise(run.collector), name=f"collector-{i}")
        try:
            await self._stop.wait()
        finally:
            if self.watchdog is not None:
                self.watchdog.stop()  # an orderly stop is systemd's to time (TimeoutStopSec)
            if self.control is not None:
                await self.control.stop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for run in self._running:
                await self._halt(run)
            await self._shutdown()
            if self.control is not None:
                self.control.close()
        return EXIT_RESTART if self.restart_requested else 0

    _started = False

    async def _shutdown(self) -> None:
        flushed = await self.courier.drain(self.cfg.outbox.flush_on_shutdown_s)
        left = len(self.outbox)
        acked = await self.link.close(self._status("offline", "shutdown", self.outbox.status_stamp()))
        log.info(
            "agent %s stopped: offline status %s; %s left in outbox for the next start",
            self.cfg.node,
            "acknowledged by the broker" if acked else "not delivered (broker unreachable)",
            messages(left),
            # the session's last sequence number: what the cloud's last_seq must reach
            extra={"flushed": flushed, "outbox_depth": left, "session": self.session, "last_seq": self.seq},
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
    code = asyncio.run(agent.run())
    if agent.restart_requested:
        log.info("restarting the agent (%s)", " ".join(sys.orig_argv))
        logging.shutdown()
        os.execv(sys.executable, sys.orig_argv)  # same process id: systemd sees no exit
    return code
