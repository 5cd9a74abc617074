"""The real edge agent polling 35 APs through a real Mosquitto: 10 of them do not answer (9 with
SNMP off, 1 down altogether), and the other 25 are still published on schedule, each cycle."""

from __future__ import annotations

import itertools
import signal
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from commune_iot.localsvc import Mosquitto
from commune_iot.snmplab import Snmpd, free_udp_ports

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))
from edge_helpers import AgentProcess, Received, Recorder, agent_config

INTERVAL_S = 5.0  # the deadline (0.8 x) is 4 s, of which 1.3 s is kept for the ping
TIMEOUT_S = 2.0  # a dead AP costs this much (no retries) before it is reported


def _ap_points(msgs: list[Received]) -> dict[str, list[tuple[dict[str, Any], datetime, datetime]]]:
    """device -> [(fields, point ts, arrival)] of its `ap` points."""
    out: dict[str, list[tuple[dict[str, Any], datetime, datetime]]] = defaultdict(list)
    for m in msgs:
        if m.channel != "metrics":
            continue
        for p in m.json()["points"]:
            if p["measurement"] == "ap":
                ts = datetime.fromisoformat(p["ts"].replace("Z", "+00:00"))
                out[p["device"]].append((p["fields"], ts, m.arrived))
    return out


def test_ten_dead_aps_do_not_delay_the_other_25(tmp_path: Path, mosquitto: Mosquitto) -> None:
    live = Snmpd.create(tmp_path / "snmpd", n_ports=25).start()
    dead_ports = free_udp_ports(9)  # nothing listens there: SNMP requests go unanswered
    aps = [{"device": f"lx-ap-{i:02d}", "host": "127.0.0.1", "port": p} for i, p in enumerate(live.ports)]
    aps += [
        {"device": f"lx-ap-dead-{i:02d}", "host": "127.0.0.1", "port": p} for i, p in enumerate(dead_ports)
    ]
    # And one that is down altogether: an address of TEST-NET-2 (RFC 5737) answers nothing.
    aps.append({"device": "lx-ap-dead-down", "host": "198.51.100.7"})
    collector = {
        "type": "snmp_ap",
        "aps": aps,
        "snmp": {"community_env": "CIOT_TEST_COMMUNITY"},  # the secret comes from the environment
        "interval_s": INTERVAL_S,
        "timeout_s": TIMEOUT_S,
        "retries": 0,
        "ifname_pattern": "^lo$",
    }
    cfg = agent_config(
        tmp_path,
        mosquitto.url,
        node="lx-ap-board",
        commune="lac-xuan",
        collectors=[collector],
        health_interval_s=5,
    )
    rec = Recorder(mosquitto.port, topic="ciot/v1/lac-xuan/lx-ap-board/#")
    agent = AgentProcess(cfg, tmp_path / "agent.log", env={"CIOT_TEST_COMMUNITY": live.community})
    try:
        want_cycles = 3

        def enough(msgs: list[Received]) -> bool:
            pts = _ap_points(msgs)
            return len(pts) == 35 and all(len(v) >= want_cycles for v in pts.values())

        msgs = rec.wait_for(enough, timeout=60, what=f"{want_cycles} cycles of all 35 APs")
        log = agent.log()
    finally:
        agent.close()
        rec.close()
        live.stop()

    points = _ap_points(msgs)
    for device, seen in points.items():
        first_cycles = seen[1:want_cycles]  # the first cycle pays pysnmp's cold start
        if device.startswith("lx-ap-dead"):
            for fields, ts, arrived in first_cycles:
                # Reported every cycle as not answering SNMP, with ping's second opinion:
                # loopback answers ping (the cloud says "SNMP not answering"), the AP that is
                # down does not (the cloud says "AP unreachable").
                assert fields["reachable"] is False
                assert fields["ping"] is (device != "lx-ap-dead-down")
                assert "clients" not in fields and "uptime_s" not in fields
                assert arrived - ts >= timedelta(seconds=TIMEOUT_S * 0.9)
        else:
            for fields, ts, arrived in first_cycles:
                assert fields["reachable"] is True and "ping" not in fields
                assert fields["clients"] == 5 and fields["profile"] == "openwrt"
                assert fields["uptime_s"] >= 0
                # On time: published well before the dead APs' timeout ran out.
                assert arrived - ts < timedelta(seconds=TIMEOUT_S * 0.75), (device, arrived - ts)
        # On schedule: one point per interval, no cycle skipped or delayed.
        stamps = [ts for _, ts, _ in seen[:want_cycles]]
        for a, b in itertools.pairwise(stamps):
            assert abs((b - a).total_seconds() - INTERVAL_S) < 0.5, (device, stamps)
    # The live APs' radios, SSIDs and interface come along.
    kinds = {p["measurement"] for m in msgs if m.channel == "metrics" for p in m.json()["points"]}
    assert kinds == {"ap", "ap_radio", "ap_ssid", "ap_if"}
    # A technician reading the log is told what to check, once per AP, not every cycle.
    dead = [line for line in log.splitlines() if "AP lx-ap-dead-03 at 127.0.0.1:" in line]
    assert len(dead) == 1, dead
    assert "did not answer SNMP within 2 s (ping ok)" in dead[0] and "check the community" in dead[0]
    down = [line for line in log.splitlines() if "AP lx-ap-dead-down at 198.51.100.7 " in line]
    assert len(down) == 1 and "(no ping reply either)" in down[0] and "check the AP's power" in down[0]


