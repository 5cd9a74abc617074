"""Real SNMP agents for the tests: snmpsim replaying the shared recordings of real APs, and
net-snmp's snmpd with our own config (v2c, v3 authPriv SHA/AES, extend scripts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from snmp_helpers import RECORDINGS

from commune_iot.snmplab import Snmpd, SnmpSim


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """snmpsim serving ../shared/testdata/snmp (community = the recording's file name)."""
    if not (RECORDINGS / "expected.json").exists():
        pytest.fail(f"SNMP recordings not found at {RECORDINGS} (the shared folder beside the repo)")
    sim = SnmpSim.create(tmp_path_factory.mktemp("snmpsim"), RECORDINGS, ready_community="airos").start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """A real net-snmp agent on a free loopback port."""
    server = Snmpd.create(tmp_path_factory.mktemp("snmpd")).start()
    yield server
    server.stop()


class OwnSim:
    """snmpsim over a data folder of the test's own. snmpsim maps communities to files when it
    starts, so write every file into ``data`` first, then ``start()``; later rewrites of those
    files are picked up (see snmp_helpers.EditableRecording)."""

    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.data.mkdir()
        (self.data / "ready.snmprec").write_text("1.3.6.1.2.1.1.3.0|67|1\n")
        self._run = tmp_path / "run"
        self.sim: SnmpSim | None = None

    def start(self) -> int:
        self.sim = SnmpSim.create(self._run, self.data, ready_community="ready").start()
        return self.sim.port


@pytest.fixture
def own_sim(tmp_path: Path) -> Iterator[OwnSim]:
    own = OwnSim(tmp_path)
    yield own
    if own.sim is not None:
        own.sim.stop()
