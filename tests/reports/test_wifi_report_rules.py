"""The rules on their own: counters (wraps, reboots, gaps), outage time, periods, number format,
configuration; and the ``commune-iot report wifi`` command end to end."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from report_helpers import small_fleet_report

from cloud.config import load_config
from cloud.inventory import load_inventory
from cloud.reports import charts, counters, intervals
from cloud.reports.i18n import number
from cloud.reports.period import Period, last_month, parse_range
from commune_iot.cli import main as cli
from commune_iot.localsvc import InfluxDB

C32 = 2**32


def test_counter_rules() -> None:
    assert counters.delta(100, 300, 900, 10, 910) == 200
    assert counters.delta(C32 - 100, 50, 900, 10, 910) == 150  # 32-bit wrap
    assert counters.delta(5 * C32, 5 * C32 - 10, 900, 10, 910) == 5 * C32 - 10  # 64-bit went down: reset
    assert counters.delta(10_000, 700, 900, 86_400, 300) == 700  # reboot: uptime went down
    assert counters.delta(10_000, 20_000, 900, None, None) == 10_000
    # a "wrap" implying more than 10 Gbit/s is a reset without uptime to prove it
    assert counters.delta(C32 - 1, 0, 1, None, None) == 0 or counters.MAX_BPS > 8 / 1
    readings = [
        (0, 100.0, 1.0),
        (900_000, 400.0, 901.0),
        (4_500_000, 900.0, 4501.0),
        (5_400_000, 1000.0, 5401.0),
    ]
    assert counters.total(readings, max_gap_s=1800) == 300 + 100  # the 3600 s gap is not counted


def test_outage_time() -> None:
    assert intervals.union([(5, 10), (0, 3), (8, 12), (12, 12)]) == [(0, 3), (5, 12)]
    assert intervals.minus([(0, 10)], [(2, 4), (8, 20)]) == [(0, 2), (4, 8)]
    assert intervals.clip([(-5, 3), (8, 30)], 0, 10) == [(0, 3), (8, 10)]
    assert intervals.length([(0, 3), (5, 12)]) == 10


def test_periods_in_local_time() -> None:
    p = Period(date(2026, 11, 1), date(2026, 11, 30), "Asia/Ho_Chi_Minh")
    assert p.start == datetime(2026, 10, 31, 17, tzinfo=UTC)  # local midnight is 17:00 UTC
    assert p.days == 30 and p.is_month and p.key == "2026-11"
    prev = p.previous()
    assert (prev.first, prev.last) == (date(2026, 10, 2), date(2026, 10, 31))
    assert parse_range("2026-02", None, p.tz).last == date(2026, 2, 28)
    assert parse_range("2026-11-03", "2026-11-09", p.tz).key == "2026-11-03_2026-11-09"
    # 1 Dec 00:30 local is still 30 Nov in UTC: last month is November
    assert last_month(datetime(2026, 11, 30, 17, 30, tzinfo=UTC), p.tz).key == "2026-11"
    with pytest.raises(ValueError):
        Period(date(2026, 11, 2), date(2026, 11, 1), p.tz)
    with pytest.raises(ValueError, match="reports cover 2000-01-01 to 2100-12-31"):
        Period(date(1917, 11, 10), date(1917, 11, 10), p.tz).check_supported()  # a typo
    with pytest.raises(ValueError, match="outside what InfluxDB can store"):
        Period(date(1417, 11, 10), date(1417, 11, 10), p.tz)
    assert Period(date(2000, 1, 1), date(2000, 1, 1), p.tz).check_supported().previous().first.year == 1999


def test_vietnamese_numbers() -> None:
    assert number(1234.5, "vi") == "1.234,5"
    assert number(1234567.891, "vi", 2) == "1.234.567,89"
    assert number(1234.5, "en") == "1,234.5"
    assert number(None, "vi") == "–"


def test_config_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIOT_CLOUD_REPORTS__OPENING_START", "07:00")
    monkeypatch.setenv("CIOT_CLOUD_REPORTS__MONTHLY", "false")
    cfg = load_config(Path(__file__).resolve().parents[2] / "cloud" / "sample.yaml")
    assert cfg.reports.opening_minutes() == (7 * 60, 22 * 60) and cfg.reports.monthly is False
    assert cfg.reports.output_dir.is_absolute()
    with pytest.raises(ValueError, match="15-minute"):
        load_config(None, reports={"opening_start": "06:10"})


async def test_cli_report_wifi(tmp_path: Path, influx_server: InfluxDB, influx_db: str) -> None:
    cfg = load_config(None, reports={"output_dir": tmp_path})
    svc, _ = await small_fleet_report(influx_server, influx_db, load_inventory(cfg.inventory), cfg, days=1)
    await svc.influx.aclose()
    conf = tmp_path / "cloud.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "influx": {
                    "url": influx_server.url,
                    "database": influx_db,
                    "username": influx_server.username,
                    "password": influx_server.password,
                }
            }
        )
    )
    out = tmp_path / "out" / "oct.csv"
    args = ["report", "wifi", "--from", "2026-10-01", "--to", "2026-10-01", "--out", str(out)]
    assert (
        await asyncio.to_thread(cli, [*args, "--config", str(conf), "--commune", "tu-tra", "--lang", "en"])
        == 0
    )
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("Level,Id,Name") and lines[1].startswith("All,all,All")
    assert any(",tt-ap-01," in ln for ln in lines) and not any(",dr-ap-01," in ln for ln in lines)
    assert await asyncio.to_thread(cli, [*args, "--commune", "nowhere"]) == 2


def test_bench_report_short_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``commune-iot bench report`` end to end on two days (the full month: see docs/reports.md)."""
    from commune_iot.bench.report import main as bench

    assert bench(run_dir=tmp_path, days=2) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["aps"] == 35 and result["days"] == 2
    assert result["points"] == 2 * (35 * 2 * 1440 * 2) + 2 * 10  # 2 periods, ap + ap_if, outages
    assert 0 < result["build_s"] < 5
    assert {"render_html_s", "render_xlsx_s", "render_csv_s", "rollup_refresh_s"} <= set(result)


