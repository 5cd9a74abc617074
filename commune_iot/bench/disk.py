"""``commune-iot bench disk``: what a board costs InfluxDB on disk, per day and per year.

One simulated day of ``--boards`` boards (access points and cameras as in ``bench scale``:
health every 10 s, metrics at the collectors' intervals, the same payloads) goes through
the cloud's own converter into a fresh InfluxDB 1.x with the cloud's retention policies,
the report rollups of that day are computed the way the continuous queries do, InfluxDB is
left to compact (told to do so within seconds, not after its usual hours), and the size of
each retention policy's shard files is read from disk. A day compresses as it would in
production: every series holds a full day of points.

Per year = ``raw_days`` x raw per day + 365 x rollups per day (influx.retention).
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cloud.storage.retention import RAW_DAYS, ROLLUP_DAYS
from commune_iot.bench.boards import BoardSpec, health_payload, make_collector, metrics_payload
from commune_iot.bench.scale import board_specs, write_inventory
from commune_iot.localsvc import InfluxDB
from wire import Channel, topic_for

DB = "ciot"
BATCH = 5000


def _say(msg: str) -> None:
    print(msg, flush=True)


def _day_lines(specs: list[BoardSpec], inventory: Path, start: datetime) -> list[str]:
    """Every line the cloud would write for one day of these boards."""
    from cloud.ingest.convert import Converted, Converter
    from cloud.inventory import load_inventory

    conv = Converter(load_inventory(inventory))
    rnd = random.Random(7)
    lines: list[str] = []
    t0 = start.timestamp()
    for spec in specs:
        collector = make_collector(spec)
        session = secrets.token_hex(8)
        events: list[tuple[float, str]] = []
        phase = rnd.uniform(0, 10)
        events += [(t0 + phase + i * 10.0, "health") for i in range(8640)]
        step = spec.metrics_interval_s
        phase = rnd.uniform(0, step)
        events += [(t0 + phase + i * step, "metrics") for i in range(int(86400 / step))]
        events.sort()
        for seq, (at, what) in enumerate(events, 1):
            now = datetime.fromtimestamp(at, UTC)
            if what == "health":
                topic = topic_for(spec.commune, spec.node, Channel.HEALTH)
                payload = health_payload(spec.node, session, seq, now, at - t0, rnd)
            else:
                topic = topic_for(spec.commune, spec.node, Channel.METRICS)
                payload = metrics_payload(collector, session, seq, now, at - t0)
            res = conv.convert(topic, payload, at + 0.05)
            assert isinstance(res, Converted), res
            lines.extend(res.lines)
    return lines


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


async def _load(
    influx: InfluxDB, lines: list[str], start: datetime, raw_days: float, rollup_days: float
) -> None:
    from cloud.reports import wifi_query
    from cloud.storage.influx import InfluxClient, WriteOutcome
    from cloud.storage.retention import ensure_retention

    async with InfluxClient(influx.url, timeout_s=120) as client:
        await ensure_retention(client, DB, raw_days=raw_days, rollup_days=rollup_days)
        for i in range(0, len(lines), BATCH):
            res = await client.write(DB, ("\n".join(lines[i : i + BATCH]) + "\n").encode())
            if res.outcome is not WriteOutcome.OK:
                raise RuntimeError(f"InfluxDB refused the day's points: {res.error}")
        start_ms = int(start.timestamp() * 1000)
        await wifi_query.refresh(client, DB, start_ms, start_ms + 86_400_000)


def _wait_compacted(data: Path, timeout: float = 120.0) -> None:
    """Until the write-ahead log is empty and the shard files have not changed for 5 s."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        wal = sum(p.stat().st_size for p in (data / "wal" / DB).rglob("*.wal") if p.is_file())
        sizes = (_dir_bytes(data / "data" / DB), wal)
        if sizes != last:
            last, stable_since = sizes, time.monotonic()
        elif wal == 0 and time.monotonic() - stable_since >= 5.0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"InfluxDB did not finish compacting within {timeout:.0f} s")


def per_board_day(
    run_dir: Path, boards: int = 20, raw_days: float = RAW_DAYS, rollup_days: float = ROLLUP_DAYS
) -> dict[str, Any]:
    """Measure one simulated day of ``boards`` boards; sizes per board."""
    run_dir.mkdir(parents=True, exist_ok=True)
    specs = [BoardSpec(s["node"], s["commune"], s["kind"]) for s in board_specs(boards)]  # type: ignore[arg-type]
    inventory = write_inventory(
        [{"node": s.node, "commune": s.commune, "kind": s.kind} for s in specs], run_dir / "inventory.yaml"
    )
    start = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    t0 = time.monotonic()
    lines = _day_lines(specs, inventory, start)
    _say(f"  {len(lines):,} points for one day of {boards} boards, made in {time.monotonic() - t0:.0f} s")
    influx = InfluxDB(run_dir / "influx", compact_soon=True).start()
    try:
        asyncio.run(_load(influx, lines, start, raw_days, rollup_days))
        data = run_dir / "influx" / "influxdb-data"
        _wait_compacted(data)
        raw = _dir_bytes(data / "data" / DB / "autogen")
        rollups = _dir_bytes(data / "data" / DB / "rollups")
    finally:
        influx.stop()
    raw_mb = raw / boards / 1e6
    rollup_mb = rollups / boards / 1e6
    return {
        "boards": boards,
        "points_per_board_per_day": round(len(lines) / boards),
        "raw_mb": round(raw_mb, 3),
        "rollup_mb": round(rollup_mb, 4),
        "bytes_per_point": round(raw / len(lines), 2),  # a line: one time, all its fields
        "raw_days": raw_days,
        "per_year_mb": round(raw_mb * (raw_days if raw_days > 0 else 365) + rollup_mb * 365, 1),
    }


def main(
    boards: int = 20,
    run_dir: Path | None = None,
    raw_days: float = RAW_DAYS,
    rollup_days: float = ROLLUP_DAYS,
) -> int:
    run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="ciot-bench-disk-"))
    _say(f"InfluxDB disk per board: one simulated day of {boards} boards, compacted; run dir {run_dir}")
    res = per_board_day(run_dir, boards, raw_days, rollup_days)
    _say(
        f"  raw points {res['raw_mb']:.3f} MB per board per day ({res['bytes_per_point']} B a point), "
        f"rollups {res['rollup_mb'] * 1000:.1f} kB per board per day; a year with raw points kept "
        f"{raw_days:g} days: {res['per_year_mb']} MB per board"
    )
    out = {
        "boards": res["boards"],
        "points_per_board_per_day": res["points_per_board_per_day"],
        "raw_mb_per_board_per_day": res["raw_mb"],
        "rollup_mb_per_board_per_day": res["rollup_mb"],
        "bytes_per_point": res["bytes_per_point"],
        "raw_days": raw_days,
        "rollup_days": rollup_days,
        "mb_per_board_per_year": res["per_year_mb"],
    }
    print(json.dumps(out), flush=True)
    return 0
