"""Last month's report, built on the 1st (local time), once, whichever cloud worker gets there first.

Every ``monthly_check_s`` each worker asks the store to claim the row of last month's
report; the row's unique key lets exactly one of them insert it, so one report is built
however many workers run (and a worker that died mid-build leaves a ``building`` row
that another takes over after an hour). A month already built is never rebuilt by the
job. A cloud that was down on the 1st catches up when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from cloud.reports.i18n import Lang
from cloud.reports.period import last_month
from cloud.reports.service import ReportService
from cloud.reports.store import ReportStore

log = logging.getLogger(__name__)


class MonthlyJob:
    def __init__(
        self,
        service: ReportService,
        store: ReportStore,
        holder: str,
        *,
        formats: Sequence[str] = ("html", "xlsx", "csv"),
        lang: Lang = "vi",
        check_s: float = 600.0,
        hour: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.holder = holder
        self.formats = list(formats)
        self.lang: Lang = lang
        self.check_s = check_s
        self.hour = hour
        self.tz = service.cfg.timezone
        self.clock = clock or (lambda: datetime.now(ZoneInfo(self.tz)))
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.checked = asyncio.Event()  # set after each check (tests and health checks await it)

    async def run_once(self) -> int | None:
        """Build last month's report if nobody has; the stored row's id when this call built it."""
        now = self.clock()
        local = now.astimezone(ZoneInfo(self.tz))
        if local.day == 1 and local.hour < self.hour:
            return None  # the month's last readings may still be on their way
        period = last_month(now, self.tz)
        row = await asyncio.to_thread(
            self.store.claim,
            "wifi",
            period.key,
            "",
            period.first.isoformat(),
            period.last.isoformat(),
            origin="monthly",
            holder=self.holder,
        )
        if row is None:
            return None
        log.info("building the monthly Wi-Fi report", extra={"period": period.key, "holder": self.holder})
        try:
            report = await self.service.build(period, now=now, refresh=True)
            # off the event loop: a province's XLSX takes seconds, which the API, the journal's
            # drainer and the alert evaluator (all on the loop) must not wait for
            files = {
                fmt: await asyncio.to_thread(self.service.render, report, fmt, self.lang)
                for fmt in self.formats
            }
            await asyncio.to_thread(self.store.save, row, report, files)
        except Exception as exc:
            log.error("monthly Wi-Fi report failed (%s: %s); retried next check", type(exc).__name__, exc)
            await asyncio.to_thread(self.store.fail, row, f"{type(exc).__name__}: {exc}")
            return None
        log.info("monthly Wi-Fi report kept", extra={"period": period.key, "report_id": row})
        return row

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # SQL unreachable: try again next round
                log.error("monthly report check failed (%s: %s)", type(exc).__name__, exc)
            self.checked.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.check_s)

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="monthly-wifi-report")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
