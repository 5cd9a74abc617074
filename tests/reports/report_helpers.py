"""Test data for the Wi-Fi report tests: AP polls as wire messages, a publisher, small fleets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import CloudConfig, load_config
from cloud.ingest.convert import Converter
from cloud.inventory import Inventory
from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.lineproto import join
from commune_iot.localsvc import InfluxDB, Mosquitto
from wire import Channel, Metrics, Point, encode, topic_for

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
POLL = timedelta(minutes=5)
SESSION = "5e55101a"


@dataclass(frozen=True, slots=True)
class Poll:
    """One SNMP poll of one AP as the agent sends it; ``None`` clients: AP unreachable."""

    at: datetime
    clients: int | None
    uptime_s: float | None = None
    in_octets: int | None = None
    out_octets: int | None = None

    def points(self, device: str) -> list[Point]:
        if self.clients is None:
            return [
                Point(measurement="ap", device=device, fields={"reachable": False, "ping": False}, ts=self.at)
            ]
        fields: dict[str, bool | int | float | str] = {"reachable": True, "clients": self.clients}
        if self.uptime_s is not None:
            fields["uptime_s"] = self.uptime_s
        pts = [Point(measurement="ap", device=device, fields=fields, ts=self.at)]
        if self.in_octets is not None and self.out_octets is not None:
            pts.append(
                Point(
                    measurement="ap_if",
                    device=device,
                    tags={"ifname": "eth0"},
                    fields={"in_octets": self.in_octets, "out_octets": self.out_octets},
                    ts=self.at,
                )
            )
        return pts


def local(*args: int) -> datetime:
    """A local (Asia/Ho_Chi_Minh) time as an aware UTC datetime."""
    return datetime(*args, tzinfo=TZ).astimezone(UTC)  # type: ignore[misc]


def every_poll(start: datetime, end: datetime) -> Iterator[datetime]:
    t = start
    while t < end:
        yield t
        t += POLL


def messages(
    commune: str, node: str, device: str, polls: Iterable[Poll], per_message: int = 6
) -> Iterator[tuple[str, bytes]]:
    """Metrics messages of ``per_message`` polls each (what an agent replaying its outbox sends)."""
    topic = topic_for(commune, node, Channel.METRICS)
    batch: list[Poll] = []
    seq = 0

    def flush() -> tuple[str, bytes]:
        nonlocal seq
        seq += 1
        points = [p for poll in batch for p in poll.points(device)]
        msg = Metrics(node=node, session=SESSION, seq=seq, ts=batch[-1].at, points=points)
        batch.clear()
        return topic, encode(msg)

    for poll in polls:
        batch.append(poll)
        if len(batch) == per_message:
            yield flush()
    if batch:
        yield flush()


def publish(broker: Mosquitto, msgs: Iterable[tuple[str, bytes]]) -> int:
    """QoS 1 through the real broker; returns when every message is acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    infos = []
    try:
        for topic, payload in msgs:
            infos.append(c.publish(topic, payload, qos=1))
        for info in infos:
            info.wait_for_publish(60)
    finally:
        c.disconnect()
        c.loop_stop()
    return len(infos)


async def write_converted(
    influx: InfluxClient, db: str, inventory: Inventory, msgs: Iterable[tuple[str, bytes]]
) -> int:
    """The bulk path: the ingest's own conversion (convert.py), written straight to InfluxDB."""
    conv = Converter(inventory)
    lines: list[str] = []
    for topic, payload in msgs:
        res = conv.convert(topic, payload)
        assert not hasattr(res, "reason"), res
        lines += res.lines  # type: ignore[union-attr]
    await influx.create_database(db)
    for i in range(0, len(lines), 20_000):
        r = await influx.write(db, join(lines[i : i + 20_000]))
        assert r.outcome is WriteOutcome.OK, r.error
    return len(lines)


def cloud_config(tmp: Path, broker: Mosquitto, influx: InfluxDB, db: str, **extra: Any) -> CloudConfig:
    return load_config(
        None,
        mqtt={"url": broker.url, "client_id": "report-test", "commit_interval_ms": 5},
        influx={
            "url": influx.url,
            "database": db,
            "username": influx.username,
            "password": influx.password,
            "flush_interval_s": 0.05,
            "spool_dir": tmp / "spool",
            "self_metrics_s": 0,
            "retention": {"raw_days": 0},  # the months of these tests lie in the past
        },
        sql={"url": f"sqlite:///{tmp / 'cloud.db'}"},
        snapshots_dir=tmp / "snapshots",
        alerting={"enabled": False},
        reports={"output_dir": tmp / "reports"},
        **extra,
    )


async def eventually(probe: Callable[[], Any], ok: Callable[[Any], bool], within_s: float, what: str) -> Any:
    """Await a condition by polling its probe (InfluxDB has no change feed); no fixed sleeps."""
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.2)


def small_fleet_lines(inventory: Inventory, first: datetime, days: int, step_s: int = 900) -> list[str]:
    """A few days of coarse telemetry for all 35 APs (format and browser tests)."""
    from cloud.reports.period import Period
    from commune_iot.bench.report import telemetry_lines

    local_first = first.astimezone(TZ).date()
    period = Period(local_first, local_first + timedelta(days=days - 1), "Asia/Ho_Chi_Minh")
    devices = [d for d in inventory.devices if d.kind == "ap"]
    return [ln for batch in telemetry_lines(devices, period, step_s=step_s) for ln in batch]


async def small_fleet_report(
    influx_server: InfluxDB, db: str, inventory: Inventory, cfg: CloudConfig, days: int = 3
) -> tuple[Any, Any]:
    """Write ``days`` of 15-minute data for the 35 APs (1 Oct 2026 on), build its report.

    Returns ``(service, report)``; the service's InfluxDB client stays open for the caller
    (``await service.influx.aclose()``).
    """
    from datetime import date

    from cloud.reports.period import Period
    from cloud.reports.service import ReportService

    influx = InfluxClient(influx_server.url, username=influx_server.username, password=influx_server.password)
    await influx.create_database(db)
    lines = small_fleet_lines(inventory, local(2026, 10, 1), days)
    for i in range(0, len(lines), 20_000):
        r = await influx.write(db, join(lines[i : i + 20_000]))
        assert r.outcome is WriteOutcome.OK, r.error
    svc = ReportService(influx, db, inventory, cfg.reports)
    period = Period(date(2026, 10, 1), date(2026, 10, days), "Asia/Ho_Chi_Minh")
    report = await svc.build(period, now=datetime(2026, 11, 28, tzinfo=UTC), refresh=True)
    return svc, report
