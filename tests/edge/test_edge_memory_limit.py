"""The AP agent lives within 64 MB of memory (a Pi-class board shared with other services).

Run under a memory cgroup (v1 here, ``memory.limit_in_bytes``; swap limited too where the
kernel accounts it) from its first instruction: the agent must keep publishing, never be
OOM-killed, and the cgroup's peak (RSS plus the page cache of its outbox) is printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from edge_helpers import REPO, Recorder, agent_config

from commune_iot.localsvc import Mosquitto

MEMORY = Path("/sys/fs/cgroup/memory")
LIMIT = 64 * 1024 * 1024


def _cgroup() -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root (a memory cgroup)")
    if not (MEMORY / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
    group = MEMORY / f"ciot-edge-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup here: {exc}")
    (group / "memory.limit_in_bytes").write_text(str(LIMIT))
    swap = group / "memory.memsw.limit_in_bytes"
    if swap.exists():
        swap.write_text(str(LIMIT))
    return group


def test_ap_agent_lives_in_64_mb(mosquitto: Mosquitto, tmp_path: Path) -> None:
    group = _cgroup()
    procs = str(group / "cgroup.procs")
    cfg = agent_config(
        tmp_path,
        mosquitto.url,
        node="dr-ap-01",
        collectors=[{"type": "sim_ap", "device": "dr-ap-01", "interval_s": 0.2}],
    )
    rec = Recorder(mosquitto.port)
    log = (tmp_path / "agent.log").open("ab")

    def enter() -> None:  # in the child, before exec: the whole agent is charged to the group
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    agent = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(cfg)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=enter,
    )
    try:
        rec.wait_for(lambda ms: sum(m.channel == "metrics" for m in ms) >= 30, 60, "30 metrics messages")
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()[-2000:]
        peak = int((group / "memory.max_usage_in_bytes").read_text())
        oom = (group / "memory.oom_control").read_text()
        assert "oom_kill 1" not in oom and "under_oom 1" not in oom, oom
        rss_kb = next(
            int(line.split()[1])
            for line in Path(f"/proc/{agent.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        print(
            f"AP agent under a 64 MB cgroup: peak {peak / 2**20:.1f} MiB charged, RSS {rss_kb / 1024:.1f} MiB"
        )
        assert peak < LIMIT
    finally:
        agent.kill()
        agent.wait(10)
        log.close()
        rec.close()
        group.rmdir()
