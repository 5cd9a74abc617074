"""The router: every route behind the lead's ``require_reports`` dependency, pages, files, JSON;
the monthly job builds last month's report exactly once across workers and lists it."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from report_helpers import small_fleet_report
from sqlalchemy import create_engine

from cloud.config import load_config
from cloud.inventory import load_inventory
from cloud.reports.monthly import MonthlyJob
from cloud.reports.router import wifi_reports_router
from cloud.reports.service import ReportService
from cloud.reports.store import ReportStore
from commune_iot.localsvc import InfluxDB

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
Q = "from=2026-10-01&to=2026-10-02"


def allow() -> dict[str, str]:
    return {"user": "mic-staff", "role": "mic"}


def deny() -> None:
    raise HTTPException(403, "reports need the mic or admin role")


def _app(svc: ReportService, dep: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(wifi_reports_router(svc, dep))
    return app


def _paths(app: FastAPI) -> list[str]:
    """Every route the router added (from the OpenAPI schema, which lists them all)."""
    return [p.replace("{report_id}", "1").replace("{fmt}", "csv") for p in app.openapi()["paths"]]


@pytest.fixture
async def service(tmp_path: Path, influx_server: InfluxDB, influx_db: str, sql_url: str) -> Any:
    cfg = load_config(None, reports={"output_dir": tmp_path / "reports"})
    inventory = load_inventory(cfg.inventory)
    svc, _ = await small_fleet_report(influx_server, influx_db, inventory, cfg, days=2)
    svc.store = ReportStore(create_engine(sql_url), cfg.reports.output_dir)
    yield svc
    await svc.influx.aclose()


async def test_every_route_is_guarded(service: ReportService) -> None:
    app = _app(service, deny)
    paths = _paths(app)
    assert {
        "/reports/wifi",
        "/reports/wifi.xlsx",
        "/reports/wifi.csv",
        "/reports",
        "/reports/1.csv",
        "/api/v1/reports/wifi",
        "/api/v1/reports",
    } <= set(paths)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for p in paths:
            r = await c.get(f"{p}?{Q}")
            assert r.status_code == 403, (p, r.status_code)


async def test_pages_files_and_json(service: ReportService) -> None:
    app = _app(service, allow)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get(f"/reports/wifi?{Q}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'lang="vi"' in page.text and 'data-chart="heatmap"' in page.text
        assert 'href="/reports/wifi.xlsx?from=2026-10-01&amp;to=2026-10-02&amp;lang=vi"' in page.text
        en = await c.get(f"/reports/wifi?{Q}&lang=en&commune=tu-tra")
        assert 'lang="en"' in en.text and "Tu Tra" in en.text
        x = await c.get(f"/reports/wifi.xlsx?{Q}")
        assert (
            x.content[:2] == b"PK" and "wifi-2026-10-01_2026-10-02.xlsx" in x.headers["content-disposition"]
        )
        cs = await c.get(f"/reports/wifi.csv?{Q}&commune=da-ron")
        assert cs.headers["content-type"].startswith("text/csv") and "Đạ Ròn" in cs.content.decode(
            "utf-8-sig"
        )
        j = await c.get(f"/api/v1/reports/wifi?{Q}")
        body = j.json()
        assert j.status_code == 200 and body["first"] == "2026-10-01" and len(body["aps"]) == 35
        assert body["total"]["metrics"]["client_hours"] > 0
        assert (await c.get(f"/api/v1/reports/wifi?{Q}&commune=nowhere")).status_code == 404
        assert (await c.get("/api/v1/reports/wifi?from=2026-10-05&to=2026-10-01")).status_code == 422
        schema = app.openapi()
        ok = schema["paths"]["/api/v1/reports/wifi"]["get"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"]["$ref"].endswith("/WifiReport")


async def test_monthly_job_runs_once_across_workers(service: ReportService) -> None:
    assert service.store is not None
    first_of_november = datetime(2026, 11, 1, 0, 5, tzinfo=TZ)
    jobs = [
        MonthlyJob(service, service.store, f"worker-{i}", clock=lambda: first_of_november) for i in range(3)
    ]
    built = await asyncio.gather(*(j.run_once() for j in jobs))
    assert len([b for b in built if b is not None]) == 1  # one worker built it
    assert await jobs[0].run_once() is None  # and nobody builds it again
    early = MonthlyJob(
        service, service.store, "w", hour=1, clock=lambda: datetime(2026, 12, 1, 0, 30, tzinfo=TZ)
    )
    assert await early.run_once() is None and len(service.store.list()) == 1  # not before 01:00
    kept = service.store.list()
    assert [(k.period, k.state, k.origin, k.files) for k in kept] == [
        ("2026-10", "done", "monthly", ["csv", "html", "xlsx"])
    ]
    app = _app(service, allow)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        listing = await c.get("/reports")
        assert re.search(rf'href="/reports/{kept[0].id}\.xlsx"', listing.text)
        f = await c.get(f"/reports/{kept[0].id}.xlsx")
        assert f.status_code == 200 and f.content[:2] == b"PK"
        api = (await c.get("/api/v1/reports")).json()
        assert (
            api[0]["period"] == "2026-10"
            and api[0]["first"] == "2026-10-01"
            and api[0]["last"] == "2026-10-31"
        )
        assert (await c.get(f"/reports/{kept[0].id}.pdf")).status_code == 422
        assert (await c.get("/reports/999.csv")).status_code == 404


async def test_monthly_job_start_and_stop(service: ReportService) -> None:
    """The task the lead starts: it checks at once, and stops promptly when asked."""
    assert service.store is not None
    job = MonthlyJob(
        service, service.store, "w", check_s=3600, clock=lambda: datetime(2026, 12, 1, 1, tzinfo=TZ)
    )
    job.start()
    await asyncio.wait_for(job.checked.wait(), 60)
    await asyncio.wait_for(job.stop(), 5)
    assert [(k.period, k.state) for k in service.store.list()] == [("2026-11", "done")]


async def test_reports_runtime_contract(
    tmp_path: Path, influx_server: InfluxDB, influx_db: str, sql_url: str
) -> None:
    """What the lead wires into the cloud process: create, start (CQs + monthly task), stop."""
    from cloud.reports.runtime import ReportsRuntime
    from cloud.storage.influx import InfluxClient

    cfg = load_config(
        None,
        influx={"database": influx_db},
        reports={"output_dir": tmp_path / "reports", "monthly_check_s": 3600},
    )
    inventory = load_inventory(cfg.inventory)
    engine = create_engine(sql_url)
    async with InfluxClient(
        influx_server.url, username=influx_server.username, password=influx_server.password
    ) as influx:
        reports = ReportsRuntime.create(cfg, influx, engine, inventory, holder="worker-1")
        assert reports.job is not None and reports.service.store is not None
        reports.job.clock = lambda: datetime(2026, 11, 15, 9, tzinfo=TZ)  # any day but the 1st's first hour
        await reports.start()
        await asyncio.wait_for(reports.job.checked.wait(), 60)  # last month built (empty data is fine)
        await asyncio.wait_for(reports.stop(), 5)
        cqs = await influx.query("SHOW CONTINUOUS QUERIES")
        names = {v[0] for s in cqs if s["name"] == influx_db for v in s.get("values", [])}
        assert names == {"cq_ap_15m", "cq_ap_if_15m"}
        kept = reports.service.store.list()
        assert len(kept) == 1 and kept[0].state == "done" and kept[0].origin == "monthly"
        router = wifi_reports_router(reports.service, allow)
        assert router.dependencies and router.dependencies[0].dependency is allow
