"""What VictoriaMetrics (Debian's victoria-metrics 1.79) keeps of what the cloud writes to InfluxDB.

A measured fact behind docs/scaling.md ("Time series beyond one InfluxDB 1.x node"): it takes
the cloud's writes unchanged (the v1 ``/write`` with our line protocol and ms precision), keeps
numbers and booleans, loses string fields, and does not answer InfluxQL, which every report,
dashboard and API query of the cloud speaks. The test turns red if any of that changes.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud.config import REPO_ROOT
from cloud.ingest.convert import Converted, Converter
from cloud.inventory import load_inventory
from cloud.storage.influx import InfluxClient, WriteOutcome
from commune_iot.localsvc import _need, _Server, free_port
from wire import Channel, Health, Metrics, Point, Status, encode, topic_for


class VictoriaMetrics(_Server):
    def __init__(self, run_dir: Path) -> None:
        super().__init__("victoria-metrics", run_dir, free_port())
        self.binary = _need("victoria-metrics", "victoria-metrics")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VictoriaMetrics:
        data = self.run_dir / "vm-data"
        argv = [self.binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={data}"]
        self._spawn([*argv, "-retentionPeriod=1y"])
        self.wait_ready()
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def export(self, metric: str) -> list[dict[str, Any]]:
        """Every series of ``metric`` (its own query language, not InfluxQL), after a flush."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/internal/force_flush"), timeout=5).close()
        q = urllib.parse.urlencode({"match[]": metric})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{q}", timeout=5) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line]


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path)
    try:
        yield server.start()
    finally:
        server.kill()


def _our_lines() -> bytes:
    """What the cloud's ingest writes for a board's health, AP metrics and a Will."""
    conv = Converter(load_inventory(REPO_ROOT / "firmware_config" / "inventory.yaml"))
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    env = {"node": "tt-ap-03", "session": "0123456789abcdef", "ts": ts}
    health = Health(**env, seq=1, cpu_pct=12.5, mem_used_pct=40.0, agent_uptime_s=60.0, outbox_depth=0)
    point = Point(measurement="ap", device="tt-ap-03", fields={"clients": 7, "reachable": True})
    lines: list[str] = []
    for channel, msg in ((Channel.HEALTH, health), (Channel.METRICS, Metrics(**env, seq=2, points=[point]))):
        c = conv.convert(topic_for("tu-tra", "tt-ap-03", channel), encode(msg), received_at=ts.timestamp())
        assert isinstance(c, Converted)
        lines += c.lines
    will = Status(node="tt-ap-03", session="0123456789abcdef", seq=0, ts=ts, state="offline", reason="will")
    status_topic = topic_for("tu-tra", "tt-ap-03", Channel.STATUS)
    lines.append(conv.status_line(status_topic, will, int(ts.timestamp() * 1000)))
    return "\n".join(lines).encode()


async def _write_and_ask(vm: VictoriaMetrics) -> list[dict[str, Any]]:
    """Write with the cloud's own client, unchanged; ask InfluxQL as the reports do."""
    async with InfluxClient(vm.url) as client:
        written = await client.write("ciot", _our_lines())
        assert written.outcome is WriteOutcome.OK, written
        return await client.query('SELECT mean("cpu_pct") FROM "health" GROUP BY "node"', db="ciot")


def test_victoria_metrics_takes_our_writes_keeps_numbers_loses_text_and_answers_no_influxql(
    vm: VictoriaMetrics,
) -> None:
    answer = asyncio.run(_write_and_ask(vm))
    # InfluxQL: a stub that names databases, whatever was asked (it exists for Telegraf)
    assert [s["name"] for s in answer] == ["databases"]
    deadline = time.monotonic() + 10
    while not vm.export("health_cpu_pct"):  # each field becomes a metric <measurement>_<field>
        assert time.monotonic() < deadline, "the health point never became visible"
        time.sleep(0.2)
    cpu = vm.export("health_cpu_pct")[0]
    assert cpu["values"] == [12.5]
    assert {k: cpu["metric"][k] for k in ("node", "commune", "site", "db")} == {
        "node": "tt-ap-03",
        "commune": "tu-tra",
        "site": "tt-thon-03",
        "db": "ciot",
    }  # our tags are labels, the database one more
    assert vm.export("ap_reachable")[0]["values"] == [1]  # booleans become 0/1
    assert vm.export("ap_clients")[0]["values"] == [7]
    assert vm.export("status_reason")[0]["values"] == [0]  # "will": the text is gone
