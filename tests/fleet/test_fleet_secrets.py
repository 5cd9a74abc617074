"""Issue 15, item 1: secrets, SNMP changes applied live, and last known good with SNMP.

An access point's SNMP community set from the cloud reaches the board sealed for it, works at
once (the AP answers), survives more versions ("**********" keeps it) and an agent restart, and
is never echoed back, logged, stored or retained in clear: not in the cloud's database, log,
API or audit trail, not on the broker, not in the board's log or state. A community that
silences every AP is reverted. The AP is a real SNMP agent (snmpsim replaying a recorded
OpenWrt AP).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import Received
from fleet_helpers import REPO, FleetLab
from support import wait_until

from commune_iot.snmplab import SnmpSim

BOARDS = ["tt-ap-03", "tt-ap-04"]
NODE = "tt-ap-03"
SECRET = "Xq7-rural-c0mmunity"
RECORDING = REPO.parent / "shared" / "testdata" / "snmp" / "openwrt.snmprec"


@pytest.fixture(scope="module")
def ap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """A recorded OpenWrt AP that answers only to SECRET (snmpsim: community = file name)."""
    if not RECORDING.exists():
        pytest.fail(f"SNMP recordings missing: {RECORDING}")
    data = tmp_path_factory.mktemp("snmpdata")
    shutil.copyfile(RECORDING, data / f"{SECRET}.snmprec")
    sim = SnmpSim.create(tmp_path_factory.mktemp("snmpsim"), data, ready_community=SECRET).start()
    yield sim
    sim.stop()


def reachable(msgs: list[Received]) -> list[bool]:
    return [
        p["fields"]["reachable"]
        for m in msgs
        if m.channel == "metrics"
        for p in m.json()["points"]
        if p["measurement"] == "ap"
    ]


def files_under(*dirs: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for d in dirs for p in d.rglob("*") if p.is_file()}


def test_a_community_set_from_the_cloud_works_and_is_never_seen_in_clear(lab: FleetLab, ap: SnmpSim) -> None:
    collector: dict[str, Any] = {
        "type": "snmp_ap",
        "aps": [{"device": NODE, "host": "127.0.0.1", "port": ap.port}],
        "snmp": {"community": "the-old-one"},  # the board's local file: wrong, and stays local
        "interval_s": 2,
        "timeout_s": 0.5,
        "retries": 0,
        "ping": "off",
    }
    config = lab.board_config(NODE, [collector])
    rec = lab.recorder(f"ciot/v1/tu-tra/{NODE}/#")
    agent = lab.start_agent(config)
    try:
        twin = lab.wait_reported(NODE)
        rec.wait_for(lambda ms: False in reachable(ms), 20, "the AP refusing the old community")
        doc = twin["reported"]
        assert doc["collectors"][0]["snmp"]["community"] == "**********"  # never echoed back
        assert twin["can_seal"]
        doc["collectors"][0]["interval_s"] = 1  # and the interval, live
        status, body = lab.api().call(
            "PUT",
            f"/api/v1/fleet/nodes/{NODE}/config",
            {"config": doc, "secrets": {"collectors.0.snmp.community": SECRET}},
        )
        assert status == 202 and body["secrets"] == ["collectors.0.snmp.community"], body
        first = body["version"]
        lab.wait_running(NODE, first, 10)
        mark = len(rec.snapshot())
        rec.wait_for(lambda ms: True in reachable(ms[mark:]), 10, "the AP answering the new community")
        # Another version that keeps it ("**********": keep what the board has), then a restart.
        doc = lab.twin(NODE)["reported"]
        doc["collectors"][0]["interval_s"] = 2
        second = lab.set_config(NODE, doc)
        lab.wait_running(NODE, second, 10, good=True)
        assert agent.terminate() == 0
        agent = lab.start_agent(config)
        mark = len(rec.snapshot())
        rec.wait_for(lambda ms: True in reachable(ms[mark:]), 20, "the AP answering after a restart")
        # A secret in clear inside the document is refused and never stored.
        doc["collectors"][0]["snmp"]["community"] = SECRET
        status, body = lab.api().call("PUT", f"/api/v1/fleet/nodes/{NODE}/config", {"config": doc})
        assert status == 422 and SECRET not in str(body)
        assert body["detail"][0]["loc"] == ["body", "config", "collectors", 0, "snmp", "community"]
    finally:
        agent.terminate()
        rec.close()
    configs = {m.json()["version"]: m.payload for m in rec.snapshot() if m.channel == "config"}
    assert b"sealed:v1:" in configs[first] and b"**********" in configs[second]  # sealed, then kept
    assert not any(SECRET.encode() in payload for payload in configs.values())
    api = lab.api("admin")
    seen_by_api = [
        api.get(f"/api/v1/fleet/nodes/{NODE}/config"),
        api.get(f"/api/v1/fleet/nodes/{NODE}/config/history"),
        api.get(f"/api/v1/fleet/nodes/{NODE}/config/diff"),
        api.get("/api/v1/audit?limit=200"),
    ]
    assert SECRET not in str(seen_by_api)
    assert "collectors.0.snmp.community" in str(seen_by_api[3])  # the audit names the secret, no more
    cloud_files = files_under(lab.run_dir / "cloud") | {lab.cloud.log_path: lab.cloud.log_path.read_bytes()}
    board_files = files_under(config.parent)  # state, outbox, log; the local file has the old one
    broker_files = files_under(lab.broker.run_dir)
    assert any(b"sealed:v1:" in data for data in cloud_files.values())  # we looked where it is kept
    leaks = [p for p, data in (cloud_files | board_files | broker_files).items() if SECRET.encode() in data]
    assert leaks == [], f"the community in clear in {leaks}"


def test_a_community_that_silences_every_ap_is_reverted_and_the_api_says_why(
    lab: FleetLab, ap: SnmpSim
) -> None:
    node, revert_after_s = "tt-ap-04", 4.0
    collector: dict[str, Any] = {
        "type": "snmp_ap",
        "aps": [{"device": node, "host": "127.0.0.1", "port": ap.port}],
        "snmp": {"community": SECRET},  # right, in the board's own file
        "interval_s": 1,
        "timeout_s": 0.5,
        "retries": 0,
        "ping": "off",
    }
    rec = lab.recorder(f"ciot/v1/tu-tra/{node}/metrics")
    agent = lab.start_agent(lab.board_config(node, [collector], revert_after_s=revert_after_s))
    try:
        doc = lab.wait_reported(node)["reported"]
        rec.wait_for(lambda ms: True in reachable(ms), 20, "the AP answering")
        version = lab.set_config(node, doc, {"collectors.0.snmp.community": "a-wrong-one"})
        asked = time.monotonic()
        twin = wait_until("the revert", lambda: (t := lab.twin(node))["sync"] == "reverted" and t, 20)
        assert time.monotonic() - asked <= revert_after_s + 3
        assert twin["report_version"] == version and twin["running_version"] == 0 and twin["good"]
        assert "none of the 1 access point(s) answers SNMP" in twin["error"], twin["error"]
        mark = len(rec.snapshot())
        rec.wait_for(lambda ms: True in reachable(ms[mark:]), 10, "the AP answering again")
    finally:
        agent.terminate()
        rec.close()
