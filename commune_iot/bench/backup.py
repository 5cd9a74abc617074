"""``commune-iot bench backup``: how long a backup and a restore take for the pilot's data.

The pilot's volume is made, then backed up while the cloud ingests, then restored onto a
fresh node, which is started until it answers ``/readyz``:

* time series: ``--days`` days of the 59 pilot boards' raw points (one simulated day through
  the cloud's converter, repeated day after day; 44 full days and today are what
  ``influx.retention.raw_days`` 45 keeps) and their rollups;
* the event log: ``--event-days`` days (``events.retention_days`` is 30) of
  ``--events-per-camera-day`` motion events for each of the 24 cameras, each with a snapshot
  of ``--snapshot-kb`` (the camera agent's 640-pixel JPEGs weigh 40-80 kB);
* while the backup runs, the 59 boards keep sending (``commune_iot.bench.boards``).

RTO = restore + start; RPO = the time between two backups plus one backup's duration (what
a node dying just before the next backup ends loses), and what the journal had not yet
written to InfluxDB (under a second normally).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from commune_iot.bench.boards import BoardSpec
from commune_iot.bench.disk import _day_lines
from commune_iot.bench.scale import BoardProcesses
from commune_iot.fleet import INVENTORY, CloudProcess, cloud_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

DAY_MS = 86_400_000


def _say(msg: str) -> None:
    print(msg, flush=True)


def _node(run: Path, broker: Mosquitto, influx: InfluxDB) -> CloudProcess:
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx.url,
        influx_db="ciot",
        influx_user="",
        influx_password_file=None,
        state_dir=run,
        http_port=free_port(),
    )
    cfg["influx"]["backup_address"] = f"127.0.0.1:{influx.rpc_port}"
    cfg["events"] = {"exports_dir": "var/exports", "signing_key_file": "var/keys/evidence.pem"}
    cfg["reports"] = {"output_dir": "var/reports"}
    cfg["releases"] = {"dir": "var/releases"}
    cfg["fleet"] = {"signing_key_file": "var/keys/fleet.pem"}
    return CloudProcess.write(run, cfg)


def _pilot_specs() -> list[BoardSpec]:
    return [BoardSpec(d["node"], d["commune"], d["kind"]) for d in load_devices()]


async def _write_days(influx: InfluxDB, lines: list[str], days: int, base_ms: int) -> int:
    """The simulated day, shifted back day after day, into the raw policy; then the rollups."""
    from cloud.reports import wifi_query
    from cloud.storage.influx import InfluxClient, WriteOutcome

    n = 0
    async with InfluxClient(influx.url, timeout_s=300) as client:
        for d in range(days):
            shift = d * DAY_MS
            batch: list[str] = []
            for ln in lines:
                head, _, ts = ln.rpartition(" ")
                batch.append(f"{head} {int(ts) - shift}")
                if len(batch) == 50_000:
                    res = await client.write("ciot", ("\n".join(batch) + "\n").encode())
                    if res.outcome is not WriteOutcome.OK:
                        raise RuntimeError(res.error)
                    n += len(batch)
                    batch = []
            if batch:
                await client.write("ciot", ("\n".join(batch) + "\n").encode())
                n += len(batch)
        await wifi_query.refresh(client, "ciot", base_ms - (days - 1) * DAY_MS, base_ms + DAY_MS)
    return n


def _events(cfg_path: Path, days: int, per_day: int, kb: int) -> tuple[int, int]:
    """Motion events with snapshots of the pilot's cameras, as ingest stores them."""
    from cloud.config import load_config
    from cloud.events.store import EventRecord
    from cloud.storage.snapshots import SnapshotStore
    from cloud.storage.sql import BatchUpdate, SqlStore

    cfg = load_config(cfg_path)
    sql = SqlStore(cfg.sql.url)
    snaps = SnapshotStore(cfg.snapshots_dir)
    cams = [d for d in load_devices() if d["kind"] == "camera"]
    rnd = random.Random(3)
    now = time.time()
    total = nbytes = 0
    try:
        for cam in cams:
            records = []
            for i in range(days * per_day):
                start = now - days * 86400 + i * 86400 / per_day + rnd.uniform(0, 60)
                jpeg = b"\xff\xd8\xff\xe0" + os.urandom(kb * 1024 - 6) + b"\xff\xd9"
                sha = snaps.put(jpeg)
                nbytes += len(jpeg)
                records.append(
                    EventRecord(
                        device=cam["id"],
                        event_id=f"{cam['id']}-bk-{i}",
                        node=cam["node"],
                        commune=cam["commune"],
                        site=cam["site"],
                        phase="end",
                        start=start,
                        end=start + 12,
                        msg_ts=start + 12,
                        peak_area_pct=rnd.uniform(1, 30),
                        boxes=[{"x": 0.1, "y": 0.2, "w": 0.1, "h": 0.3}],
                        zones=[],
                        score=0.8,
                        frames=60,
                        snapshot_sha256=sha,
                        received_at=start + 13,
                    )
                )
            sql.apply(BatchUpdate(events=records))  # as ingest stores them
            total += len(records)
    finally:
        sql.dispose()
    return total, nbytes


