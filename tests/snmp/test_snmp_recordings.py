"""``snmp probe --json`` against every recording of a real AP: the client total, the uptime and
the interface counters LibreNMS computed from the same recording."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from snmp_helpers import REPO, expected_devices

from commune_iot.cli import main
from commune_iot.snmplab import SnmpSim

PROFILE = {
    "unifi_nanohd": "unifi",
    "routeros": "routeros",
    "routeros_ltap-mini": "routeros",
    "openwrt": "openwrt",
    "zyxelnwa": "zyxel-nwa",
    "zyxelwlc_nxc2500": "zyxel-nxc",
    "aruba-instant": "aruba-instant",
    "ciscowlc_cbw240ac": "cisco-wlc",
    "epmp": "cambium-epmp",
    "vrp_ac6605-26": "huawei-ac",
    "airos": "airmax",
}

# Per-band and per-SSID counts, from LibreNMS's own sensors for the same recordings.
BREAKDOWN: dict[str, dict[str, dict[str, int]]] = {
    "unifi_nanohd": {
        "clients_by_radio": {"2.4GHz": 4, "5GHz": 14},
        "clients_by_ssid": {"homewifi_ac": 18, "vwire-d4aebb3212a82cd8": 0},
    },
    "routeros": {
        "clients_by_radio": {"2.4GHz": 7, "5GHz": 0},
        "clients_by_ssid": {"WARKOP-KOPIBOSS-B": 7, "WARKOP-KOPIBOSS-A": 0, "WARKOP-KOPIBOSS": 4},
    },
    "openwrt": {"clients_by_radio": {"5GHz": 2, "2.4GHz": 1}},
    "ciscowlc_cbw240ac": {
        "clients_by_ssid": {"MGMT": 0, "ssid1": 23, "ssid2": 0, "ssid3": 0, "DEFAULT_RLAN": 0}
    },
    "vrp_ac6605-26": {
        "clients_by_radio": {"2.4GHz": 2, "5GHz": 5},
        "clients_by_ssid": {"WIFIOG": 0, "WIFIOG-BYOD": 6, "WIFIOG-Guest": 1},
    },
    "aruba-instant": {"clients_by_ssid": {"EOU-Regional": 0, "ECA-Corp": 0, "ECA-Public": 0}},
    "epmp": {"clients_by_radio": {"5GHz": 1}},
    "airos": {"clients_by_radio": {"5GHz": 22}},
}


def probe_json(capsys: pytest.CaptureFixture[str], port: int, community: str) -> dict[str, Any]:
    rc = main(["snmp", "probe", "127.0.0.1", "--port", str(port), "--community", community, "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    lines = out.out.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON object"
    doc: dict[str, Any] = json.loads(lines[0])
    return doc


def test_every_recording_has_an_expectation() -> None:
    assert sorted(d["community"] for d in expected_devices()) == sorted(PROFILE)


@pytest.mark.parametrize("device", expected_devices(), ids=lambda d: str(d["community"]))
def test_probe_reports_what_librenms_expected(
    recordings: SnmpSim, device: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = probe_json(capsys, recordings.port, device["community"])
    assert doc["profile"] == PROFILE[device["community"]]
    assert doc["clients"] == device["expected_clients_total"]
    assert isinstance(doc["clients"], int) and doc["clients_available"] is True
    # Uptime: the most trustworthy of sysUpTime / hrSystemUptime / snmpEngineTime; unknown
    # (null, not 0) on the Zyxel recordings, which have none of them.
    assert doc["uptime_s"] == device["librenms_uptime_s"]
    interfaces = {i["index"]: i for i in doc["interfaces"]}
    for want in device["interfaces_with_counters"]:
        got = interfaces[want["ifIndex"]]
        assert (got["name"], got["in_octets"], got["out_octets"]) == (
            want["ifName"],
            want["in_octets"],
            want["out_octets"],
        )
        assert got["counter_bits"] == 64 and got["status"] in ("up", "down", "dormant", "lowerLayerDown")
    # Interfaces without octet counters are reported without them, never as 0 (openwrt, zyxel).
    with_counters = {w["ifIndex"] for w in device["interfaces_with_counters"]}
    for index, got in interfaces.items():
        if index not in with_counters and got["in_octets"] is None:
            assert got["out_octets"] is None and got["counter_bits"] is None
    for key, want_counts in BREAKDOWN.get(device["community"], {}).items():
        assert doc[key] == want_counts, key


def test_probe_text_output_for_a_technician(recordings: SnmpSim, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["snmp", "probe", "127.0.0.1", "--port", str(recordings.port), "--community", "routeros"]) == 0
    )
    text = capsys.readouterr().out
    assert "profile   routeros" in text and "clients   11" in text
    assert "2.4GHz=7" in text and "WAN" in text and "6422347895" in text


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commune_iot", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_wrong_community_is_one_clear_line_and_a_failure_status(recordings: SnmpSim) -> None:
    # snmpsim, like many APs, does not answer an unknown community at all.
    r = _cli("snmp", "probe", "127.0.0.1", "--port", str(recordings.port), "--community", "wrong",
             "--timeout", "0.3", "--retries", "0", "--json")  # fmt: skip
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "no SNMP answer from 127.0.0.1" in lines[0] and "wrong community" in lines[0]


def test_unknown_profile_name_is_a_usage_error(recordings: SnmpSim) -> None:
    r = _cli("snmp", "probe", "127.0.0.1", "--port", str(recordings.port), "--profile", "acme")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "unknown profile 'acme'" in r.stderr
    assert "Traceback" not in r.stderr


def test_forced_profile_on_another_vendor_says_no_client_count(
    recordings: SnmpSim, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["snmp", "probe", "127.0.0.1", "--port", str(recordings.port), "--community", "epmp",
               "--profile", "unifi", "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out.out)
    assert doc["profile"] == "unifi" and doc["clients"] is None and doc["uptime_s"] == 1920144
    assert "found no client count" in out.err
