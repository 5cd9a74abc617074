"""The spine end to end, as separate processes: simulated agents -> real Mosquitto ->
cloud service -> real InfluxDB, watched by an independent MQTT observer.

These are the issue's acceptance scenarios, including the one-minute broker and database
outages (CIOT_OUTAGE_S shortens them for a quick local run; CI uses the full 60 s).
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from spine_helpers import (
    Observer,
    PointKey,
    Seen,
    data_messages,
    expected_points,
    ms,
    stored_points,
    wait_until,
)

from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config, edge_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port
from wire import Channel

OUTAGE_S = float(os.environ.get("CIOT_OUTAGE_S", "60"))
INVENTORY = {d["id"]: d for d in load_devices()}
DB = "ciot"


@dataclass
class Spine:
    run_dir: Path
    broker: Mosquitto
    influx: InfluxDB
    cloud: CloudProcess
    observer: Observer
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    def start_agents(self, nodes: list[str], on_3g: frozenset[str] = frozenset()) -> None:
        """``on_3g``: boards with the shipped 3G wire settings (packed JSON, beats between link
        checks), beside boards sending plain JSON: the cloud takes both."""
        for node in nodes:
            cfg = edge_config(
                INVENTORY[node],
                self.broker.url,
                self.run_dir / "agents" / node,
                health_interval_s=0.5,
                sim_interval_s=1.0,
                events_per_hour=1800,
                keepalive_s=5,
                reconnect_max_s=2.0,
                compress=node in on_3g,
                check_link_s=20 if node in on_3g else None,
            )
            self.agents[node] = AgentProcess.write(self.run_dir, cfg).start()

    def stop_agents(self) -> None:
        """SIGTERM every agent; each must flush, publish 'offline' (shutdown) and exit 0."""
        for a in self.agents.values():
            a.terminate()
        codes = {node: a.wait(30) for node, a in self.agents.items()}
        assert all(c == 0 for c in codes.values()), f"agent exit codes {codes}"
        self.observer.wait_for(
            lambda seen: all(_shutdown_seen(seen, n) for n in self.agents),
            30,
            "an orderly offline status from every agent",
        )

    def cloud_metrics(self) -> str:
        """The cloud's counters, for a failure message."""
        try:
            with urllib.request.urlopen(self.cloud.request("/metrics"), timeout=5) as r:  # admin token
                text = r.read().decode()
        except OSError as exc:
            return f"(cloud /metrics unavailable: {exc})"
        lines = text.splitlines()
        return "\n".join(line for line in lines if line.startswith("ciot_") and "_bucket" not in line)

    def devices(self) -> dict[str, dict[str, object]]:
        return {d["id"]: d for d in self.cloud.get_json("/api/v1/devices")}

    def assert_all_stored(self, nodes: list[str], timeout: float = 60) -> dict[str, list[Seen]]:
        """Every point of every message the nodes sent is in InfluxDB, once, with its tags."""
        seen = self.observer.snapshot()
        msgs = [m for m in data_messages(seen) if m.node in nodes]
        want = expected_points(msgs)
        measurements = {k[0] for k in want}
        stored: dict[PointKey, dict[str, object]] = {}

        def complete() -> bool:
            nonlocal stored
            stored = stored_points(self.influx, DB, measurements)
            return want <= stored.keys()

        try:
            wait_until(complete, timeout, f"{len(want)} points in InfluxDB")
        except AssertionError as exc:
            missing = sorted(want - stored.keys(), key=lambda k: k[3])
            sample = f"e.g. {missing[:3]} ... {missing[-3:]}"
            raise AssertionError(f"{exc}: {len(missing)} missing, {sample}\n{self.cloud_metrics()}") from None
        ours = {k: v for k, v in stored.items() if _owner(k) in nodes}
        assert ours.keys() == want, "InfluxDB holds points no agent sent"
        for (measurement, dev, _, _), row in ours.items():
            inv = INVENTORY[dev]
            assert row["commune"] == inv["commune"], (measurement, dev, row)
            assert row["site"] == inv["site"], (measurement, dev, row)
            assert row["kind"] == inv["kind"], (measurement, dev, row)
            assert row["node"] == inv["node"], (measurement, dev, row)
        by_node: dict[str, list[Seen]] = defaultdict(list)
        for m in msgs:
            by_node[m.node].append(m)
        return by_node


