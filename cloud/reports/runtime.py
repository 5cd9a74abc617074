"""What the cloud process needs to offer reports: the service, the store, the monthly job.

The lead's wiring (in the FastAPI lifespan, next to the ingest ``Runtime``)::

    reports = ReportsRuntime.create(cfg, runtime.influx, runtime.sql.engine, runtime.inventory,
                                    holder=runtime.client_id)
    await reports.start()          # rollup CQs (best effort) + monthly task if enabled
    app.include_router(wifi_reports_router(reports.service, require_reports))
    ...
    await reports.stop()
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from cloud.config import CloudConfig
from cloud.inventory import Inventory
from cloud.reports.monthly import MonthlyJob
from cloud.reports.service import ReportService
from cloud.reports.store import ReportStore
from cloud.storage.influx import InfluxClient, InfluxError

log = logging.getLogger(__name__)


class ReportsRuntime:
    def __init__(self, service: ReportService, job: MonthlyJob | None) -> None:
        self.service = service
        self.job = job

    @classmethod
    def create(
        cls, cfg: CloudConfig, influx: InfluxClient, engine: Engine, inventory: Inventory, *, holder: str
    ) -> ReportsRuntime:
        store = ReportStore(engine, cfg.reports.output_dir)
        service = ReportService(
            influx,
            cfg.influx.database,
            inventory,
            cfg.reports,
            store,
            rollup_days=cfg.influx.retention.rollup_days,
        )
        job = None
        if cfg.reports.monthly:
            job = MonthlyJob(
                service,
                store,
                holder,
                formats=cfg.reports.monthly_formats,
                lang=cfg.reports.language,
                check_s=cfg.reports.monthly_check_s,
                hour=cfg.reports.monthly_hour,
            )
        return cls(service, job)

    async def start(self) -> None:
        """Create the rollup CQs (InfluxDB down: logged, retried by the monthly job's refresh)."""
        try:
            await self.service.ensure_rollups()
        except InfluxError as exc:
            log.error("report rollups not set up yet: %s", exc)
        if self.job is not None:
            self.job.start()

    async def stop(self) -> None:
        if self.job is not None:
            await self.job.stop()
