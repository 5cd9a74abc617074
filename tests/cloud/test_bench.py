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


def test_bench_scale_short_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The scale benchmark's path at 300 boards: every killed board alerted, nothing else, the
    API paging under load, and the figures of its last line (CI's short variant of the
    10,000-board run in docs/scaling.md)."""
    from commune_iot.bench.scale import main as scale

    code = scale(boards=300, seconds=20, kill=4, run_dir=tmp_path, disk=False, settle_s=5.0, warmup_s=5.0)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, result
    assert result["boards"] == 300 and result["killed"] == 4
    assert result["alerts_missing"] == 0 and result["false_alerts"] == 0
    assert 0 < result["alert_p95_s"] <= 20
    assert result["api_errors"] == 0 and result["api_devices_page_p95_s"] > 0
    assert result["lag_samples"] > 0 and result["influx_series"] > 300
    assert result["msgs_per_s"] > 30  # 300 boards: health every 10 s, metrics every 10 or 30 s


def test_bench_disk_measures_a_compacted_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from commune_iot.bench.disk import main as disk

    assert disk(boards=2, run_dir=tmp_path) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["points_per_board_per_day"] > 8640  # health every 10 s, and metrics
    assert 0 < result["rollup_mb_per_board_per_day"] < result["raw_mb_per_board_per_day"] < 5
