"""``commune-iot bench fleet``: one configuration change pushed to every demo board, and how long
until each one runs it.

The fleet as ``commune-iot demo`` runs it: Mosquitto and InfluxDB from the system's binaries,
``commune-iot cloud serve``, one simulated agent process per inventory device (59), each with
the demo's settings. Once every board has reported its configuration, the change (health every
5 s instead of 10, which each board applies live) is pushed to all of them through the API, one
PUT per board as fast as the API answers. A board's time runs from its PUT to the first poll of
the API (every 0.2 s) that shows it running the new version, so it includes the API, the broker,
the board's validation and apply, its report through its outbox, and the fleet service's update.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config, edge_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

POLL_S = 0.2


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _nodes(cloud: CloudProcess) -> dict[str, dict[str, Any]]:
    return {n["node"]: n for n in cloud.get_json("/api/v1/fleet/nodes", timeout=30)}


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        done, text = check()
        if text != last:
            print(f"  {what}: {text}", flush=True)
            last = text
        if done:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench fleet: {what}: still {text} after {timeout:.0f} s")
        time.sleep(1.0)


@contextmanager
def demo_fleet(
    base: Path, devices: list[dict[str, Any]]
) -> Iterator[tuple[CloudProcess, list[AgentProcess]]]:
    """Mosquitto, InfluxDB, ``cloud serve`` and one simulated agent per device, as the demo runs
    them; all stopped on the way out (the agents first, so their stopping is not an outage)."""
    broker = Mosquitto(base / "mosquitto")
    influx = InfluxDB(base / "influx")
    cloud: CloudProcess | None = None
    agents: list[AgentProcess] = []
    try:
        broker.start()
        influx.start()
        cfg = cloud_config(
            mqtt_url=broker.url,
            influx_url=influx.url,
            influx_db="ciot",
            influx_user="",
            influx_password_file=None,
            state_dir=base / "cloud",
            http_port=free_port(),
        )
        cloud = CloudProcess.write(base, cfg).start(wait=60)
        print(f"starting {len(devices)} simulated boards as the demo runs them", flush=True)
        for dev in devices:
            agents.append(
                AgentProcess.write(base, edge_config(dev, broker.url, base / "agents" / dev["node"])).start()
            )
            time.sleep(0.05)  # as the demo: spread the interpreter start-ups
        yield cloud, agents
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(15)
        if cloud is not None:
            cloud.stop()
        broker.stop()
        influx.stop()


def main(*, boards: int | None = None, run_dir: Path | None = None, timeout_s: float = 60.0) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-fleet-"))
    devices = load_devices()[:boards] if boards else load_devices()
    nodes = sorted({d["node"] for d in devices})
    sent: dict[str, tuple[int, float]] = {}
    applied: dict[str, float] = {}
    with demo_fleet(base, devices) as (c, _agents):

        def reported() -> tuple[bool, str]:
            seen = _nodes(c)
            n = sum(1 for node in nodes if seen[node]["reported_at"])
            return n == len(nodes), f"{n}/{len(nodes)} boards reported their configuration"

        _wait("start-up", reported, 180)
        docs = {n: c.get_json(f"/api/v1/fleet/nodes/{n}/config")["reported"] for n in nodes}
        print(f"pushing health_interval_s 10 -> 5 to {len(nodes)} boards", flush=True)
        pushing = threading.Event()
        pushing.set()

        def watch() -> None:  # polls while the PUTs go out, so early boards are timed alone
            deadline = time.monotonic() + timeout_s
            while (pushing.is_set() or len(applied) < len(sent)) and time.monotonic() < deadline:
                rows = _nodes(c)
                now = time.monotonic()
                for node, (version, at) in list(sent.items()):
                    if node not in applied and (rows[node]["running_version"] or 0) >= version:
                        applied[node] = now - at
                time.sleep(POLL_S)

        watcher = threading.Thread(target=watch, name="watch", daemon=True)
        watcher.start()
        started = time.monotonic()
        for node in nodes:
            doc = dict(docs[node], health_interval_s=5.0)
            at = time.monotonic()
            req = c.request(f"/api/v1/fleet/nodes/{node}/config", {"config": doc}, "PUT")
            with urllib.request.urlopen(req) as r:
                sent[node] = (int(json.load(r)["version"]), at)
        print(f"  {len(nodes)} PUTs took {time.monotonic() - started:.2f} s", flush=True)
        pushing.clear()
        watcher.join()
        print(f"  {len(applied)}/{len(nodes)} boards run the new version", flush=True)
        missing = sorted(set(nodes) - set(applied))
        if missing:
            print(f"  not applied within {timeout_s:.0f} s: {', '.join(missing)}", flush=True)
    times = list(applied.values())
    result = {
        "boards": len(nodes),
        "applied": len(applied),
        "p50_s": round(statistics.median(times), 2) if times else None,
        "p95_s": round(_percentile(times, 0.95), 2) if times else None,
        "max_s": round(max(times), 2) if times else None,
    }
    if run_dir is None:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result))
    return 0 if len(applied) == len(nodes) else 1
