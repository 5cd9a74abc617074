"""Against a real net-snmp snmpd: SNMPv3 authPriv (SHA/AES), the OpenWrt-style extend client
count, and interface counters that really move between polls (its loopback interface)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from snmp_helpers import REPO

from commune_iot.cli import main
from commune_iot.snmplab import Snmpd
from edge.collectors.snmp.client import Credentials, SnmpClient, Target
from edge.collectors.snmp.poller import ApPoller


def test_v3_authpriv_probe_reads_the_extend_client_counts(
    snmpd: Snmpd, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIOT_SNMP_AUTH_KEY", snmpd.v3_auth)  # keys from the environment
    monkeypatch.setenv("CIOT_SNMP_PRIV_KEY", snmpd.v3_priv)
    rc = main(["snmp", "probe", "127.0.0.1", "--port", str(snmpd.port), "--v3-user", snmpd.v3_user,
               "--auth-protocol", "SHA", "--priv-protocol", "AES", "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert doc["profile"] == "openwrt"
    assert doc["clients"] == 5
    assert doc["clients_by_radio"] == {"2.4GHz": 3, "5GHz": 2}
    assert doc["clients_by_ssid"] == {"WiFi-Xa-Lab": 5}
    assert doc["uptime_s"] is not None and doc["uptime_s"] >= 0
    assert any(i["name"] == "lo" and i["status"] == "up" for i in doc["interfaces"])


def test_v3_wrong_privacy_key_fails_in_one_line(snmpd: Snmpd) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "commune_iot", "snmp", "probe", "127.0.0.1", "--port", str(snmpd.port),
         "--v3-user", snmpd.v3_user, "--auth-key", snmpd.v3_auth, "--priv-key", "not-the-key",
         "--timeout", "0.5", "--retries", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("snmp probe: ")


async def test_counters_that_move_give_a_positive_rate(snmpd: Snmpd) -> None:
    client = SnmpClient()
    auth = Credentials(community=SecretStr(snmpd.community)).auth_data()
    poller = ApPoller(Target("127.0.0.1", snmpd.port, 2.0, 1), auth)
    try:
        first = next(i for i in (await poller.poll(client)).interfaces if i.name == "lo")
        assert first.in_octets is not None and first.bits == 64 and first.in_bps is None
        # Polls cross the loopback interface, so its counters grow; snmpd refreshes them
        # every few seconds: poll until the new value shows (the event), at most 20 s.
        # Polls are paced as an agent paces them (30 s by default, 1 s at least): polls 10 ms
        # apart put a whole refresh period of the CI machine's loopback traffic into 10 ms,
        # which reads as > 100 Gbit/s, and the poller rightly refuses that as implausible.
        deadline = time.monotonic() + 20
        while True:
            await asyncio.sleep(1)
            lo = next(i for i in (await poller.poll(client)).interfaces if i.name == "lo")
            assert lo.in_bps is not None and lo.in_bps >= 0  # a rate every poll, never negative
            if lo.in_octets != first.in_octets or time.monotonic() > deadline:
                break
    finally:
        client.close()
    assert lo.in_octets is not None and lo.in_octets > first.in_octets
    assert lo.in_bps > 0 and lo.out_bps is not None and lo.out_bps > 0


async def test_an_ap_whose_tables_time_out_is_still_reachable(tmp_path: Path) -> None:
    # An agent that answers GETs but stalls on a table (here a `pass` script that hangs on the
    # UniFi subtree), as a busy AP on a lossy link does: uptime comes, tables do not.
    stall = tmp_path / "stall.sh"
    stall.write_text("#!/bin/sh\nsleep 3\n")
    stall.chmod(0o755)
    slow = Snmpd.create(tmp_path / "snmpd", extra_config=f"pass .1.3.6.1.4.1.41112 {stall}\n").start()
    client = SnmpClient()
    try:
        auth = Credentials(community=SecretStr(slow.community)).auth_data()
        poller = ApPoller(Target("127.0.0.1", slow.port, 0.5, 0), auth, "unifi")
        reading = await poller.poll(client)
    finally:
        client.close()
        slow.kill()  # it is still busy with the stalled request
    assert reading.uptime_s is not None and reading.profile == "unifi"
    assert reading.clients is None and reading.interfaces == []
    assert reading.incomplete is not None and "no SNMP answer" in reading.incomplete