def test_chart_axes_midnight_ticks_nice_steps_and_lone_points() -> None:
    """Issue 17 item 6: date labels sit at local midnights, y ticks are round numbers read the
    same way twice at most once, a value without neighbours is drawn, an empty chart says so."""
    assert charts.nice_ticks(38) == ([0, 10, 20, 30, 40], 0)
    assert charts.nice_ticks(12) == ([0, 5, 10, 15], 0)
    assert charts.nice_ticks(1) == ([0, 0.2, 0.4, 0.6, 0.8, 1.0], 1)  # not 0, 0, 1, 1, 1
    assert charts.nice_ticks(0) == ([0, 1], 0)
    month = Period(date(2026, 10, 1), date(2026, 10, 31), "Asia/Ho_Chi_Minh")
    for step_s, n in ((3600, 31 * 24), (86400, 31)):
        ticks = charts.day_ticks(month.start, step_s, n, lambda d: d.strftime("%d/%m"))
        assert 5 <= len(ticks) <= 10
        for pos, label in ticks:
            at = month.start + timedelta(seconds=pos * step_s)
            assert (at.hour, at.minute) == (0, 0) and label == at.strftime("%d/%m"), (pos, label)
    week = charts.day_ticks(month.start, 3600, 7 * 24, lambda d: d.strftime("%d/%m"))
    assert [p for p, _ in week] == [24 * d for d in range(8)] and week[3][1] == "04/10"
    day = charts.day_ticks(month.start, 3600, 24, lambda d: d.strftime("%d/%m %H:%M"))
    assert [label for _, label in day] == [
        "01/10 00:00",
        "01/10 06:00",
        "01/10 12:00",
        "01/10 18:00",
        "02/10 00:00",
    ]
    assert [p for p, _ in day] == [0, 6, 12, 18, 24]

    def fmt(v: float, d: int) -> str:
        return number(v, "vi", d)

    lone = charts.line_chart({"all": [None, 3.0, None, 5.0, 6.0]}, {}, [], fmt)
    assert lone.count("<circle") == 1 and lone.count('class="series"') == 1  # the dot and the segment
    one = charts.line_chart({"all": [7.0]}, {}, [], fmt)
    assert "<circle" in one
    empty = charts.line_chart({"all": [None] * 24}, {}, [], fmt, empty="Không có số liệu")
    assert re.findall(r'class="axis y-tick"[^>]*>([^<]*)<', empty) == ["0"] and "Không có số liệu" in empty
    some = charts.line_chart({"all": [0.1, 0.9, 0.4]}, {}, [], fmt)
    labels = re.findall(r'class="axis y-tick"[^>]*>([^<]*)<', some)
    assert labels == ["0,0", "0,2", "0,4", "0,6", "0,8", "1,0"] and len(set(labels)) == len(labels)
