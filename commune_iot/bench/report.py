"""``commune-iot bench report``: how long a month's Wi-Fi report takes for 35 APs at 1-minute data.

Starts its own InfluxDB on loopback, writes one month (the previous calendar month, local
time) of 1-minute telemetry for the inventory's 35 APs (``ap`` with clients and uptime,
``ap_if`` with wrapping 32-bit octet counters, tagged as ingest tags them) and a few
outage records, then times ``ReportService.build`` and each renderer. Target: build < 5 s.
The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud.inventory import Device, Inventory, load_inventory
from cloud.reports.period import Period, last_month
from cloud.storage.lineproto import join, series_key

INVENTORY = Path(__file__).resolve().parents[2] / "firmware_config" / "inventory.yaml"
TZ = "Asia/Ho_Chi_Minh"


def _day_shape() -> list[float]:
    """Village activity per local minute of day (0..1): morning bump, midday, evening peak."""
    from edge.collectors.village_day import activity

    base = datetime(2026, 1, 5, tzinfo=ZoneInfo(TZ))
    return [activity(base.replace(hour=m // 60, minute=m % 60)) for m in range(1440)]


def telemetry_lines(
    devices: list[Device], period: Period, step_s: int = 60, seed: int = 8
) -> Iterator[list[str]]:
    """Line-protocol batches (one per AP and day) as ingest would store the APs' polls."""
    shape = _day_shape()
    offset_min = int(period.start.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    for d in devices:
        rng = random.Random(f"{seed}-{d.id}")
        peak = rng.randint(15, 45)
        kbps = rng.uniform(120, 400)
        tags = {"device": d.id, "node": d.node, "commune": d.commune, "site": d.site, "kind": d.kind}
        ap_key = series_key("ap", tags)
        if_key = series_key("ap_if", {**tags, "ifname": "eth0"})
        counter_in = rng.randrange(2**32)
        counter_out = rng.randrange(2**32)
        uptime = rng.uniform(3600, 86400 * 20)
        t = period.start_ms
        day_ms = 86_400_000
        while t < period.end_ms:
            out: list[str] = []
            for ms in range(t, min(t + day_ms, period.end_ms), step_s * 1000):
                minute = (ms // 60000 + offset_min) % 1440
                clients = max(0, round(peak * shape[minute] * (1 + 0.1 * math.sin(ms / 7e6))))
                uptime += step_s
                counter_in = (counter_in + int((clients * kbps * 1000 + 2000) * step_s / 8)) % 2**32
                counter_out = (counter_out + int((clients * kbps * 100 + 500) * step_s / 8)) % 2**32
                out.append(f"{ap_key} clients={float(clients)!r},reachable=true,uptime_s={uptime!r} {ms}")
                out.append(f"{if_key} in_octets={float(counter_in)!r},out_octets={float(counter_out)!r} {ms}")
            yield out
            t += day_ms


async def _write_all(url: str, db: str, batches: Iterator[list[str]], progress: bool) -> int:
    from cloud.storage.influx import InfluxClient, WriteOutcome

    n = 0
    async with InfluxClient(url, timeout_s=120) as influx:
        await influx.create_database(db)
        sem = asyncio.Semaphore(2)

        async def one(lines: list[str]) -> None:
            async with sem:
                r = await influx.write(db, join(lines))
                if r.outcome is not WriteOutcome.OK:
                    raise RuntimeError(f"write failed: {r.error}")

        pending: list[asyncio.Task[None]] = []
        last = time.monotonic()
        for lines in batches:
            n += len(lines)
            pending.append(asyncio.create_task(one(lines)))
            if len(pending) >= 4:
                await asyncio.gather(*pending)
                pending = []
            if progress and time.monotonic() - last > 2:
                last = time.monotonic()
                print(f"  {n:,} points written", flush=True)
        await asyncio.gather(*pending)
    return n


def outage_lines(devices: list[Device], period: Period) -> list[str]:
    """One AP outage and one board outage on a few APs, as the alerter records them."""
    out = []
    for i, d in enumerate(devices[:5]):
        start = period.start_ms + (i + 3) * 86_400_000 + 10 * 3_600_000
        tags = {"device": d.id, "node": d.node, "commune": d.commune, "scope": "device", "cause": "device"}
        end = start + 2 * 3_600_000
        out.append(f"{series_key('outage', tags)} end_ms={float(end)!r},duration_s=7200.0 {start}")
        tags = {**tags, "scope": "node", "cause": "silent"}
        start += 5 * 86_400_000
        out.append(
            f"{series_key('outage', tags)} end_ms={float(start + 3_600_000)!r},duration_s=3600.0 {start}"
        )
    return out


def main(run_dir: Path | None = None, days: int | None = None) -> int:
    from cloud.reports.service import ReportService
    from cloud.reports.settings import ReportsConfig
    from cloud.storage.influx import InfluxClient
    from commune_iot.localsvc import InfluxDB

    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-report-"))
    inventory: Inventory = load_inventory(INVENTORY)
    devices = [d for d in inventory.devices if d.kind == "ap"]
    period = last_month(datetime.now(ZoneInfo(TZ)), TZ)
    if days:
        period = Period(period.first, period.first.replace(day=days), TZ)
    print(f"starting InfluxDB in {base}", flush=True)
    server = InfluxDB(base / "influx").start()
    try:
        db = "bench_report"
        points = 0
        for p in (period.previous(), period):
            print(f"writing {p.days} days of 1-minute data for {len(devices)} APs ({p.key})", flush=True)
            t0 = time.perf_counter()
            points += asyncio.run(_write_all(server.url, db, telemetry_lines(devices, p), True))
            points += asyncio.run(_write_all(server.url, db, iter([outage_lines(devices, p)]), False))
            print(f"  {points:,} points so far, {time.perf_counter() - t0:.1f} s", flush=True)

        async def build() -> dict[str, float]:
            async with InfluxClient(server.url, timeout_s=120) as influx:
                svc = ReportService(influx, db, inventory, ReportsConfig())
                timings: dict[str, float] = {}
                print("rolling up (what the continuous queries do as data arrives)", flush=True)
                t = time.perf_counter()
                await svc.ensure_rollups()
                await svc.refresh(period)
                timings["rollup_refresh_s"] = time.perf_counter() - t
                print("building the report (InfluxQL + compute)", flush=True)
                t = time.perf_counter()
                report = await svc.build(period)
                timings["build_s"] = time.perf_counter() - t
                for fmt in ("html", "xlsx", "csv"):
                    t = time.perf_counter()
                    svc.render(report, fmt, "vi")
                    timings[f"render_{fmt}_s"] = time.perf_counter() - t
                print(
                    f"  report: {report.total.metrics.client_hours or 0:,.0f} client-hours, "
                    f"peak {report.total.metrics.peak_clients}",
                    flush=True,
                )
                return timings

        timings = asyncio.run(build())
        print(f"  build {timings['build_s']:.2f} s (target < 5 s)", flush=True)
    finally:
        server.stop()
    result = {
        "aps": len(devices),
        "days": period.days,
        "points": points,
        **{k: round(v, 3) for k, v in timings.items()},
        "target_build_s": 5.0,
    }
    print(json.dumps(result))
    return 0 if timings["build_s"] < 5.0 else 1
