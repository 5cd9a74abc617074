"""The cloud watches itself: one ``cloud`` point per worker every ``self_metrics_s`` in InfluxDB.

Technicians see ingest rate, invalid messages, InfluxDB write latency, spool depth and
notifications in Grafana next to the devices, with the same InfluxQL, without running a
Prometheus for ``/metrics``. Counters are cumulative since the worker started (tag
``worker``); dashboards take ``non_negative_derivative`` of them, which is also right
across a restart. Points that cannot be written while InfluxDB is down wait in memory
(the last hour) and go with the next write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cloud.ingest.stats import Stats
from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.journal import Journal
from cloud.storage.lineproto import line

log = logging.getLogger(__name__)

MEASUREMENT = "cloud"


class SelfMonitor:
    def __init__(
        self,
        worker: str,
        stats: Stats,
        journal: Journal,
        influx: InfluxClient,
        database: str,
        *,
        connected: Callable[[], bool],
        notify_stats: Callable[[], dict[str, Any]] | None = None,
        interval_s: float = 10.0,
    ) -> None:
        self.worker = worker
        self.stats = stats
        self.journal = journal
        self.influx = influx
        self.database = database
        self.connected = connected
        self.notify_stats = notify_stats
        self.interval_s = interval_s
        self._waiting: deque[str] = deque(maxlen=max(1, int(3600 / interval_s)))
        self._last_latency = (0.0, 0)

    def sample(self, now: float) -> str:
        s = self.stats
        lat_sum = s.write_latency_sum - self._last_latency[0]
        lat_n = s.write_latency_count - self._last_latency[1]
        self._last_latency = (s.write_latency_sum, s.write_latency_count)
        fields: dict[str, bool | int | float | str | None] = {
            "received": float(s.received),
            "committed": float(s.committed),
            "dead_lettered": float(sum(s.dead_lettered.values())),
            "points_written": float(s.points_written),
            "points_rejected": float(s.lines_rejected),
            "write_errors": float(sum(s.write_errors.values())),
            "write_latency_s": lat_sum / lat_n if lat_n else None,  # mean over the interval
            "spool_lines": float(self.journal.depth_lines),
            "spool_bytes": float(self.journal.depth_bytes),
            "lag_s": float(self.journal.lag_s()),
            "broker_connected": self.connected(),
        }
        if self.notify_stats is not None:
            n = self.notify_stats()
            fields.update({f"notify_{k}": float(v) for k, v in n.items()})
        return line(MEASUREMENT, {"worker": self.worker}, fields, int(now * 1000))

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            self._waiting.append(self.sample(time.time()))
            body = "\n".join(self._waiting).encode() + b"\n"
            result = await self.influx.write(self.database, body)
            if result.outcome is WriteOutcome.OK or result.outcome is WriteOutcome.BAD_DATA:
                self._waiting.clear()  # bad data cannot get better by waiting
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
