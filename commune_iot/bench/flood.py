"""One board floods the cloud while 58 others keep their normal cadence (issue 9, must-show 5).

Real Mosquitto, the real cloud ingest (``cloud.runtime.Runtime``: receiver process, group
commit, rate limits, alerting) and a real InfluxDB. Two publishers:

* the **flooder**, a process of its own (so its paho loop has its own GIL), publishes
  valid ``health`` messages of one board at QoS 1 as fast as it can, paced to at most
  ``--rate`` messages/s, for ``--seconds``. A hostile or broken board would do this; the
  broker accepts it (its ACL only checks the topic), so the cloud must cope.
* the **normal boards**, one paho client in this process publishing, for each of the other
  58 boards of the inventory, a ``health`` and a ``metrics`` message every
  ``--interval`` seconds (default 1 s: ten times a real board's cadence, to get many
  latency samples in a short run), spread evenly over the interval.

Measured: the rate the flooder achieved (messages acknowledged by the broker per second
of its run), how many of its messages the cloud throttled, and for every normal message
the latency from ``publish()`` to the ingest commit that made it durable (the moment it
is acknowledged; the observers hook of the worker runs right after the commit). At the end
every normal message must be queryable in InfluxDB.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from commune_iot.localsvc import InfluxDB, Mosquitto, local_stack
from wire import Channel, Health, Metrics, Point, encode, topic_for

SESSION = "f100d000"
NORMAL_SESSION = "0a0b0c0d"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _nodes() -> list[tuple[str, str]]:
    from cloud.inventory import load_inventory

    inv = load_inventory(Path(__file__).resolve().parents[2] / "firmware_config" / "inventory.yaml")
    return [(n.commune, n.id) for n in inv.nodes]


# --------------------------------------------------------------------------- flooder process
def flooder(port: int, commune: str, node: str, seconds: float, rate: float) -> None:
    """Publish valid health messages of ``node`` as fast as allowed; print one JSON line."""
    topic = topic_for(commune, node, Channel.HEALTH)
    base = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    head = f'{{"v":1,"node":"{node}","session":"{SESSION}","seq":'.encode()
    mid = b',"ts":"'
    tail = b'Z","replay":false,"cpu_pct":99.0,"agent_uptime_s":1.0,"outbox_depth":0}'
    acked = 0
    done = threading.Event()

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flooder-{node}", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.on_connect = lambda *_: done.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not done.wait(10):
        raise SystemExit("flooder: not connected")
    sent = 0
    t0 = time.monotonic()
    end = t0 + seconds
    step = 0.005
    per_step = max(1, round(rate * step))
    next_at = t0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for _ in range(per_step):
            sent += 1
            ts = (base + timedelta(milliseconds=sent)).isoformat(timespec="milliseconds").encode()
            c.publish(topic, b"".join((head, str(sent).encode(), mid, ts, tail)), qos=1)
        next_at += step
        if next_at > now:
            time.sleep(next_at - now)
        elif now - next_at > 0.5:  # cannot keep the pace: publish as fast as we can
            next_at = now
    pub_s = time.monotonic() - t0
    deadline = time.monotonic() + 30
    while acked < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    total_s = time.monotonic() - t0
    c.disconnect()
    c.loop_stop()
    print(
        json.dumps(
            {"sent": sent, "acked": acked, "publish_s": round(pub_s, 3), "acked_s": round(total_s, 3)}
        ),
        flush=True,
    )


# --------------------------------------------------------------------------- normal boards
@dataclass
class NormalBoards:
    port: int
    boards: list[tuple[str, str]]
    interval_s: float
    published: dict[tuple[str, int], float] = field(default_factory=dict)  # (node, seq) -> publish time
    rounds: int = 0  # health + metrics messages per board
    done: bool = False  # every message published (``published`` is complete)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self, seconds: float) -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="normal-boards", protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(0)
        connected = threading.Event()
        c.on_connect = lambda *_: connected.set()
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        connected.wait(10)
        infos = []
        base = datetime.now(UTC)
        t0 = time.monotonic()
        rounds = max(1, round(seconds / self.interval_s))
        slot = self.interval_s / len(self.boards)
        self.rounds = rounds
        for r in range(rounds):
            for i, (commune, node) in enumerate(self.boards):
                at = t0 + r * self.interval_s + i * slot
                delay = at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                seq = 2 * r + 1
                ts = base + timedelta(seconds=r * self.interval_s)
                h = Health(
                    node=node, session=NORMAL_SESSION, seq=seq, ts=ts, agent_uptime_s=r, outbox_depth=0
                )
                m = Metrics(
                    node=node,
                    session=NORMAL_SESSION,
                    seq=seq + 1,
                    ts=ts,
                    points=[Point(measurement="ap", device=node, fields={"reachable": True, "clients": r})],
                )
                for channel, msg in ((Channel.HEALTH, h), (Channel.METRICS, m)):
                    payload = encode(msg)
                    self.published[(node, msg.seq)] = time.time()
                    infos.append(c.publish(topic_for(commune, node, channel), payload, qos=1))
        self.done = True
        for info in infos:
            info.wait_for_publish(30)
        c.disconnect()
        c.loop_stop()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _influx_counts(influx: InfluxDB, db: str, measurement: str, field_: str) -> dict[str, int]:
    import base64
    import urllib.parse
    import urllib.request

    q = f'SELECT COUNT("{field_}") FROM "{measurement}" GROUP BY "node"'
    body = urllib.parse.urlencode({"db": db, "q": q}).encode()
    req = urllib.request.Request(f"{influx.url}/query", data=body, method="POST")
    if influx.username:
        token = base64.b64encode(f"{influx.username}:{influx.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        result = json.load(resp)["results"][0]
    return {s["tags"]["node"]: int(s["values"][0][1]) for s in result.get("series", [])}


async def run_flood(
    broker: Mosquitto,
    influx: InfluxDB,
    run_dir: Path,
    *,
    db: str = "flood",
    seconds: float = 10.0,
    rate: float = 10_000,
    interval_s: float = 1.0,
    settle_timeout_s: float = 60.0,
) -> dict[str, Any]:
    """The scenario; returns the figures (see the module docstring). Used by the bench and the test."""
    from cloud.config import load_config
    from cloud.runtime import Runtime

    cfg = load_config(
        None,
        mqtt={"url": broker.url, "client_id": "flood-ingest", "commit_interval_ms": 5},
        influx={
            "url": influx.url,
            "database": db,
            "username": influx.username,
            "password": influx.password,
            "flush_interval_s": 0.05,
            "spool_dir": run_dir / "spool",
            "self_metrics_s": 0,
        },
        sql={"url": f"sqlite:///{run_dir / 'cloud.db'}"},
        snapshots_dir=run_dir / "snapshots",
    )
    nodes = _nodes()
    flood_commune, flood_node = nodes[0]
    normal = NormalBoards(broker.port, nodes[1:], interval_s)
    committed: dict[tuple[str, int], float] = {}
    all_committed = threading.Event()
    flood_reports: list[tuple[str, bool, float]] = []

    def observe(items: Iterable[Any]) -> None:
        now = time.time()
        for res, _at in items:
            msg = res.message
            if msg is not None and res.node != flood_node and msg.session == NORMAL_SESSION:
                committed.setdefault((res.node, msg.seq), now)
        if normal.done and set(normal.published) <= committed.keys():
            all_committed.set()

    rt = Runtime(cfg, role="flood")
    rt.worker.observers.append(observe)
    rt.worker.flood_observers.append(
        lambda reports, _now: flood_reports.extend((r.node, r.active, r.rate_per_s) for r in reports)
    )
    await rt.start()
    try:
        if not await asyncio.to_thread(rt.worker.wait_connected, 15):
            raise RuntimeError(f"ingest not connected: {rt.worker.last_error}")
        await asyncio.sleep(0.5)  # subscription granted
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [
                sys.executable,
                "-m",
                "commune_iot.bench.flood",
                "--flooder",
                str(broker.port),
                flood_commune,
                flood_node,
                str(seconds),
                str(rate),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        t0 = time.monotonic()
        await asyncio.to_thread(normal.run, seconds)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"flooder exited with {proc.returncode}")
        flood = json.loads(out.strip().splitlines()[-1])
        expected = set(normal.published)
        deadline = time.monotonic() + settle_timeout_s
        if expected <= committed.keys():
            all_committed.set()
        await asyncio.to_thread(all_committed.wait, settle_timeout_s)
        # every normal point queryable in InfluxDB
        want_h = {node: normal.rounds for _c, node in normal.boards}
        stored_h: dict[str, int] = {}
        stored_m: dict[str, int] = {}
        while time.monotonic() < deadline:
            stored_h = await asyncio.to_thread(_influx_counts, influx, db, "health", "agent_uptime_s")
            stored_m = await asyncio.to_thread(_influx_counts, influx, db, "ap", "clients")
            if all(stored_h.get(n, 0) >= c for n, c in want_h.items()) and all(
                stored_m.get(n, 0) >= c for n, c in want_h.items()
            ):
                break
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - t0
        # node counters reach SQL within state_flush_interval_s of the last commit
        states = await asyncio.to_thread(rt.sql.node_states)
        while time.monotonic() < deadline + 10 and int(
            states.get(flood_node, {}).get("rate_limited") or 0
        ) < rt.stats.rate_limited.get(flood_node, 0):
            await asyncio.sleep(0.2)
            states = await asyncio.to_thread(rt.sql.node_states)
        dead = await asyncio.to_thread(rt.sql.dead_letter_rows, 10, flood_node)
        problems = rt.alerting.alerter.engine.device_problems(flood_node) if rt.alerting is not None else {}
        metrics_text = rt.metrics_text()
    finally:
        await rt.stop()
    latencies = [committed[k] - normal.published[k] for k in expected if k in committed]
    lost = len(expected) - len(latencies)
    missing_influx = sum(
        max(0, c - stored_h.get(n, 0)) + max(0, c - stored_m.get(n, 0)) for n, c in want_h.items()
    )
    flood_rate = flood["acked"] / flood["publish_s"] if flood["publish_s"] else 0.0
    return {
        "flood_node": flood_node,
        "flood_target_msgs_per_s": rate,
        "flood_sent": flood["sent"],
        "flood_acked_by_broker": flood["acked"],
        "flood_msgs_per_s": round(flood_rate, 1),
        "flood_seconds": flood["publish_s"],
        "throttled": int(states.get(flood_node, {}).get("rate_limited") or 0),
        "throttled_prometheus": rt.stats.rate_limited.get(flood_node, 0),
        "flood_stored": stored_h.get(flood_node, 0),
        "flood_reported": any(n == flood_node and active for n, active, _r in flood_reports),
        "flood_reported_rate": round(
            max((r for n, a, r in flood_reports if n == flood_node and a), default=0.0)
        ),
        "flooding_problem": problems.get("flooding"),
        "sample_dead_letters": [d["reason"] for d in dead],
        "prometheus_has_counter": f'ciot_messages_rate_limited_total{{node="{flood_node}"}}' in metrics_text,
        "normal_boards": len(normal.boards),
        "normal_messages": len(expected),
        "normal_committed": len(latencies),
        "normal_lost": lost,
        "normal_missing_in_influx": missing_influx,
        "normal_latency_p50_s": round(_percentile(latencies, 50), 4),
        "normal_latency_p95_s": round(_percentile(latencies, 95), 4),
        "normal_latency_max_s": round(max(latencies, default=float("nan")), 4),
        "normal_rate_limited": sum(
            int(st.get("rate_limited") or 0) for n, st in states.items() if n != flood_node
        ),
        "elapsed_s": round(elapsed, 2),
    }


def main(
    seconds: float = 10.0, rate: float = 10_000, interval_s: float = 1.0, run_dir: Path | None = None
) -> int:
    run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="ciot-flood-"))
    _say(
        f"flood benchmark: one board at up to {rate:,.0f} msg/s for {seconds:g} s, "
        f"58 boards every {interval_s:g} s"
    )
    with local_stack(run_dir) as stack:
        res = asyncio.run(
            run_flood(
                stack.mosquitto, stack.influx, run_dir, seconds=seconds, rate=rate, interval_s=interval_s
            )
        )
    _say(
        f"  flooder {res['flood_node']}: {res['flood_sent']:,} sent, "
        f"{res['flood_msgs_per_s']:,.0f} msg/s achieved; "
        f"throttled {res['throttled']:,}, stored {res['flood_stored']:,}; reported: {res['flood_reported']}"
    )
    _say(
        f"  normal boards: {res['normal_committed']}/{res['normal_messages']} committed, "
        f"latency p50 {res['normal_latency_p50_s'] * 1000:.0f} ms, "
        f"p95 {res['normal_latency_p95_s'] * 1000:.0f} ms, max {res['normal_latency_max_s'] * 1000:.0f} ms; "
        f"missing in InfluxDB: {res['normal_missing_in_influx']}"
    )
    print(json.dumps(res), flush=True)
    ok = res["normal_lost"] == 0 and res["normal_missing_in_influx"] == 0 and res["throttled"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--flooder":
        flooder(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(main())
