"""Two boards on a bad 3G link (``commune-iot bench link``): nothing lost, and what it costs.

The agents run in network namespaces behind veth pairs shaped by ``tc tbf`` (384 kbit/s up,
1 Mbit/s down) with TLS on, through a relay that stalls the link for 30 s, drops idle
flows like a carrier NAT and makes every reconnect take 5-20 s (commune_iot/bench/link.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from commune_iot.bench import link


def _netns_works() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tc)"
    if not shutil.which("ip") or not shutil.which("tc") or not shutil.which("openssl"):
        return "needs ip, tc and openssl"
    probe = f"ciotf-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False).returncode != 0:
        return "network namespaces unavailable here"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _bench(minutes: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    reason = _netns_works()
    if reason:
        pytest.skip(reason)
    assert link.main(minutes=minutes, run_dir=tmp_path) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    with capsys.disabled():
        print(last)  # the figures, for the log of the run
    res: dict[str, object] = json.loads(last)
    assert set(link.KEYS) <= set(res), "the last line misses a figure"
    return res


def test_bad_link_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = _bench(1.0, tmp_path, capsys)
    assert res["stalls"] == 2, "the run must include one 30 s stall per board"
    assert res["delivered_ratio"] == 1.0 and res["outbox_left"] == 0, res
    assert res["out_of_order"] == 0, res
    assert res["outages_no_stall_explains"] == 0, res
    assert isinstance(res["bytes_per_day_ap"], int) and res["bytes_per_day_ap"] > 0


@pytest.mark.slow
def test_bad_link_30_minutes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = _bench(30.0, tmp_path, capsys)
    assert res["delivered_ratio"] == 1.0 and res["outbox_left"] == 0, res
    assert res["outages_no_stall_explains"] == 0, res
    assert isinstance(res["disk_bytes_per_day_ap"], int) and res["disk_bytes_per_day_ap"] <= 50_000_000
