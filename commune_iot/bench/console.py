"""``commune-iot bench console``: the technicians' fleet page on the demo fleet, how long the
server takes to render it, and how fast it follows a board that freezes and comes back.

The fleet as ``commune-iot demo`` runs it (59 simulated agent processes, the cloud, Mosquitto
and InfluxDB from the system's binaries). Once every board is up, ``/fleet`` is fetched
``--requests`` times with a technician's token: its ``Server-Timing`` header is the server's own
time for the page (the 59 rows judged, versions, alerts and windows read, the HTML rendered),
apart from the network. Then one board's agent is frozen (SIGSTOP: a hung board, whose TCP
connection stays open) and ``/fleet/table`` (what the page's script fetches every few seconds) is
polled until its device shows ``unknown`` while every other board stays up, and again after
SIGCONT until it is ``up``; the times are from the signal, with the demo's alerting defaults
(a board is down after 1.5 heartbeats, 15 s).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from commune_iot.bench.fleet import _percentile, _wait, demo_fleet
from commune_iot.fleet import CloudProcess, load_devices

_ROW = re.compile(r'data-device="([^"]+)" data-state="([^"]+)"')
_TIMING = re.compile(r"app;dur=([0-9.]+)")


def _get(cloud: CloudProcess, path: str) -> tuple[str, float, float]:
    """(body, server ms from Server-Timing, wall ms)."""
    started = time.perf_counter()
    with urllib.request.urlopen(cloud.request(path), timeout=30) as r:
        body = r.read().decode()
        timing = r.headers.get("Server-Timing", "")
    wall = (time.perf_counter() - started) * 1000
    m = _TIMING.search(timing)
    return body, float(m.group(1)) if m else float("nan"), wall


def _states(cloud: CloudProcess) -> dict[str, str]:
    body, _, _ = _get(cloud, "/fleet/table")
    return dict(_ROW.findall(body))


def main(*, boards: int | None = None, requests: int = 50, run_dir: Path | None = None) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-console-"))
    devices = load_devices()[:boards] if boards else load_devices()
    ours = {d["id"] for d in devices}
    frozen = devices[0]
    result: dict[str, Any] = {"devices": len(load_devices()), "boards": len({d["node"] for d in devices})}
    with demo_fleet(base, devices) as (cloud, agents):

        def all_up() -> tuple[bool, str]:
            up = sum(1 for dev, st in _states(cloud).items() if dev in ours and st == "up")
            return up == len(ours), f"{up}/{len(ours)} devices up on the fleet page"

        _wait("start-up", all_up, 180)
        server, wall = [], []
        for _ in range(requests):
            body, ms, w = _get(cloud, "/fleet")
            server.append(ms)
            wall.append(w)
        rows = len(_ROW.findall(body))
        print(
            f"  /fleet ({rows} rows) x{requests}: server p50 {statistics.median(server):.1f} ms", flush=True
        )
        result |= {
            "rows": rows,
            "server_p50_ms": round(statistics.median(server), 1),
            "server_p95_ms": round(_percentile(server, 0.95), 1),
            "server_max_ms": round(max(server), 1),
            "wall_p95_ms": round(_percentile(wall, 0.95), 1),
        }
        agent = next(a for a in agents if a.node == frozen["node"])
        assert agent.proc is not None
        others_ok = True

        def shows(state: str) -> tuple[bool, str]:
            nonlocal others_ok
            states = _states(cloud)
            others_ok &= all(st == "up" for dev, st in states.items() if dev in ours and dev != frozen["id"])
            now = states.get(frozen["id"], "?")
            return now == state, f"{frozen['id']} {now}"

        print(f"freezing {frozen['node']} (SIGSTOP)", flush=True)
        at = time.monotonic()
        agent.proc.send_signal(signal.SIGSTOP)
        _wait("frozen board", lambda: shows("unknown"), 120)
        result["frozen_seen_s"] = round(time.monotonic() - at, 1)
        at = time.monotonic()
        agent.proc.send_signal(signal.SIGCONT)
        _wait("board back", lambda: shows("up"), 120)
        result["back_up_s"] = round(time.monotonic() - at, 1)
        result["others_stayed_up"] = others_ok
    if run_dir is None:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result))
    return 0 if others_ok else 1
