"""Ingest throughput: MQTT -> ingest workers -> InfluxDB, against a bare subscriber.

Method (same for both sides, so the ratio is fair): the consumer processes start and
connect with an empty queue, are frozen with SIGSTOP, N messages are published at QoS 1
through a real Mosquitto (queued by the broker), then the consumers are resumed with
SIGCONT and the clock starts. The bare subscriber (paho, QoS 1, auto-ack, does nothing)
stops the clock at its N-th message; the ingest run stops it when COUNT queries in
InfluxDB find every point. Publisher cost and process start-up are thus excluded.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from commune_iot.localsvc import InfluxDB, Mosquitto, local_stack
from wire import Channel, Health, Metrics, MotionEvent, Point, encode, topic_for

RECEIVE_MAXIMUM = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _say(msg: str) -> None:
    print(msg, flush=True)


def _nodes() -> list[tuple[str, str, str]]:
    """(commune, node, kind) of the pilot inventory."""
    from cloud.inventory import load_inventory

    inv = load_inventory(Path(__file__).resolve().parents[2] / "firmware_config" / "inventory.yaml")
    return [(n.commune, n.id, inv.node_kind(n.id)) for n in inv.nodes]


def make_traffic(n: int, seed: int = 1) -> tuple[list[tuple[str, bytes]], Counter[str]]:
    """N realistic messages (60% health, 32% metrics, 8% motion) and the points expected per measurement."""
    rnd = random.Random(seed)
    nodes = _nodes()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)  # within raw retention
    seqs: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        commune, node, kind = nodes[i % len(nodes)]
        seqs[node] += 1
        seq = seqs[node]
        ts = base + timedelta(milliseconds=seq * 10)
        r = rnd.random()
        if r < 0.60:
            msg: Health | Metrics | MotionEvent = Health(
                node=node,
                session="be4c0001",
                seq=seq,
                ts=ts,
                cpu_pct=rnd.uniform(1, 90),
                load1=rnd.uniform(0, 2),
                load5=0.5,
                load15=0.4,
                mem_used_pct=rnd.uniform(20, 80),
                mem_avail_mb=512.0,
                disk_used_pct=40.0,
                disk_free_mb=9000.0,
                temp_c=rnd.uniform(35, 70),
                agent_uptime_s=seq * 10.0,
                board_uptime_s=86400.0 + seq,
                outbox_depth=0,
            )
            channel, meas = Channel.HEALTH, ["health"]
        elif r < 0.92 or kind != "camera":
            if kind == "camera":
                points = [
                    Point(
                        measurement="camera",
                        device=node,
                        fields={"up": True, "fps": rnd.uniform(10, 15), "frozen": False, "decode_errors": 0},
                    )
                ]
            else:
                points = [
                    Point(
                        measurement="ap",
                        device=node,
                        fields={"reachable": True, "uptime_s": 1000.0 + seq, "clients": rnd.randint(0, 40)},
                    ),
                    Point(measurement="ap_radio", device=node, tags={"band": "2g"}, fields={"clients": 3}),
                    Point(measurement="ap_radio", device=node, tags={"band": "5g"}, fields={"clients": 5}),
                ]
            msg = Metrics(node=node, session="be4c0001", seq=seq, ts=ts, points=points)
            channel, meas = Channel.METRICS, [p.measurement for p in points]
        else:
            msg = MotionEvent(
                node=node,
                session="be4c0001",
                seq=seq,
                ts=ts,
                event_id=f"ev{seq}",
                device=node,
                phase="end",
                start=ts - timedelta(seconds=4),
                end=ts,
                peak_area_pct=rnd.uniform(1, 30),
                score=0.7,
                snapshot_sha256="ab" * 32,
            )
            channel, meas = Channel.EVENT, ["motion"]
        expected.update(meas)
        out.append((topic_for(commune, node, channel), encode(msg)))
    return out, expected


def publish(port: int, traffic: list[tuple[str, bytes]]) -> float:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.monotonic()
    chunk = 20_000  # packet ids are 16-bit: keep well under 65535 messages outstanding
    for i in range(0, len(traffic), chunk):
        infos = [c.publish(t, p, qos=1) for t, p in traffic[i : i + chunk]]
        for info in infos:
            info.wait_for_publish(120)
    dt = time.monotonic() - t0
    c.disconnect()
    c.loop_stop()
    return dt


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (a worker runs its MQTT receiver as a child)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            out.extend(_family(int(child)))
    return out


def _cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants, so a worker's child processes count too."""
    total = 0.0
    for p in _family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    """Signal a worker and its child processes (each worker leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _influx_count(influx: InfluxDB, db: str, measurements: list[str]) -> Counter[str]:
    q = ";".join(f'SELECT COUNT("{_count_field(m)}") FROM "{m}"' for m in measurements)
    body = urllib.parse.urlencode({"db": db, "q": q}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{influx.url}/query", data=body), timeout=30) as r:
        results = json.load(r)["results"]
    out: Counter[str] = Counter()
    for m, res in zip(measurements, results, strict=True):
        series = res.get("series")
        out[m] = int(series[0]["values"][0][1]) if series else 0
    return out


def _count_field(measurement: str) -> str:
    return {"ap": "reachable", "ap_radio": "clients", "camera": "fps"}.get(measurement, "seq")


# --------------------------------------------------------------------------- bare subscriber
def bare_subscriber(port: int, n: int) -> None:
    """Child process: count N QoS-1 messages, print the wall-clock time of the last one."""
    got = 0
    done = time.time()

    def on_message(_c: mqtt.Client, _u: Any, _m: mqtt.MQTTMessage) -> None:
        nonlocal got, done
        got += 1
        if got == n:
            done = time.time()
            _c.disconnect()

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe("ciot/v1/+/+/#", qos=1)

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_subscribe = lambda *_a: print("subscribed", flush=True)
    c.on_connect = on_connect
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_forever()
    print(json.dumps({"received": got, "done": done}), flush=True)


def _wait_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"child exited with {proc.returncode} before {needle!r}")
    raise RuntimeError(f"child did not print {needle!r} within {timeout} s")


def run_bare(broker: Mosquitto, traffic: list[tuple[str, bytes]]) -> tuple[float, float]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "commune_iot.bench.ingest",
            "--bare-subscriber",
            str(broker.port),
            str(len(traffic)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    _wait_line(proc, "subscribed", 30)
    proc.send_signal(signal.SIGSTOP)
    pub_s = publish(broker.port, traffic)
    _say(f"  published {len(traffic):,} messages in {pub_s:.1f} s; resuming the bare subscriber")
    cpu0 = _cpu_s(proc.pid)
    t0 = time.time()
    proc.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=600)
    result = json.loads(out.strip().splitlines()[-1])
    if result["received"] != len(traffic):
        raise RuntimeError(f"bare subscriber got {result['received']} of {len(traffic)}")
    elapsed = float(result["done"]) - t0
    del cpu0
    return len(traffic) / elapsed, elapsed


# --------------------------------------------------------------------------- ingest workers
def _write_config(run_dir: Path, broker: Mosquitto, influx: InfluxDB, db: str) -> Path:
    cfg = {
        "mqtt": {"url": broker.url, "share_group": "bench", "receive_maximum": RECEIVE_MAXIMUM},
        "influx": {"url": influx.url, "database": db, "spool_dir": str(run_dir / "spool")},
        "sql": {"url": f"sqlite:///{run_dir / 'cloud.db'}"},
        "snapshots_dir": str(run_dir / "snapshots"),
        # the whole backlog arrives at once, hundreds of messages per board: this measures the
        # pipeline, not the per-board rate limits (bench flood does)
        "ingest": {"rate_limit": {"enabled": False}},
    }
    path = run_dir / "cloud-bench.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def run_workers(
    run_dir: Path,
    broker: Mosquitto,
    influx: InfluxDB,
    traffic: list[tuple[str, bytes]],
    expected: Counter[str],
    workers: int,
) -> dict[str, Any]:
    db = f"bench_{int(time.time())}"
    cfg = _write_config(run_dir, broker, influx, db)
    procs: list[subprocess.Popen[str]] = []
    for i in range(workers):
        env = dict(os.environ, CIOT_CLOUD_MQTT__CLIENT_ID=f"bench-worker-{i}", CIOT_LOG_LEVEL="INFO")
        log = (run_dir / f"worker-{i}.log").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "commune_iot", "cloud", "ingest", "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
                start_new_session=True,  # so SIGSTOP/SIGCONT reach its receiver process too
            )
        )
    try:
        return _measure(run_dir, broker, influx, db, procs, traffic, expected)
    finally:
        for p in procs:  # also when a worker failed to start: leave nothing running
            if p.poll() is None:
                _signal_group(p, signal.SIGCONT)
                p.kill()
                p.wait(10)
            _signal_group(p, signal.SIGKILL)  # a receiver left behind by a killed worker


def _measure(
    run_dir: Path,
    broker: Mosquitto,
    influx: InfluxDB,
    db: str,
    procs: list[subprocess.Popen[str]],
    traffic: list[tuple[str, bytes]],
    expected: Counter[str],
) -> dict[str, Any]:
    workers = len(procs)
    for i, p in enumerate(procs):
        _wait_log(run_dir / f"worker-{i}.log", "connected to MQTT broker", p)
    time.sleep(0.5)  # subscriptions acknowledged and database created
    for p in procs:
        _signal_group(p, signal.SIGSTOP)
    pub_s = publish(broker.port, traffic)
    _say(f"  published {len(traffic):,} messages in {pub_s:.1f} s; resuming {workers} ingest worker(s)")
    cpu0 = [_cpu_s(p.pid) for p in procs]
    t0 = time.time()
    for p in procs:
        _signal_group(p, signal.SIGCONT)
    total = sum(expected.values())
    measurements = sorted(expected)
    deadline = t0 + max(60.0, len(traffic) / 1000)
    got: Counter[str] = Counter()
    last_report = t0
    while time.time() < deadline:
        time.sleep(0.25)
        got = _influx_count(influx, db, measurements)
        now = time.time()
        if got == expected:
            break
        if now - last_report > 2:
            _say(f"  {sum(got.values()):,}/{total:,} points queryable after {now - t0:.1f} s")
            last_report = now
    elapsed = time.time() - t0
    cpu = sum(_cpu_s(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    lost_points = total - sum(got.values())
    per_point = total / len(traffic)
    return {
        "msgs_per_s": len(traffic) / elapsed,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "lost": round(lost_points / per_point) if lost_points > 0 else 0,
        "lost_points": lost_points,
        "points": total,
    }


def _wait_log(path: Path, needle: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ingest worker exited with {proc.returncode}; see {path}")
        time.sleep(0.05)
    raise RuntimeError(f"ingest worker not connected after {timeout} s; see {path}")


def main(messages: int = 50_000, workers: int = 1, run_dir: Path | None = None) -> int:
    run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="ciot-bench-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    _say(f"ingest benchmark: {messages:,} messages, {workers} worker(s), run dir {run_dir}")
    traffic, expected = make_traffic(messages)
    _say(f"  traffic: {dict(expected)} points from {messages:,} messages")
    with local_stack(run_dir) as stack:
        _say("bare paho QoS-1 subscriber (the ceiling):")
        bare_rate, bare_s = run_bare(stack.mosquitto, traffic)
        _say(f"  {bare_rate:,.0f} msgs/s ({bare_s:.2f} s)")
        _say(f"{workers} ingest worker process(es) on one shared subscription, until queryable in InfluxDB:")
        res = run_workers(run_dir, stack.mosquitto, stack.influx, traffic, expected, workers)
        _say(
            f"  {res['msgs_per_s']:,.0f} msgs/s ({res['elapsed_s']:.2f} s), {res['cpu_s']:.1f} CPU s, "
            f"lost {res['lost']}"
        )
    out = {
        "msgs_per_s": round(res["msgs_per_s"], 1),
        "bare_subscriber_msgs_per_s": round(bare_rate, 1),
        "ratio": round(res["msgs_per_s"] / bare_rate, 3),
        "cpu_s": round(res["cpu_s"], 2),
        "workers": workers,
        "messages": messages,
        "lost": res["lost"],
    }
    print(json.dumps(out), flush=True)
    return 0 if res["lost"] == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--bare-subscriber":
        bare_subscriber(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000))
