"""What a technician reads about a frozen board, against real processes: Mosquitto, InfluxDB,
``commune-iot cloud serve`` and edge agents (issue 14).

* Presence: the board is frozen (SIGSTOP) until the broker drops it and sends its Will;
  ``/api/v1/devices`` and the ``status`` points in InfluxDB must say offline within 2 s of
  the Will, and online again within 2 s of the birth after it is thawed.
* Outage spans: a board frozen for 40 s is recorded as an outage of the time it was really
  unheard (from its last message to its first message after), not that plus the recovery
  check, in ``/api/v1/availability`` and in the Wi-Fi report.

An independent MQTT subscriber (``node_traffic``) tells when the Will, the birth and each
message really crossed the broker.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from node_traffic import NodeTraffic, is_status
from support import influx_query

from commune_iot.bench.outage import OutageRig
from commune_iot.demo import _summary as demo_status_line
from commune_iot.localsvc import InfluxDB

WITHIN_S = 2.0
DB = "t_presence_and_spans"
FAST = "dr-ap-01"  # keepalive 2 s: the broker gives up on it after 3 s, before the cloud's silence limit
SPAN = "lx-ap-01"  # the shipped defaults: health every 10 s, keepalive 10 s, recovery check 10 s


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _await(probe: Callable[[], bool], after: float, what: str, within_s: float = WITHIN_S) -> float:
    """Poll until ``probe`` holds; returns how long after ``after`` it first did."""
    deadline = after + within_s + 3.0  # look a little longer, so a miss says by how much
    while not probe():
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {within_s + 3.0:.0f} s")
        time.sleep(0.05)
    took = time.time() - after
    print(f"{what}: {took:.2f} s")
    assert took <= within_s, f"{what} took {took:.2f} s (at most {within_s} s)"
    return took


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxDB) -> Iterator[OutageRig]:
    """One rig for both tests (its start-up is a third of their time); each freezes its own board."""
    with OutageRig.running(
        tmp_path_factory.mktemp("presence") / "rig", [SPAN, "tt-ap-01"], influx=influx_server, database=DB
    ) as rig:
        rig.start_agent(FAST, keepalive_s=2, health_interval_s=1.0)
        deadline = time.monotonic() + 30
        while _device(rig, FAST)["board"] != "up":
            assert time.monotonic() < deadline, f"{FAST} never came up"
            time.sleep(0.2)
        yield rig


def _agree(rig: OutageRig) -> None:
    """The devices list, the commune summary and the demo's status line tell one judgement."""
    devices = rig.cloud.get_json("/api/v1/devices")
    boards = Counter(d["board"] for d in {d["node"]: d for d in devices}.values())
    states = Counter(d["state"] for d in devices)
    summary = rig.cloud.get_json("/api/v1/communes/summary")
    for s in ("up", "down", "unknown"):
        assert boards[s] == sum(c[f"nodes_{s}"] for c in summary), (s, boards, summary)
        assert states[s] == sum(c[f"devices_{s}"] for c in summary), (s, states, summary)
    line = demo_status_line(rig.cloud, [])
    assert line.startswith(
        f"boards: up {boards['up']}, down {boards['down']}, unknown {boards['unknown']}"
    ), line


def _device(rig: OutageRig, device: str) -> dict[str, Any]:
    return next(d for d in rig.cloud.get_json("/api/v1/devices") if d["id"] == device)