def _ready(cloud: CloudProcess, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(f"{cloud.url}/readyz", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"restored node not ready after {timeout:.0f} s")


def main(
    days: int = 44,
    event_days: int = 30,
    events_per_camera_day: int = 50,
    snapshot_kb: int = 60,
    run_dir: Path | None = None,
) -> int:
    from cloud.config import load_config
    from commune_iot.backup import backup, restore

    run = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="ciot-bench-backup-"))
    _say(
        f"backup and restore of the pilot's data: 59 boards, {days} days of time series, {event_days} days "
        f"of events ({events_per_camera_day} a camera a day, {snapshot_kb} kB snapshots); run dir {run}"
    )
    broker = Mosquitto(run / "mq").start()
    influx = InfluxDB(run / "influx").start()
    original = _node(run / "original", broker, influx)
    load: BoardProcesses | None = None
    broker2 = influx2 = restored = None
    try:
        original.start(wait=60)
        t = time.monotonic()
        specs = _pilot_specs()
        base = _yesterday()
        lines = _day_lines(specs, INVENTORY, base)
        points = asyncio.run(_write_days(influx, lines, days, int(base.timestamp() * 1000)))
        _say(f"  {points:,} points written in {time.monotonic() - t:.0f} s")
        t = time.monotonic()
        events, nbytes = _events(original.config_path, event_days, events_per_camera_day, snapshot_kb)
        _say(f"  {events:,} events and {nbytes / 1e9:.2f} GB of snapshots in {time.monotonic() - t:.0f} s")
        load = BoardProcesses.start(
            [{"node": s.node, "commune": s.commune, "kind": s.kind} for s in specs],
            broker.port,
            ramp_per_s=100,
            seed=9,
        )
        load.wait_ready(60)
        time.sleep(15)  # the boards send while the backup runs
        t = time.monotonic()
        dest = backup(load_config(original.config_path), run / "backups")
        backup_s = time.monotonic() - t
        manifest: dict[str, Any] = json.loads((dest / "manifest.json").read_text())
        _say(f"  backup: {manifest['bytes'] / 1e9:.2f} GB in {backup_s:.0f} s {manifest['durations_s']}")
        load.stop()
        load = None
        original.stop()
        broker2 = Mosquitto(run / "mq2").start()
        influx2 = InfluxDB(run / "influx2").start()
        restored = _node(run / "restored", broker2, influx2)
        t = time.monotonic()
        took = restore(load_config(restored.config_path), dest)
        restore_s = time.monotonic() - t
        restored.start(wait=0)
        start_s = _ready(restored, 300)
        parts = {k: round(v, 1) for k, v in took.items()}
        _say(f"  restore {restore_s:.0f} s {parts}, start {start_s:.0f} s")
        sizes = {
            part: sum(p.stat().st_size for p in (dest / part).rglob("*") if p.is_file())
            for part in ("sql", "influx", "files")
        }
    finally:
        if load is not None:
            load.stop()
        for c in (restored, original):
            if c is not None:
                c.stop()
        for s in (broker, influx, broker2, influx2):
            if s is not None:
                s.stop()
    out = {
        "days": days,
        "event_days": event_days,
        "events": events,
        "backup_gb": round(manifest["bytes"] / 1e9, 3),
        "sql_mb": round(sizes["sql"] / 1e6, 1),
        "influx_mb": round(sizes["influx"] / 1e6, 1),
        "files_mb": round(sizes["files"] / 1e6, 1),
        "backup_s": round(backup_s, 1),
        **{f"backup_{k}": v for k, v in manifest["durations_s"].items()},
        "restore_s": round(restore_s, 1),
        **{f"restore_{k}": round(v, 1) for k, v in took.items()},
        "start_s": round(start_s, 1),
        "rto_s": round(restore_s + start_s, 1),
    }
    print(json.dumps(out), flush=True)
    return 0


def _yesterday() -> Any:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
