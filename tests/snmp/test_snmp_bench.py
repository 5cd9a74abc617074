"""``bench snmp`` runs end to end on real snmpd daemons and ends with its JSON line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commune_iot.bench.snmp import main


def test_bench_snmp_small_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(aps=3, many=8, cycles=1, run_dir=tmp_path) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert not any("failed" in line for line in out), out
    result = json.loads(out[-1])
    assert set(result) == {"cycle_s_3", "cycle_s_8", "cpu_ms_per_poll"}
    assert 0 < result["cycle_s_3"] < 10 and 0 < result["cycle_s_8"] < 10 and result["cpu_ms_per_poll"] > 0
