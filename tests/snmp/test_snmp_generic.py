"""An AP of a vendor no profile knows: uptime and interfaces still come, and the client count
is reported as not available (null), never as 0."""

from __future__ import annotations

import json

import pytest
from conftest import OwnSim
from snmp_helpers import EditableRecording, read_snmprec

from commune_iot.cli import main


def test_unknown_vendor_falls_back_to_generic(own_sim: OwnSim, capsys: pytest.CaptureFixture[str]) -> None:
    # The UniFi recording, with its vendor subtree removed and an identity no profile knows.
    records = {o: tv for o, tv in read_snmprec("unifi_nanohd").items() if not o.startswith("1.3.6.1.4.1.")}
    records["1.3.6.1.2.1.1.1.0"] = ("4", "Acme WiFi 9000 fw 1.2")
    records["1.3.6.1.2.1.1.2.0"] = ("6", "1.3.6.1.4.1.99999.1")
    EditableRecording(own_sim.data, "acme").write(records)
    port = own_sim.start()

    rc = main(["snmp", "probe", "127.0.0.1", "--port", str(port), "--community", "acme", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert doc["profile"] == "generic"
    assert doc["clients"] is None and doc["clients_available"] is False
    assert doc["clients_by_radio"] == {} and doc["clients_by_ssid"] == {}
    assert doc["uptime_s"] == 545079  # hrSystemUptime, as for the real UniFi
    eth0 = next(i for i in doc["interfaces"] if i["name"] == "eth0")
    assert (eth0["in_octets"], eth0["out_octets"], eth0["status"]) == (70706526374, 9312337533, "up")
    assert len(doc["interfaces"]) == 29

    assert main(["snmp", "probe", "127.0.0.1", "--port", str(port), "--community", "acme"]) == 0
    assert "clients   not available for this profile" in capsys.readouterr().out
