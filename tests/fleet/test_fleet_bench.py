"""``commune-iot bench fleet`` on a few boards: it runs, every board applies, the last line is its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commune_iot.cli import main


def test_bench_fleet_small_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "fleet", "--boards", "3", "--run-dir", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert set(result) == {"boards", "applied", "p50_s", "p95_s", "max_s"}
    assert result["boards"] == result["applied"] == 3
    assert 0 < result["p50_s"] <= result["p95_s"] <= result["max_s"] <= 10
