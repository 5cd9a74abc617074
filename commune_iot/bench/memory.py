"""``commune-iot bench edge-memory``: resident memory of edge agents on a real broker.

Boards have 0.5-2 GB of RAM shared with OpenCV or the OS, so the agent's own footprint
is a figure to watch. Measures an idle agent (board health only) and one running a
simulated collector, sampling VmRSS each second and reporting the peak.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from commune_iot.fleet import AgentProcess, edge_config, load_devices, rss_mb
from commune_iot.localsvc import Mosquitto


def main(seconds: float = 20.0, run_dir: Path | None = None) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-mem-"))
    broker = Mosquitto(base / "mosquitto").start()
    devices = {d["kind"]: d for d in reversed(load_devices())}
    agents: dict[str, AgentProcess] = {}
    try:
        for label, device in (("idle_agent", devices["ap"]), ("sim_camera_agent", devices["camera"])):
            cfg = edge_config(device, broker.url, base / label, health_interval_s=1.0, sim_interval_s=1.0)
            if label == "idle_agent":
                cfg["collectors"] = []
            cfg["node"] = f"bench-{label.replace('_', '-')}"
            agents[label] = AgentProcess.write(base, cfg).start()
        peaks = dict.fromkeys(agents, 0.0)
        print(f"sampling RSS of {len(agents)} agents for {seconds:.0f} s", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1)
            for label, agent in agents.items():
                if not agent.running or agent.proc is None:
                    raise SystemExit(f"{label} exited early; see {agent.log_path}")
                peaks[label] = max(peaks[label], rss_mb(agent.proc.pid) or 0.0)
        print("  ".join(f"{k}: {v:.1f} MB" for k, v in peaks.items()), flush=True)
    finally:
        for agent in agents.values():
            agent.terminate()
            agent.wait(10)
        broker.stop()
    print(json.dumps({f"{k}_rss_mb": round(v, 1) for k, v in peaks.items()} | {"seconds": seconds}))
    return 0
