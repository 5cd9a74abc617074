"""Builds Wi-Fi reports: queries InfluxDB for the period and the one before, computes, renders.

One ``ReportService`` per cloud process (or CLI run). The router, the monthly job and
the CLI all go through it, so a report looks the same wherever it was made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from cloud.inventory import Inventory
from cloud.reports import wifi_compute, wifi_query
from cloud.reports.i18n import Lang
from cloud.reports.period import Period
from cloud.reports.settings import ReportsConfig
from cloud.reports.store import ReportStore
from cloud.reports.wifi_model import Rollups, WifiReport
from cloud.storage.influx import InfluxClient, InfluxError
from cloud.storage.retention import ROLLUP_DAYS

log = logging.getLogger(__name__)

FORMATS = ("html", "xlsx", "csv")
MEDIA = {
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


class UnknownCommune(ValueError):
    """The commune asked for is not in the inventory."""


class ReportService:
    def __init__(
        self,
        influx: InfluxClient,
        database: str,
        inventory: Inventory,
        cfg: ReportsConfig,
        store: ReportStore | None = None,
        *,
        rollup_days: float = ROLLUP_DAYS,
    ) -> None:
        self.rollup_days = rollup_days  # influx.retention.rollup_days
        self.influx = influx
        self.database = database
        self.inventory = inventory
        self.cfg = cfg
        self.store = store
        self._rollups_ready = False

    def settings_for(self, period: Period) -> wifi_compute.Settings:
        return wifi_compute.Settings(
            grain_s=wifi_query.GRAIN_S,
            gap_s=self.cfg.max_gap_s,
            opening=self.cfg.opening_minutes(),
            series_step_s=86400 if period.days > 62 else 3600,
        )

    async def ensure_rollups(self) -> None:
        """The rollup CQs exist (created once per process; again after a failure).

        Creating a CQ needs an InfluxDB admin; without one this logs what to do and the
        reports still work from rollups made by ``refresh`` (which needs only write access).
        """
        if self._rollups_ready:
            return
        try:
            await wifi_query.ensure_rollups(
                self.influx, self.database, self.cfg.rollup_resample_h, self.rollup_days
            )
        except InfluxError as exc:
            if "unreachable" in str(exc):
                raise
            log.warning(
                "cannot create the report rollup continuous queries (%s); create them as an InfluxDB "
                "admin (docs/reports.md) or build reports with refresh",
                exc,
            )
        self._rollups_ready = True

    async def refresh(self, period: Period) -> None:
        """Re-aggregate the rollups of the period and the one before (late replays included)."""
        prev = period.previous()
        await wifi_query.refresh(self.influx, self.database, prev.start_ms, period.end_ms)

    async def freshen(
        self, period: Period, commune: str | None, data_until_ms: int, *, force: bool = False
    ) -> Rollups:
        """Make the rollups of the period and the one before complete up to ``data_until_ms``:
        everything when ``force``, else the local days where they hold fewer readings than the
        raw data (:func:`wifi_query.stale_days`). A failure is logged and reported, not raised
        (the report is then read from the rollups as they are, and says so)."""
        zone = period.zone
        until = period.local(max(period.start_ms, data_until_ms))
        start_ms = period.previous().start_ms
        if data_until_ms <= start_ms:  # nothing measured yet
            return Rollups(data_until=until, checked=True)
        if force:  # the whole range, up to the last whole bucket (a filling one is the CQs' job)
            await wifi_query.refresh(self.influx, self.database, start_ms, data_until_ms)
            return Rollups(data_until=until, checked=True, refreshed=True)
        offset_s = -int(period.start.utcoffset().total_seconds()) % 86400  # type: ignore[union-attr]
        stale: list[int] = []
        try:
            stale = await wifi_query.stale_days(
                self.influx, self.database, start_ms, data_until_ms, commune, offset_s
            )
            for a, b in _runs(stale, 86_400_000):
                await wifi_query.refresh(self.influx, self.database, a, min(b, data_until_ms))
        except InfluxError as exc:
            if "unreachable" in str(exc):
                raise
            log.warning(
                "report rollups not checked or not refreshed: %s; the report may lack data of %d day(s)",
                exc,
                len(stale),
            )
            days = [datetime.fromtimestamp(ms / 1000, zone).date() for ms in stale]
            return Rollups(data_until=until, checked=False, stale_days=days, error=str(exc)[:300])
        days = [datetime.fromtimestamp(ms / 1000, zone).date() for ms in stale]
        if days:
            log.info(
                "report rollups were stale, refreshed",
                extra={"days": len(days), "first": str(days[0]), "last": str(days[-1])},
            )
        return Rollups(data_until=until, checked=True, stale_days=days, refreshed=bool(days))

    def period(self, first: str, last: str | None) -> Period:
        from cloud.reports.period import parse_range

        return parse_range(first, last, self.cfg.timezone)

    def check_commune(self, commune: str | None) -> None:
        if commune and commune not in {c.id for c in self.inventory.communes}:
            raise UnknownCommune(f"unknown commune {commune!r}")

    async def build(
        self,
        period: Period,
        commune: str | None = None,
        *,
        now: datetime | None = None,
        refresh: bool = False,
    ) -> WifiReport:
        """The report's numbers (InfluxDB reads for both periods run concurrently)."""
        self.check_commune(commune)
        t0 = time.perf_counter()
        now = now or datetime.now(ZoneInfo(self.cfg.timezone))
        grain_ms = wifi_query.GRAIN_S * 1000
        now_ms = int(now.timestamp() * 1000)
        await self.ensure_rollups()
        rollups = await self.freshen(
            period, commune, min(period.end_ms, now_ms - now_ms % grain_ms), force=refresh
        )
        s = self.settings_for(period)
        prev = period.previous()
        cur_data, prev_data = await asyncio.gather(
            wifi_query.fetch(self.influx, self.database, period.start_ms, period.end_ms, commune),
            wifi_query.fetch(self.influx, self.database, prev.start_ms, prev.end_ms, commune),
        )
        t1 = time.perf_counter()
        report = await asyncio.to_thread(
            wifi_compute.build,
            self.inventory,
            period,
            cur_data,
            prev_data,
            s,
            commune=commune,
            now_ms=now_ms,
            generated_at=now.astimezone(ZoneInfo(self.cfg.timezone)),
        )
        report.rollups = rollups
        log.info(
            "wifi report built",
            extra={
                "period": period.key,
                "commune": commune or "all",
                "query_s": round(t1 - t0, 3),
                "compute_s": round(time.perf_counter() - t1, 3),
            },
        )
        return report

    def render(self, report: WifiReport, fmt: str, lang: Lang) -> bytes:
        if fmt == "html":
            from cloud.reports.render_html import render_html

            return render_html(report, lang, self.inventory).encode("utf-8")
        if fmt == "xlsx":
            from cloud.reports.render_xlsx import render_xlsx

            return render_xlsx(report, lang, self.inventory)
        if fmt == "csv":
            from cloud.reports.render_csv import render_csv

            return render_csv(report, lang).encode("utf-8-sig")  # BOM: Excel reads UTF-8
        raise ValueError(f"unknown format {fmt!r} (html, xlsx, csv)")


def _runs(starts: list[int], step: int) -> list[tuple[int, int]]:
    """Sorted day starts as ``[start, end)`` runs of consecutive days (one refresh each)."""
    runs: list[tuple[int, int]] = []
    for t in starts:
        if runs and runs[-1][1] == t:
            runs[-1] = (runs[-1][0], t + step)
        else:
            runs.append((t, t + step))
    return runs
