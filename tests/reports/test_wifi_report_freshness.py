"""Issue 17 item 8: a report knows how fresh its 15-minute rollups are and mends them first.

Raw readings are written straight to InfluxDB with no rollup made (as right after start-up,
or for days replayed later than the continuous queries look back); the report finds the
days whose rollup lacks readings, re-aggregates exactly those, and its figures equal a
fully refreshed report's. A period without readings shows "no data", never 0.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from report_helpers import local, small_fleet_lines

from cloud.config import load_config
from cloud.inventory import load_inventory
from cloud.reports.period import Period
from cloud.reports.service import ReportService
from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.lineproto import join
from commune_iot.localsvc import InfluxDB

TZ = "Asia/Ho_Chi_Minh"
NOW = datetime(2026, 11, 28, tzinfo=UTC)


async def _write(influx: InfluxClient, db: str, lines: list[str]) -> None:
    for i in range(0, len(lines), 20_000):
        r = await influx.write(db, join(lines[i : i + 20_000]))
        assert r.outcome is WriteOutcome.OK, r.error


async def test_stale_days_are_found_and_refreshed(
    tmp_path: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    cfg = load_config(None, reports={"output_dir": tmp_path})
    inventory = load_inventory(cfg.inventory)
    day2_ms = int(local(2026, 10, 2).timestamp() * 1000)
    lines = small_fleet_lines(inventory, local(2026, 10, 1), 2)
    late = [ln for ln in lines if ",device=dr-ap-01," in ln and int(ln.rsplit(" ", 1)[1]) >= day2_ms]
    assert late
    period = Period(date(2026, 10, 1), date(2026, 10, 2), TZ)
    async with InfluxClient(
        influx_server.url, username=influx_server.username, password=influx_server.password, timeout_s=60
    ) as influx:
        await influx.create_database(influx_db)
        await _write(influx, influx_db, [ln for ln in lines if ln not in set(late)])
        svc = ReportService(influx, influx_db, inventory, cfg.reports)

        # No rollup at all yet: both days are stale, re-aggregated before reading.
        first = await svc.build(period, now=NOW)
        assert first.rollups is not None and first.rollups.checked and first.rollups.refreshed
        assert first.rollups.stale_days == [date(2026, 10, 1), date(2026, 10, 2)]
        ap = next(r for r in first.aps if r.id == "dr-ap-01").metrics
        assert ap.client_hours and ap.coverage_pct == 50  # day 2 not sent yet

        # Nothing changed: nothing stale, nothing re-aggregated.
        again = await svc.build(period, now=NOW)
        assert again.rollups is not None and (again.rollups.stale_days, again.rollups.refreshed) == (
            [],
            False,
        )

        # dr-ap-01's board replays day 2 long after: only that day is stale, and is mended.
        await _write(influx, influx_db, late)
        mended = await svc.build(period, now=NOW)
        assert mended.rollups is not None and mended.rollups.stale_days == [date(2026, 10, 2)]
        forced = await svc.build(period, now=NOW, refresh=True)
    m = next(r for r in mended.aps if r.id == "dr-ap-01").metrics
    f = next(r for r in forced.aps if r.id == "dr-ap-01").metrics
    assert m.coverage_pct == 100 and m.client_hours == f.client_hours and m.client_hours > ap.client_hours
    assert mended.total.metrics == forced.total.metrics


async def test_no_data_is_a_dash_never_zero(tmp_path: Path, influx_server: InfluxDB, influx_db: str) -> None:
    cfg = load_config(None, reports={"output_dir": tmp_path})
    inventory = load_inventory(cfg.inventory)
    async with InfluxClient(
        influx_server.url, username=influx_server.username, password=influx_server.password
    ) as influx:
        svc = ReportService(influx, influx_db, inventory, cfg.reports)
        report = await svc.build(
            Period(date(2026, 12, 1), date(2026, 12, 2), TZ), now=NOW.replace(month=12, day=20)
        )
    m = report.total.metrics
    assert (m.client_hours, m.traffic_in_bytes, m.availability_pct, m.outages, m.down_s) == (None,) * 5
    assert m.coverage_pct == 0  # measured, and nothing heard
    html = svc.render(report, "html", "vi").decode()
    for key in ("client_hours", "traffic_in_gb", "availability_pct", "outages"):
        assert f'data-key="{key}" data-raw=""><span class="v">–</span>' in html, key
    assert "– : không có số liệu (không phải 0)" in html and "Không có số liệu trong kỳ này" in html
    head, total = (
        ln.split(",") for ln in svc.render(report, "csv", "en").decode("utf-8-sig").splitlines()[:2]
    )
    shown = {k: v for k, v in zip(head, total, strict=True) if v}
    assert set(shown) == {"Level", "Id", "Name", "APs", "Coverage (% of time)"}, shown  # the rest blank
    assert shown["Coverage (% of time)"] == "0.0"
