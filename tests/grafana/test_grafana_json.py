"""The dashboard JSON is what Grafana expects, and what is committed is what the code builds.

No Grafana can run here, so the structure Grafana's provisioning needs is checked
directly: schema version, panel types, unique ids and uids, a grid without overlaps,
data source references that resolve to the provisioned data source, and outage
annotations limited to the dashboard's time range.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from commune_iot.cli import main as cli
from commune_iot.grafana.export import JSON_DIR, dumps, rendered
from commune_iot.grafana.model import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
UIDS = ["ciot-aps", "ciot-boards", "ciot-cameras", "ciot-cloud", "ciot-fleet"]
PANEL_TYPES = {"timeseries", "stat", "table", "state-timeline", "barchart", "bargauge", "heatmap"}


def _provisioned_uid() -> str:
    doc = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/influxdb.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "influxdb" and "$INFLUX_PASSWORD" in str(ds["secureJsonData"])
    return str(ds["uid"])


def _models() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(JSON_DIR.glob("*.json"))]


def test_committed_json_is_what_the_builder_makes(tmp_path: Path) -> None:
    built = rendered()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.json")}
    stale = sorted(n for n in built.keys() | on_disk.keys() if on_disk.get(n) != dumps(built.get(n, {})))
    assert not stale, f"dashboards/json is stale for {stale}: run `commune-iot grafana export`"
    assert cli(["grafana", "export", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(built)


def test_five_dashboards_with_stable_unique_uids_and_vietnamese_titles() -> None:
    models = _models()
    assert [m["uid"] for m in models] == UIDS
    titles = {m["uid"]: m["title"] for m in models}
    assert titles["ciot-fleet"] == "Tổng quan thiết bị" and titles["ciot-aps"] == "Điểm phát Wi-Fi"
    assert all(m["schemaVersion"] == SCHEMA_VERSION and m["editable"] is False for m in models)


@pytest.mark.parametrize("model", _models(), ids=lambda m: m["uid"])
def test_panels_are_well_formed_and_do_not_overlap(model: dict[str, Any]) -> None:
    uid = _provisioned_uid()
    panels = model["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for p in panels:
        assert p["type"] in PANEL_TYPES
        assert p["title"] and p["description"], f"panel {p['id']} needs a title and a description"
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"panel {p['title']!r} overlaps another"
        taken |= cells
        assert p["datasource"]["uid"] == uid
        assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid and t["rawQuery"] is True
            assert "$timeFilter" in t["query"], f"{p['title']!r} would scan all of history"
            if t["resultFormat"] == "time_series" and p["type"] != "stat":
                assert "GROUP BY time(" in t["query"] or 'GROUP BY "' in t["query"]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m["uid"])
def test_variables_resolve_and_annotations_stay_in_the_time_range(model: dict[str, Any]) -> None:
    uid = _provisioned_uid()
    names = {v["name"] for v in model["templating"]["list"]}
    for v in model["templating"]["list"]:
        assert v["datasource"]["uid"] == uid and v["query"].startswith("SHOW TAG VALUES")
    builtins = {"timeFilter", "__interval", "__interval_ms", "tag_device", "tag_node", "tag_band", "tag_ssid",
                "tag_commune", "tag_cause", "tag_worker", "tag_hour"}  # fmt: skip
    for p in model["panels"]:
        for t in p["targets"]:
            used = set(re.findall(r"\$(\w+)", t["query"] + t.get("alias", "")))
            assert used <= names | builtins, f"{p['title']!r} uses undefined {used - names - builtins}"
    for a in model["annotations"]["list"][1:]:
        assert a["datasource"]["uid"] == uid and "WHERE $timeFilter" in a["target"]["query"]
        assert a["timeEndColumn"] == "end_ms" and a["textColumn"] == "text"
    if model["uid"] != "ciot-cloud":
        assert len(model["annotations"]["list"]) == 2, "outage annotations on every device dashboard"
