"""Wires one cloud process together: the live inventory, stores, an ingest worker and the drainer.

Used by ``serve`` (inside the FastAPI lifespan), ``ingest_only``, the benchmark and the
tests, so all of them run exactly the same ingest path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

from cloud.alerting.runner import AlertRunner
from cloud.config import CloudConfig
from cloud.ingest.consumer import IngestWorker
from cloud.ingest.convert import Converter
from cloud.ingest.drainer import Drainer
from cloud.ingest.stats import Stats, render
from cloud.inventory import Inventory
from cloud.onboarding.live import LiveInventory
from cloud.selfmon import SelfMonitor
from cloud.storage.influx import InfluxClient
from cloud.storage.journal import Journal
from cloud.storage.snapshots import SnapshotStore
from cloud.storage.sql import SqlStore

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, cfg: CloudConfig, *, role: str = "serve") -> None:
        self.cfg = cfg
        self.client_id = cfg.mqtt.effective_client_id(role)
        self.stats = Stats()
        self.sql = SqlStore(
            cfg.sql.url, password=cfg.sql.password_value(), busy_timeout_ms=cfg.sql.busy_timeout_ms
        )
        # The inventory in SQL (seeded from cfg.inventory when empty); every part below holds
        # this one object, which the poller keeps current (cloud.onboarding.live).
        self.live = LiveInventory.open(self.sql.engine, cfg.inventory, by=self.client_id)
        self.inventory: Inventory = self.live.inventory
        spool = cfg.influx.spool_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", self.client_id)
        self.journal = Journal(spool)
        self.snapshots = SnapshotStore(cfg.snapshots_dir)
        self.influx = InfluxClient(
            cfg.influx.url,
            username=cfg.influx.username,
            password=cfg.influx.password_value(),
            timeout_s=cfg.influx.timeout_s,
        )
        self.worker = IngestWorker(
            cfg.mqtt,
            self.client_id,
            Converter(self.inventory),
            self.journal,
            self.sql,
            self.snapshots,
            self.stats,
            state_flush_interval_s=cfg.sql.state_flush_interval_s,
            limits=cfg.ingest.rate_limit,
        )
        self.drainer = Drainer(cfg.influx, self.influx, self.journal, self.stats)
        # Alerting (issue 3): fed by the worker's observers hook, judged on its own task.
        self.alerting = (
            AlertRunner(cfg, self.inventory, self.sql, self.influx, self.worker, self.client_id)
            if cfg.alerting.enabled
            else None
        )
        if self.alerting is None and cfg.alerting.notify.event_rules:
            log.warning(
                "alerting.enabled is false: the %d police event rule(s) in alerting.notify.event_rules "
                "send nothing (they use the alert channels)",
                len(cfg.alerting.notify.event_rules),
            )
        self.selfmon = SelfMonitor(
            self.client_id,
            self.stats,
            self.journal,
            self.influx,
            cfg.influx.database,
            connected=lambda: self.worker.connected,
            notify_stats=self.alerting.notify_counts if self.alerting is not None else None,
            interval_s=cfg.influx.self_metrics_s or 10.0,
        )
        self._selfmon_task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._inventory_task: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.inventory.counts().items()))
        log.info(
            "cloud ingest starting: inventory version %d (%s), broker %s, InfluxDB %s/%s, "
            "journal %s (%s lines pending)",
            self.inventory.version,
            counts,
            self.cfg.mqtt.url,
            self.cfg.influx.url,
            self.cfg.influx.database,
            self.journal.dir,
            f"{self.journal.depth_lines:,}",
        )
        self._drain_task = asyncio.create_task(self.drainer.run(), name="influx-drainer")
        self._inventory_task = asyncio.create_task(
            self.live.run(self.cfg.inventory_poll_s), name="inventory-poll"
        )
        if self.cfg.influx.self_metrics_s:
            self._selfmon_task = asyncio.create_task(self.selfmon.run(), name="self-metrics")
        self.worker.start()
        if self.alerting is not None:
            await self.alerting.start()

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop receiving, commit and ack what was received, try to flush the journal. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.alerting is not None:
            await self.alerting.stop()
        await asyncio.to_thread(self.worker.stop)
        for task in (self._selfmon_task, self._inventory_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._drain_task is not None:
            self._drain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
        with contextlib.suppress(Exception):
            await self.drainer.drain_once(drain_timeout_s)
        if self.journal.depth_lines:
            log.warning(
                "%d lines stay in the journal %s; sent on next start",
                self.journal.depth_lines,
                self.journal.dir,
            )
        self.journal.close()
        await self.influx.aclose()
        self.sql.dispose()
        log.info("cloud ingest stopped (%s)", self.client_id)

    async def readiness(self) -> dict[str, str | None]:
        """Each dependency -> None when up, else why not."""
        broker = None if self.worker.connected else (self.worker.last_error or "not connected")
        influx = await self.influx.ping(timeout_s=2.0)
        if influx is not None:
            influx = f"InfluxDB at {self.influx.url} unreachable ({influx})"
        elif self.drainer.last_status is not None and self.drainer.last_error:
            influx = self.drainer.last_error  # answers /ping but refuses writes (auth, 5xx)
        return {"mqtt": broker, "influxdb": influx}

    def channel_problems(self) -> dict[str, str | None]:
        """Each alert channel -> None while it can send, else why not (Zalo's token refused)."""
        return self.alerting.people.problems() if self.alerting is not None else {}

    def _channel_metrics(self) -> list[str]:
        name = "ciot_notifier_problem"
        out = [
            f"# HELP {name} 1 while the alert channel cannot send (see /readyz for why).",
            f"# TYPE {name} gauge",
        ]
        out += [f'{name}{{notifier="{n}"}} {int(p is not None)}' for n, p in self.channel_problems().items()]
        return out

    def _backlog_metrics(self) -> list[str]:
        since = self.worker.backlog_since()
        name = "ciot_ingest_backlog_seconds"
        return [
            f"# HELP {name} Age of the oldest message received from the broker and not yet committed "
            "(a cloud short of CPU falls behind here; alerts wait for it).",
            f"# TYPE {name} gauge",
            f"{name} {max(0.0, time.time() - since) if since is not None else 0.0:.3f}",
        ]

    def metrics_text(self) -> str:
        return render(
            self.stats,
            spool_lines=self.journal.depth_lines,
            spool_bytes=self.journal.depth_bytes,
            lag_s=self.journal.lag_s(),
            broker_connected=self.worker.connected,
            extra=lambda: self._channel_metrics() + self._backlog_metrics(),
        )