def test_a_frozen_board_is_offline_within_2s_of_its_will_and_online_within_2s_of_its_birth(
    rig: OutageRig, influx_server: InfluxDB
) -> None:
    """It is the broker's Will that must turn the board offline here: with keepalive 2 s it comes
    3-4 s after the freeze, long before the cloud's own silence limit (12 s)."""
    traffic = NodeTraffic(rig.broker.port, "da-ron", FAST)

    def offline() -> bool:
        d = _device(rig, FAST)
        return (d["status"], d["board"], d["state"]) == ("offline", "down", "unknown")

    def online() -> bool:
        d = _device(rig, FAST)
        return (d["status"], d["board"], d["state"]) == ("online", "up", "up")

    def newest_status_point() -> float | None:
        q = f'SELECT last("online") FROM "status" WHERE "node" = \'{FAST}\''
        series = influx_query(influx_server, DB, q)
        return series[0]["values"][0][1] if series else None

    try:
        assert online()
        frozen_at = rig.freeze(FAST)
        will = traffic.wait_for(is_status("offline", "will", frozen_at), 20, "Will from the broker")
        _await(offline, will.at, "API offline and down")
        _await(lambda: newest_status_point() == 0.0, will.at, "status point offline")
        _agree(rig)

        thawed_at = rig.thaw(FAST)
        birth = traffic.wait_for(is_status("online", "birth", thawed_at), 20, "birth after the thaw")
        assert birth.body is not None and will.body is not None
        assert birth.body["ts"] > will.body["ts"], "the new connection's stamp is later"
        _await(online, birth.at, "API online and up")
        _await(lambda: newest_status_point() == 1.0, birth.at, "status point online")
    finally:
        traffic.close()


def test_a_board_frozen_40s_is_an_outage_of_the_time_it_was_unheard(rig: OutageRig) -> None:
    traffic = NodeTraffic(rig.broker.port, "lac-xuan", SPAN)
    try:
        traffic.wait_for(lambda h: h.channel == "health" and h.from_node, 30, "a heartbeat")
        time.sleep(random.uniform(0.0, 10.0))  # freeze at a random point of the heartbeat interval
        frozen_at = rig.freeze(SPAN)
        rig.sink.wait_for(lambda n: n["subject"] == SPAN and n["kind"] == "open", 40, "the alert")
        time.sleep(max(0.0, frozen_at + 40.0 - time.time()))  # the rest of the 40 s freeze
        thawed_at = rig.thaw(SPAN)
        resolved = rig.sink.wait_for(
            lambda n: n["subject"] == SPAN and n["kind"] == "resolve", 60, "recovery"
        )
        last, first = traffic.last_before(frozen_at), traffic.first_after(thawed_at)
        (alert,) = rig.alerts(f"?subject={SPAN}")
        avail = rig.cloud.get_json(f"/api/v1/availability?device={SPAN}&start={int(frozen_at) - 600}")
        tz = ZoneInfo("Asia/Ho_Chi_Minh")
        days = sorted({datetime.fromtimestamp(t, tz).date().isoformat() for t in (last.at, first.at)})
        report = rig.cloud.get_json(f"/api/v1/reports/wifi?from={days[0]}&to={days[-1]}")
    finally:
        traffic.close()
    unheard = first.at - last.at  # what really crossed the broker
    recorded = alert["duration_s"]
    print(f"freeze 40 s: unheard {unheard:.1f} s, recorded {recorded:.1f} s, alert {alert}")
    assert abs(_epoch(alert["started_at"]) - last.at) <= 0.5  # the last message before the freeze
    assert abs(_epoch(alert["ended_at"]) - first.at) <= 0.5  # the first message after it
    assert abs(recorded - unheard) <= 0.5, f"recorded {recorded:.1f} s, unheard {unheard:.1f} s"
    assert 40.0 <= recorded <= 40.0 + 10.0 + 2.0, (
        "the freeze, plus at most a heartbeat interval and a reconnect"
    )
    assert resolved.notice["duration_s"] == recorded
    assert alert["recovery_delay_s"] >= 10.0  # the recovery check: reported apart, not counted
    assert alert["detection_delay_s"] > 0
    assert abs(avail["down_s"] - recorded) <= 0.01 and avail["outages"] == 1
    (ap,) = [r for r in report["aps"] if r["id"] == SPAN]
    assert ap["metrics"]["board_outages"] == 1
    assert abs(ap["metrics"]["unknown_s"] - recorded) <= 1.0  # the report's outage time (board offline)
