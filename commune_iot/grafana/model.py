"""A small builder of Grafana's dashboard JSON model (schema 39, Grafana 10.4-11).

Only what our dashboards use: InfluxQL targets (raw queries, the language InfluxDB 1.x,
2.x and 3.x all serve), query variables, outage annotations, and a few panel types.
Panels are laid out left to right in a 24-column grid and wrap, so positions never
overlap and nobody edits coordinates by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 39
DATASOURCE_UID = "ciot-influx"
DATASOURCE: dict[str, str] = {"type": "influxdb", "uid": DATASOURCE_UID}
GRID_WIDTH = 24

PanelType = Literal["timeseries", "stat", "table", "state-timeline", "barchart", "bargauge", "heatmap"]


@dataclass(frozen=True)
class Query:
    """One InfluxQL query; ``alias`` may use $tag_<name> (Grafana's InfluxDB alias patterns)."""

    influxql: str
    alias: str = ""
    table: bool = False  # resultFormat table (for table panels) instead of time series

    def target(self, ref: str) -> dict[str, Any]:
        t: dict[str, Any] = {
            "refId": ref,
            "datasource": DATASOURCE,
            "query": self.influxql,
            "rawQuery": True,
            "resultFormat": "table" if self.table else "time_series",
        }
        if self.alias:
            t["alias"] = self.alias
        return t


#: Gaps a time series line or a state timeline bridges (Grafana bridges a run of nulls when
#: the values either side are less than this apart): two readings of a board on the 3G
#: profile (300 s) plus slack; a longer silence (a lost board, an outage) stays a visible gap.
SPAN_NULLS_MS = 660_000


@dataclass(frozen=True)
class Panel:
    title: str
    type: PanelType
    queries: tuple[Query, ...]
    description: str = ""
    width: int = 12
    height: int = 8
    unit: str = ""
    decimals: int | None = None
    mappings: tuple[dict[str, Any], ...] = ()
    thresholds: tuple[tuple[float | None, str], ...] = ()  # (from value, colour); first is the base
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    expect_data: bool = True  # the query test demands rows (False: may be empty in a healthy fleet)

    def to_json(self, pid: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {"custom": dict(self.custom)}
        if self.type == "state-timeline" or (
            self.type == "timeseries" and self.custom.get("drawStyle", "line") == "line"
        ):
            # boards on the shipped 3G profile report every 300 s: with fill(null) and a short
            # $__interval their points would stand apart (a state timeline draws a null as no
            # state, so a 5-minute point became a 10-60 s sliver); join them, but show a longer
            # gap (tests/grafana/test_grafana_300s.py)
            defaults["custom"].setdefault("spanNulls", SPAN_NULLS_MS)
        if self.unit:
            defaults["unit"] = self.unit
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        if self.mappings:
            defaults["mappings"] = list(self.mappings)
        if self.thresholds:
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [{"value": v, "color": c} for v, c in self.thresholds],
            }
        return {
            "id": pid,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "targets": [q.target(chr(ord("A") + i)) for i, q in enumerate(self.queries)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class Variable:
    """A query variable; ``query`` is InfluxQL (``SHOW TAG VALUES ...``)."""

    name: str
    label: str
    query: str
    multi: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "query",
            "name": self.name,
            "label": self.label,
            "datasource": DATASOURCE,
            "query": self.query,
            "definition": self.query,
            "refresh": 2,  # on time range change: new devices appear without a reload
            "includeAll": self.multi,
            "multi": self.multi,
            "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if self.multi else {},
            "options": [],
            "hide": 0,
        }


@dataclass(frozen=True)
class Annotation:
    name: str
    query: str  # must contain WHERE $timeFilter
    text_column: str = "text"
    end_column: str = "end_ms"
    color: str = "red"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": self.color,
            "query": self.query,
            "target": {"query": self.query, "rawQuery": True, "refId": "Anno"},
            "textColumn": self.text_column,
            "timeEndColumn": self.end_column,
        }


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    tags: tuple[str, ...] = ("commune-iot",)
    time_from: str = "now-24h"
    refresh: str = "30s"

    def to_json(self) -> dict[str, Any]:
        panels, x, y, row_h = [], 0, 0, 0
        for i, p in enumerate(self.panels, start=1):
            if x + p.width > GRID_WIDTH:
                x, y, row_h = 0, y + row_h, 0
            panels.append(p.to_json(i, x, y))
            x += p.width
            row_h = max(row_h, p.height)
        builtin = {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "browser",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": False,
            "graphTooltip": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": [v.to_json() for v in self.variables]},
            "annotations": {"list": [builtin] + [a.to_json() for a in self.annotations]},
            "panels": panels,
            "links": [
                {"type": "dashboards", "tags": ["commune-iot"], "asDropdown": True, "title": "commune-iot"}
            ],
        }


def state_mappings(states: dict[str, tuple[str, str]]) -> tuple[dict[str, Any], ...]:
    """Value -> (text, colour) as one Grafana value mapping."""
    return (
        {
            "type": "value",
            "options": {
                k: {"text": text, "color": color, "index": i}
                for i, (k, (text, color)) in enumerate(states.items())
            },
        },
    )
