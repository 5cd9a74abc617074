"""Board health from /proc and /sys, on recorded files from a Raspberry Pi and on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.health import BoardHealth
from wire import Health

MEMINFO = "MemTotal:        3884096 kB\nMemFree:          512000 kB\nMemAvailable:    2913072 kB\n"


def _fake_board(root: Path, *, stat: str, temps: dict[str, str]) -> tuple[Path, Path]:
    proc, sys = root / "proc", root / "sys"
    proc.mkdir(parents=True)
    (proc / "stat").write_text(stat)
    (proc / "loadavg").write_text("0.52 0.40 0.31 1/180 4242\n")
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "uptime").write_text("86400.50 300000.00\n")
    for rel, value in temps.items():
        path = sys / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    return proc, sys


def test_reads_a_pi_like_board(tmp_path: Path) -> None:
    proc, sys = _fake_board(
        tmp_path,
        stat="cpu  1000 0 1000 8000 0 0 0 0 0 0\n",
        temps={"class/thermal/thermal_zone0/temp": "48312\n"},
    )
    board = BoardHealth(tmp_path, proc=proc, sys=sys)
    (proc / "stat").write_text("cpu  1250 0 1250 8500 0 0 0 0 0 0\n")  # 500 busy of 1000 ticks
    values = board.read()
    assert values["cpu_pct"] == 50.0
    assert (values["load1"], values["load5"], values["load15"]) == (0.52, 0.40, 0.31)
    assert values["mem_used_pct"] == 25.0 and values["mem_avail_mb"] == pytest.approx(2844.8, abs=0.1)
    assert values["temp_c"] == 48.3
    assert values["board_uptime_s"] == 86400.5
    assert 0 <= values["disk_used_pct"] <= 100 and values["disk_free_mb"] > 0
    Health(
        node="n",
        session="ab12cd34",
        seq=1,
        ts="2026-01-01T00:00:00Z",
        agent_uptime_s=1,
        outbox_depth=0,
        **values,
    )


def test_hwmon_when_no_thermal_zone_and_null_when_neither(tmp_path: Path) -> None:
    proc, sys = _fake_board(
        tmp_path / "a", stat="cpu  1 0 1 1 0 0 0 0\n", temps={"class/hwmon/hwmon0/temp1_input": "61000\n"}
    )
    assert BoardHealth(tmp_path, proc=proc, sys=sys).temperature_c() == 61.0
    proc, sys = _fake_board(tmp_path / "b", stat="cpu  1 0 1 1 0 0 0 0\n", temps={})
    board = BoardHealth(tmp_path, proc=proc, sys=sys)
    assert board.temperature_c() is None
    assert board.read()["cpu_pct"] is None  # no interval yet: unknown, not 0 or 100


def test_missing_proc_gives_nulls(tmp_path: Path) -> None:
    board = BoardHealth(tmp_path, proc=tmp_path / "none", sys=tmp_path / "none")
    values = board.read()
    assert values["cpu_pct"] is None and values["board_uptime_s"] is None and values["temp_c"] is None
    assert "mem_used_pct" not in values


def test_this_machine_validates_against_the_contract(tmp_path: Path) -> None:
    board = BoardHealth(tmp_path / "outbox-dir-not-created-yet")
    Health(
        node="n",
        session="ab12cd34",
        seq=1,
        ts="2026-01-01T00:00:00Z",
        agent_uptime_s=0,
        outbox_depth=0,
        **board.read(),
    )