def test_an_ap_that_stops_answering_is_reported_between_rare_polls(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The shipped 3G profile publishes an AP's readings every 300 s; with ``check_interval_s``
    the board still asks the AP for its uptime between polls (nothing goes upstream) and
    polls and publishes at once when it stops or starts answering, so the AP-down alert does
    not wait for the next poll. Here polls are 120 s apart and the AP hangs (SIGSTOP) after
    the first one."""
    ap = Snmpd.create(tmp_path / "snmpd", n_ports=1).start()
    collector = {
        "type": "snmp_ap",
        "aps": [{"device": "lx-ap-01", "host": "127.0.0.1", "port": ap.ports[0]}],
        "snmp": {"community_env": "CIOT_TEST_COMMUNITY"},
        "interval_s": 120,
        "check_interval_s": 2,
        "timeout_s": 1,
        "retries": 0,
        "ifname_pattern": "^lo$",
    }
    cfg = agent_config(
        tmp_path, mosquitto.url, node="lx-ap-board", commune="lac-xuan", collectors=[collector]
    )
    rec = Recorder(mosquitto.port, topic="ciot/v1/lac-xuan/lx-ap-board/#")
    agent = AgentProcess(cfg, tmp_path / "agent.log", env={"CIOT_TEST_COMMUNITY": ap.community})
    assert ap.proc is not None
    try:

        def reachable(msgs: list[Received]) -> list[bool]:
            return [f["reachable"] for f, _, _ in _ap_points(msgs).get("lx-ap-01", [])]

        rec.wait_for(lambda m: reachable(m) == [True], timeout=30, what="the first poll")
        ap.proc.send_signal(signal.SIGSTOP)  # the AP hangs: SNMP goes unanswered
        hung = datetime.now(UTC)
        msgs = rec.wait_for(lambda m: reachable(m) == [True, False], timeout=20, what="the AP reported down")
        down_after = _ap_points(msgs)["lx-ap-01"][-1][2] - hung
        ap.proc.send_signal(signal.SIGCONT)
        back = datetime.now(UTC)
        msgs = rec.wait_for(
            lambda m: reachable(m) == [True, False, True], timeout=20, what="the AP reported back"
        )
        up_after = _ap_points(msgs)["lx-ap-01"][-1][2] - back
        log = agent.log()
    finally:
        agent.close()
        rec.close()
        ap.proc.send_signal(signal.SIGCONT)
        ap.stop()
    print(
        f"AP hung: reported after {down_after.total_seconds():.1f} s; back: {up_after.total_seconds():.1f} s"
    )
    # check (2 s) + the poll's SNMP timeout (1 s) and ping: seconds, not the 120 s poll interval
    assert down_after < timedelta(seconds=8) and up_after < timedelta(seconds=8)
    assert "stopped or started answering between polls: polling now" in log