def _owner(key: PointKey) -> str:
    return INVENTORY[key[1]]["node"] if key[1] in INVENTORY else key[1]


def _shutdown_seen(seen: list[Seen], node: str) -> bool:
    return any(
        s.node == node and s.channel is Channel.STATUS and s.body and s.body["reason"] == "shutdown"
        for s in seen
    )


@pytest.fixture
def spine(tmp_path: Path, mosquitto: Mosquitto, fresh_influx: InfluxDB) -> Iterator[Spine]:
    pw = tmp_path / "influx.password"
    pw.write_text(fresh_influx.password)
    cfg = cloud_config(
        mqtt_url=mosquitto.url,
        influx_url=fresh_influx.url,
        influx_db=DB,
        influx_user=fresh_influx.username,
        influx_password_file=pw,
        state_dir=tmp_path / "cloud",
        http_port=free_port(),
    )
    cloud = CloudProcess.write(tmp_path, cfg).start()
    observer = Observer(mosquitto.port)
    s = Spine(tmp_path, mosquitto, fresh_influx, cloud, observer)
    yield s
    for a in s.agents.values():
        a.kill()
    observer.close()
    cloud.stop()


def _per_session(msgs: list[Seen]) -> dict[str, list[Seen]]:
    out: dict[str, list[Seen]] = defaultdict(list)
    for m in msgs:
        assert m.body is not None
        out[m.body["session"]].append(m)
    return out


def _assert_contiguous_and_ordered(node: str, msgs: list[Seen]) -> None:
    for session, items in _per_session(msgs).items():
        seqs = sorted(m.body["seq"] for m in items if m.body)
        assert seqs == list(range(1, len(seqs) + 1)), f"{node}/{session}: sequence gaps {seqs[:5]}..."
    # In arrival order (first arrival of each message), a session's data is in sequence.
    arrived: dict[str, list[int]] = defaultdict(list)
    firsts: set[tuple[str, int]] = set()
    for s in msgs:
        assert s.body is not None
        key = (s.body["session"], s.body["seq"])
        if key not in firsts:
            firsts.add(key)
            arrived[s.body["session"]].append(s.body["seq"])
    for session, seqs in arrived.items():
        assert seqs == sorted(seqs), f"{node}/{session}: delivered out of order"


NODES_MIXED = ["dr-cam-01", "tt-cam-02", "dr-ap-01", "tt-ap-05", "lx-ap-01", "lx-ap-11"]


def test_every_message_reaches_influxdb_with_tags_and_devices_show_online(spine: Spine) -> None:
    spine.start_agents(NODES_MIXED)
    cams = [n for n in NODES_MIXED if INVENTORY[n]["kind"] == "camera"]
    spine.observer.wait_for(
        lambda seen: (
            all(len(data_messages(seen, n)) >= 8 for n in NODES_MIXED)
            and all(any(s.channel is Channel.EVENT and s.node == c for s in seen) for c in cams)
        ),
        60,
        "8 data messages from every agent and a motion event from every camera",
    )
    wait_until(
        lambda: all(spine.devices()[n]["status"] == "online" for n in NODES_MIXED), 15, "devices online"
    )
    devices = spine.devices()
    assert len(devices) == 59, "the device list is the whole inventory"
    assert {devices[n]["status"] for n in INVENTORY if n not in NODES_MIXED} == {"never_seen"}

    spine.stop_agents()
    by_node = spine.assert_all_stored(NODES_MIXED)
    for node in NODES_MIXED:
        _assert_contiguous_and_ordered(node, by_node[node])
        assert all(not m.body["replay"] for m in by_node[node] if m.body), "no outage, no replay"
    wait_until(
        lambda: all(spine.devices()[n]["status"] == "offline" for n in NODES_MIXED), 15, "devices offline"
    )
    # Snapshots reached the cloud's content-addressed store.
    shas = {
        m.body["snapshot_sha256"] for n in cams for m in by_node[n] if m.channel is Channel.EVENT and m.body
    }
    stored_snaps = {p.stem for p in (spine.run_dir / "cloud" / "snapshots").rglob("*.jpg")}
    assert shas and shas <= stored_snaps


