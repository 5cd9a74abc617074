"""Every query of every dashboard, rendered as Grafana renders it, runs against a real
InfluxDB holding what the real pipeline stored: Mosquitto, ``commune-iot cloud serve``
and simulated agents of two cameras and two access points as processes, with one board
frozen until its outage alert opens and then thawed (so the outage annotations have data),
then the broker stopped for 12 s (so the replay panels have data).

No Grafana can run here; ``commune_iot.grafana.macros`` substitutes ``$timeFilter``,
``$__interval`` and the template variables the way Grafana's InfluxDB data source does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support import influx_query

from commune_iot.bench.outage import OutageRig
from commune_iot.grafana.dashboards import all_dashboards
from commune_iot.grafana.macros import render
from commune_iot.localsvc import InfluxDB

NODES = ["dr-cam-01", "dr-ap-01", "tt-cam-01", "tt-ap-01"]


@dataclass
class Stored:
    influx: InfluxDB
    db: str
    from_ms: int
    to_ms: int

    def run(self, query: str, variables: dict[str, list[str]]) -> list[dict[str, Any]]:
        return influx_query(self.influx, self.db, render(query, self.from_ms, self.to_ms, variables))


def _values(series: list[dict[str, Any]]) -> list[Any]:
    return [v for s in series for row in s.get("values", []) for v in row[1:] if v is not None]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxDB) -> Iterator[Stored]:
    db = "t_grafana_queries"
    start = time.time()
    with OutageRig.running(
        tmp_path_factory.mktemp("grafana") / "rig",
        NODES,
        influx=influx_server,
        database=db,
        alerting={"states_s": 2.0},
        agent_overrides={"sim_interval_s": 2.0, "events_per_hour": 36000.0},
    ) as rig:
        frozen = rig.freeze("dr-ap-01")
        rig.sink.wait_for(lambda n: n["kind"] == "open" and n["subject"] == "dr-ap-01", 40, "outage")
        thawed = rig.thaw("dr-ap-01")
        rig.sink.wait_for(lambda n: n["kind"] == "resolve" and n["at"] >= thawed, 60, "recovery")
        assert thawed - frozen > 10
        # A freeze makes no backlog (a stopped board produces nothing), so the replay panel
        # gets its data from a broker outage longer than one health interval (10 s): every
        # board keeps its health in the outbox and replays it on reconnect.
        rig.broker.stop()
        time.sleep(12)  # the fault's length, not a wait for an event
        rig.broker.start()
        replayed = 'SELECT count("seq") FROM "health" WHERE "replay" = true'
        deadline = time.time() + 60
        while not _values(influx_query(influx_server, db, replayed)):
            assert time.time() < deadline, "no replayed health stored within 60 s of the broker's return"
            time.sleep(0.5)
        rig.wait_judging(90)  # every board back up after the broker's return
        deadline = time.time() + 30
        while time.time() < deadline:  # the cloud's own figures come every 10 s; derivatives need two
            if len(_values(influx_query(influx_server, db, 'SELECT "received" FROM "cloud"'))) >= 3:
                break
            time.sleep(1)
        yield Stored(influx_server, db, int(start * 1000) - 60_000, int(time.time() * 1000) + 60_000)


@pytest.mark.parametrize("dashboard", all_dashboards(), ids=lambda d: d.uid)
def test_every_query_parses_and_panels_that_should_have_data_do(stored: Stored, dashboard: Any) -> None:
    model = dashboard.to_json()
    variables: dict[str, list[str]] = {}
    for v in model["templating"]["list"]:  # in order: later ones filter by the earlier ones
        values = sorted({str(row[1]) for s in stored.run(v["query"], variables) for row in s["values"]})
        assert values, f"variable ${v['name']} has no values: {v['query']}"
        variables[v["name"]] = values
    empty: list[str] = []
    for panel, built in zip(model["panels"], dashboard.panels, strict=True):
        for target in panel["targets"]:
            rows = _values(stored.run(target["query"], variables))
            if built.expect_data and not rows:
                empty.append(f"{panel['title']} [{target['refId']}]: {target['query']}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    for a in model["annotations"]["list"][1:]:
        series = stored.run(a["target"]["query"], variables)
        cols = series[0]["columns"] if series else []
        assert "text" in cols and "end_ms" in cols, "no outage annotation for the frozen board"
        texts = [row[cols.index("text")] for s in series for row in s["values"]]
        assert any("dr-ap-01" in t for t in texts)


def test_fleet_table_shows_every_device_heard_with_its_state(stored: Stored) -> None:
    fleet = next(d for d in all_dashboards() if d.uid == "ciot-fleet")
    table = next(p for p in fleet.panels if p.type == "table")
    everything = {"commune": ["da-ron", "tu-tra", "lac-xuan"], "site": [".*"], "device": [".*"]}
    query = table.queries[0].influxql.replace("/^$site$/", "/.*/").replace("/^$device$/", "/.*/")
    series = stored.run(query, {"commune": everything["commune"]})
    devices = {s["tags"]["device"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in series}
    assert len(devices) == 59  # the whole inventory, also the boards never heard (unknown)
    for node in NODES:
        assert devices[node]["Trạng thái"] == "up"
    assert devices["lx-ap-05"]["Trạng thái"] == "unknown"
    assert 0 < devices["dr-ap-01"]["Hoạt động %"] < 100  # it was down for a while


def test_motion_heatmap_has_one_row_per_local_hour_of_day(stored: Stored) -> None:
    cams = next(d for d in all_dashboards() if d.uid == "ciot-cameras")
    heatmap = next(p for p in cams.panels if p.type == "heatmap")
    every = {"commune": ["da-ron", "tu-tra"], "site": [".*"], "camera": [".*"]}
    query = heatmap.queries[0].influxql.replace("/^$site$/", "/.*/").replace("/^$camera$/", "/.*/")
    series = stored.run(query, {"commune": every["commune"]})
    hours = {s["tags"]["hour"] for s in series}
    assert hours and all(len(h) == 2 and 0 <= int(h) <= 23 for h in hours)
    now_local = time.strftime("%H", time.gmtime(time.time() + 7 * 3600))  # UTC+7, no DST
    assert now_local in hours or f"{(int(now_local) - 1) % 24:02d}" in hours  # events of this run
