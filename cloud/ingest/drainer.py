"""Drains the journal into InfluxDB: batches by size and time, retries with backoff.

Outcomes of a /write (see ``cloud.storage.influx``):

* ok: advance the cursor.
* bad data (400): InfluxDB 1.x has stored the valid points of the batch already; the
  rest can never succeed, so log, count and advance (never block the spool on them).
* database missing: create it and retry at once.
* too large: halve the batch.
* anything else (connection refused, timeout, 5xx, 401/403): keep the lines in the
  journal and retry with exponential backoff; the journal is the disk spool meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cloud.config import InfluxConfig
from cloud.ingest.stats import Stats
from cloud.storage.influx import InfluxClient, InfluxError, WriteOutcome
from cloud.storage.journal import Batch, Journal
from cloud.storage.retention import ensure_retention

log = logging.getLogger(__name__)


class Drainer:
    def __init__(self, cfg: InfluxConfig, client: InfluxClient, journal: Journal, stats: Stats) -> None:
        self.cfg = cfg
        self.client = client
        self.journal = journal
        self.stats = stats
        self.last_error = ""
        #: HTTP status of the last failed write (None: no response, e.g. connection refused)
        self.last_status: int | None = None
        self._db_ready = False
        self._max_lines = cfg.batch_max_lines

    async def ensure_database(self) -> None:
        """The database and its retention policies (created or adjusted at every start)."""
        r = self.cfg.retention
        await ensure_retention(self.client, self.cfg.database, raw_days=r.raw_days, rollup_days=r.rollup_days)
        self._db_ready = True

    async def run(self) -> None:
        """Until cancelled. Cancelling loses nothing: the cursor only moves after a write."""
        delay = self.cfg.retry_initial_s
        poll = min(self.cfg.flush_interval_s, 0.05)
        while True:
            if not self._db_ready:
                try:
                    await self.ensure_database()
                except InfluxError as exc:
                    self.last_status = None
                    delay = await self._backoff(str(exc), delay)
                    continue
            batch = await asyncio.to_thread(self.journal.read_batch, self._max_lines)
            if batch is None:
                await asyncio.sleep(poll)
                continue
            if batch.lines < self._max_lines and self.journal.lag_s() < self.cfg.flush_interval_s:
                await asyncio.sleep(poll)  # let a small batch grow until flush_interval_s
                continue
            if await self._write(batch):
                delay = self.cfg.retry_initial_s
            else:
                delay = await self._backoff(self.last_error, delay)

    async def _write(self, batch: Batch) -> bool:
        res = await self.client.write(self.cfg.database, batch.data, precision=self.cfg.precision)
        self.stats.observe_write(res.seconds)
        if res.outcome is WriteOutcome.OK:
            self.journal.commit_read(batch)
            self.stats.points_written += batch.lines
            if self.last_error:
                log.info(
                    "InfluxDB at %s is back; %d lines still spooled, draining",
                    self.client.url,
                    self.journal.depth_lines,
                )
            self.last_error = ""
            self.last_status = None
            self._max_lines = self.cfg.batch_max_lines
            return True
        self.stats.write_errors[res.outcome.value] += 1
        if res.outcome is WriteOutcome.BAD_DATA:
            dropped = res.dropped or batch.lines
            self.stats.lines_rejected += dropped
            self.stats.points_written += batch.lines - dropped
            log.error(
                "InfluxDB rejected %d of %d lines as bad data; dropping them: %s",
                dropped,
                batch.lines,
                res.error,
            )
            self.journal.commit_read(batch)
            return True
        if res.outcome is WriteOutcome.NO_DATABASE:
            self._db_ready = False
            log.warning("database %s missing in InfluxDB; creating it", self.cfg.database)
            return True
        if res.outcome is WriteOutcome.TOO_LARGE and batch.lines > 1:
            self._max_lines = max(1, batch.lines // 2)
            log.warning(
                "InfluxDB refused a %d-line batch as too large; trying %d", batch.lines, self._max_lines
            )
            return True
        self.last_status = res.status
        if res.status is None:
            self.last_error = f"InfluxDB at {self.client.url} unreachable ({res.error})"
        else:
            self.last_error = (
                f"InfluxDB at {self.client.url} refused the write (HTTP {res.status}: {res.error})"
            )
        return False

    async def _backoff(self, error: str, delay: float) -> float:
        self.last_error = error
        log.warning(
            "%s; %s lines (%s bytes) spooled on disk; retrying in %.1f s",
            error,
            f"{self.journal.depth_lines:,}",
            f"{self.journal.depth_bytes:,}",
            delay,
        )
        # Sleep the backoff, but retry as soon as /ping answers again, so a restarted
        # InfluxDB is drained at once rather than after the longest backoff step.
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            if self.last_status is None and await self.client.ping(timeout_s=1.0) is None:
                break
        return min(delay * 2, self.cfg.retry_max_s)

    async def drain_once(self, timeout_s: float = 30.0) -> None:
        """Write everything journaled so far (for shutdown); give up after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await asyncio.to_thread(self.journal.read_batch, self._max_lines)
            if batch is None:
                return
            if not await self._write(batch):
                return