def test_broker_outage_with_agent_killed_and_restarted_loses_nothing(spine: Spine) -> None:
    nodes = ["dr-cam-03", "tt-ap-02", "lx-ap-04"]
    victim = "tt-ap-02"
    spine.start_agents(nodes, on_3g=frozenset({"dr-cam-03", "tt-ap-02"}))
    spine.observer.wait_for(
        lambda seen: all(len(data_messages(seen, n)) >= 4 for n in nodes), 60, "live data from every agent"
    )
    down_at = time.time()
    spine.broker.stop()
    # Part-way through the outage the victim's board loses power (kill -9) and boots again.
    time.sleep(OUTAGE_S / 3)
    spine.agents[victim].kill()
    time.sleep(2)
    spine.agents[victim].start()
    time.sleep(OUTAGE_S - OUTAGE_S / 3 - 2)
    spine.broker.start()
    up_at = time.time()

    # Every agent drains its outbox; the observer (persistent session) sees it all.
    spine.observer.wait_for(
        lambda seen: all(
            any(m.body and ms(m.body["ts"]) > up_at * 1000 + 1000 for m in data_messages(seen, n))
            for n in nodes
        ),
        60,
        "fresh live data from every agent after the broker came back",
    )
    spine.stop_agents()
    by_node = spine.assert_all_stored(nodes, timeout=90)

    for node in nodes:
        msgs = by_node[node]
        _assert_contiguous_and_ordered(node, msgs)
        during = [m for m in msgs if m.body and down_at * 1000 + 500 < ms(m.body["ts"]) < up_at * 1000 - 500]
        # Health every 0.5 s: the outage's data is there, with the edge's original timestamps...
        assert len([m for m in during if m.channel is Channel.HEALTH]) >= 0.6 * (OUTAGE_S - 4) / 0.5, node
        # ...and flagged as replayed from the outbox.
        assert all(m.body and m.body["replay"] for m in during), f"{node}: outage data without replay flag"
    sessions = _per_session(by_node[victim])
    assert len(sessions) == 2, "the killed agent's first session and its new one both arrived"


def test_influxdb_outage_loses_nothing_and_readyz_reports_it(spine: Spine) -> None:
    nodes = ["tt-cam-04", "dr-ap-07", "lx-ap-09"]
    spine.start_agents(nodes)
    spine.observer.wait_for(
        lambda seen: all(len(data_messages(seen, n)) >= 4 for n in nodes), 60, "live data from every agent"
    )
    wait_until(lambda: spine.cloud.get_status("/readyz") == 200, 15, "cloud ready")
    spine.influx.stop()
    wait_until(lambda: spine.cloud.get_status("/readyz") == 503, 15, "/readyz to say not ready")
    body = _readyz_body(spine.cloud)
    assert body["dependencies"]["influxdb"], body  # names InfluxDB with a reason
    assert body["dependencies"]["mqtt"] == "ok", body
    time.sleep(OUTAGE_S - 2)
    assert spine.cloud.get_status("/readyz") == 503
    spine.influx.start()
    wait_until(lambda: spine.cloud.get_status("/readyz") == 200, 30, "/readyz ready again")
    spine.stop_agents()
    by_node = spine.assert_all_stored(nodes, timeout=90)
    for node in nodes:
        _assert_contiguous_and_ordered(node, by_node[node])
        assert len(by_node[node]) >= OUTAGE_S / 0.5, f"{node}: data of the outage minute"


def _readyz_body(cloud: CloudProcess) -> dict[str, dict[str, str]]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{cloud.url}/readyz", timeout=5) as r:
            return dict(json.load(r))
    except urllib.error.HTTPError as exc:
        return dict(json.load(exc))
