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


def _bench(
    minutes: float, tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str = "shipped"
) -> dict[str, object]:
    reason = _netns_works()
    if reason:
        pytest.skip(reason)
    assert link.main(minutes=minutes, run_dir=tmp_path, profile=profile) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    with capsys.disabled():
        print(last)  # the figures, for the log of the run
    res: dict[str, object] = json.loads(last)
    assert set(link.KEYS) <= set(res), "the last line misses a figure"
    return res


def test_bad_link_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # health every 10 s: the run ends once a health message stamped after its end arrived
    res = _bench(1.0, tmp_path, capsys, profile="field")
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


def test_a_flow_the_carrier_nat_dropped_is_noticed_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The carrier NAT forgets a flow idle for 3 s, shorter than the 5 s keepalive: the board's
    packets then vanish without a reset. The agent must notice (its ping goes unanswered),
    reconnect, and deliver every message exactly once, in order."""
    reason = _netns_works()
    if reason:
        pytest.skip(reason)
    monkeypatch.setitem(
        link.PROFILES,
        "nat",
        {"health_interval_s": 10.0, "keepalive_s": 5, "sim_interval_s": 10.0, "commit_interval_s": 0},
    )
    imp = link.Impairments(first_stall_s=1e9, stall_every_s=1e9, nat_idle_s=3.0, reconnect_s=(0.5, 1.0))
    res = link.run(0.5, "nat", tmp_path, imp)
    print(json.dumps(res))
    assert res["nat_drops"] >= 2, res  # the NAT really cut flows (both boards: at least one each)
    assert res["connections"] >= 2 + res["nat_drops"], res  # each cut flow was replaced
    assert res["delivered_ratio"] == 1.0 and res["outbox_left"] == 0, res
    assert res["duplicates"] == 0 and res["out_of_order"] == 0, res
    assert res["received"] >= 8, res  # health and readings of both boards kept coming
