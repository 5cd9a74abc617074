"""The ingest benchmark runs end to end and reports a complete, loss-free result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commune_iot.bench.ingest import main, make_traffic


def test_traffic_is_valid_wire_traffic() -> None:
    from cloud.config import REPO_ROOT
    from cloud.ingest.convert import Converted, Converter
    from cloud.inventory import load_inventory

    conv = Converter(load_inventory(REPO_ROOT / "firmware_config" / "inventory.yaml"))
    traffic, expected = make_traffic(500)
    results = [conv.convert(t, p) for t, p in traffic]
    assert all(isinstance(r, Converted) for r in results)
    assert sum(len(r.lines) for r in results if isinstance(r, Converted)) == sum(expected.values())
    assert set(expected) == {"health", "ap", "ap_radio", "camera", "motion"}


def test_bench_ingest_small_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(messages=3000, workers=2, run_dir=tmp_path) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert set(result) == {
        "msgs_per_s",
        "bare_subscriber_msgs_per_s",
        "ratio",
        "cpu_s",
        "workers",
        "messages",
        "lost",
    }
    assert result["lost"] == 0 and result["messages"] == 3000 and result["workers"] == 2
    assert result["msgs_per_s"] > 0 and result["cpu_s"] > 0
