"""``commune-iot report wifi``: a Wi-Fi report to a file, from the cloud's configuration.

Reads the same YAML/env as ``cloud serve`` (InfluxDB URL, database, credentials, the
``reports:`` section), so it runs on the cloud VM or anywhere that reaches InfluxDB.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from wire import logs

log = logging.getLogger(__name__)


def main(
    config: Path | None,
    first: str,
    last: str | None,
    commune: str | None,
    fmt: str,
    out: Path,
    lang: str | None,
    refresh: bool = True,
) -> int:
    from cloud.config import load_config
    from cloud.onboarding.live import LiveInventory
    from cloud.reports.i18n import Lang
    from cloud.reports.service import ReportService, UnknownCommune
    from cloud.storage.influx import InfluxClient, InfluxError
    from cloud.storage.sql import SqlStore

    logs.setup()
    try:
        cfg = load_config(config)
        sql = SqlStore(
            cfg.sql.url, password=cfg.sql.password_value(), busy_timeout_ms=cfg.sql.busy_timeout_ms
        )
        try:
            inventory = LiveInventory.open(sql.engine, cfg.inventory).inventory  # the SQL inventory
        finally:
            sql.dispose()
    except (OSError, ValueError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    language: Lang = "en" if (lang or cfg.reports.language) == "en" else "vi"

    async def run() -> bytes:
        async with InfluxClient(
            cfg.influx.url,
            username=cfg.influx.username,
            password=cfg.influx.password_value(),
            timeout_s=max(cfg.influx.timeout_s, 60.0),
        ) as influx:
            svc = ReportService(influx, cfg.influx.database, inventory, cfg.reports)
            period = svc.period(first, last)
            report = await svc.build(period, commune, refresh=refresh)
            return svc.render(report, fmt, language)

    t0 = time.perf_counter()
    try:
        body = asyncio.run(run())
    except (ValueError, UnknownCommune, InfluxError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(body)
    print(f"wrote {out} ({len(body):,} bytes, {time.perf_counter() - t0:.1f} s)")
    return 0
