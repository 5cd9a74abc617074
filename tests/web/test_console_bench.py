"""``commune-iot bench console`` on a few boards: it runs, sees the frozen board come and go, and
ends with one line of JSON (the full run on the demo's 59 boards is the command itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commune_iot.cli import main


def test_bench_console_small_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "console", "--boards", "3", "--requests", "5", "--run-dir", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["devices"] == result["rows"] == 59 and result["boards"] == 3
    assert 0 < result["server_p50_ms"] <= result["server_p95_ms"] <= result["server_max_ms"]
    assert result["others_stayed_up"] is True
    assert 0 < result["frozen_seen_s"] < 60 and 0 < result["back_up_s"] < 60
