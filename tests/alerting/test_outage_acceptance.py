"""The issue's acceptance scenarios, against real processes: Mosquitto, InfluxDB,
``commune-iot cloud serve`` and edge agents, with the shipped detection defaults
(health every 10 s, keepalive 10 s, silence 1.5 x interval, grace 3 s, recovery 10 s).
Notices are caught by a local webhook endpoint and a local SMTP server (aiosmtpd).

Only ``settle_s`` is shortened to 15 s (agents here reconnect within 10 s); see
``commune_iot.bench.outage.RIG_ALERTING``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text
from support import influx_query

from cloud.storage.sql import SqlStore
from commune_iot.bench.outage import OutageRig, WebhookSink
from commune_iot.fleet import AgentProcess, CloudProcess, edge_config
from commune_iot.localsvc import InfluxDB, free_port
from wire import Health, encode
from wire.topics import Channel, topic_for

LX = ["lx-ap-01", "lx-ap-02", "lx-ap-03", "lx-ap-04"]


def _post(rig: OutageRig, path: str, body: dict[str, Any]) -> Any:
    return rig.cloud.post_json(path, body)


def _kinds(sink: WebhookSink) -> list[tuple[str, str, str]]:
    return [(r.notice["kind"], r.notice["scope"], r.notice["subject"]) for r in sink.notices()]


@pytest.fixture
def rig_dir(tmp_path: Path) -> Path:
    return tmp_path / "rig"


def test_frozen_agent_alerts_within_20s_kill9_within_grace_and_outages_are_data(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    with OutageRig.running(
        rig_dir, ["dr-ap-01", "tt-ap-01"], influx=influx_server, database=influx_db
    ) as rig:
        frozen_at = rig.freeze("dr-ap-01")
        got = rig.sink.wait_for(lambda n: n["subject"] == "dr-ap-01", 30, "about the frozen agent")
        assert got.at - frozen_at <= 20.0
        assert got.notice["cause"] == "silent"

        killed_at = rig.kill("tt-ap-01")
        got = rig.sink.wait_for(lambda n: n["subject"] == "tt-ap-01", 15, "about the killed agent")
        assert got.at - killed_at <= 3.0 + 2.0  # grace + 2 s
        assert got.notice["cause"] == "will"

        rig.thaw("dr-ap-01")
        done = rig.sink.wait_for(lambda n: n["kind"] == "resolve", 60, "resolving the frozen agent")
        assert done.notice["subject"] == "dr-ap-01" and done.notice["duration_s"] > 15

        summary = {c["commune"]: c for c in rig.cloud.get_json("/api/v1/communes/summary")}
        assert summary["tu-tra"]["nodes_down"] == 1 and summary["tu-tra"]["devices_unknown"] >= 1
        open_alert = rig.alerts("?state=active")
        assert [a["subject"] for a in open_alert] == ["tt-ap-01"]
        acked = _post(rig, f"/api/v1/alerts/{open_alert[0]['id']}/ack", {"comment": "Hùng đang đi"})
        assert (acked["state"], acked["acked_by"]) == ("acknowledged", "fleet-admin")  # the token's user

        def outages() -> dict[str, dict[str, Any]]:
            out = {}
            for series in influx_query(
                influx_server, influx_db, 'SELECT * FROM "rollups"."outage" GROUP BY device'
            ):
                row = dict(zip(series["columns"], series["values"][-1], strict=True))
                out[series["tags"]["device"]] = row
            return out

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not outages().get("dr-ap-01", {}).get("end_ms"):
            time.sleep(0.2)
        rows = outages()
        assert rows["dr-ap-01"]["ongoing"] is False and rows["dr-ap-01"]["duration_s"] > 15
        assert rows["dr-ap-01"]["cause"] == "silent" and rows["dr-ap-01"]["commune"] == "da-ron"
        assert rows["tt-ap-01"]["ongoing"] is True
        avail = rig.cloud.get_json(f"/api/v1/availability?device=dr-ap-01&start={int(frozen_at) - 3600}")
        assert avail["outages"] == 1 and 0.98 < avail["availability"] < 1.0


def test_a_commune_going_dark_is_one_alert_and_its_return_resolves_it(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    with OutageRig.running(rig_dir, [*LX, "dr-ap-01"], influx=influx_server, database=influx_db) as rig:
        cut_at = time.time()
        for node in LX:
            rig.freeze(node)  # the uplink is cut: no TCP close for anyone
        rig.sink.wait_for(lambda n: n["scope"] == "commune", 40, "a commune alert")
        time.sleep(25)  # nodes' Wills come now; they must not add alerts
        assert _kinds(rig.sink) == [("open", "commune", "lac-xuan")]
        first = rig.sink.notices()[0]
        assert first.at - cut_at <= 30
        for node in LX:
            rig.thaw(node)
        done = rig.sink.wait_for(lambda n: n["kind"] == "resolve", 90, "the commune alert resolving")
        assert done.notice["subject"] == "lac-xuan" and done.notice["duration_s"] >= 40
        time.sleep(5)
        assert _kinds(rig.sink) == [("open", "commune", "lac-xuan"), ("resolve", "commune", "lac-xuan")]
        (alert,) = rig.alerts()
        assert alert["scope"] == "commune" and sorted(alert["members"]) == LX
        assert alert["down"] == 4 and alert["total"] == 4


@pytest.mark.parametrize("down_s", [8, pytest.param(30, marks=pytest.mark.slow)])
def test_a_broker_restart_alerts_nobody_and_loses_nothing(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str, down_s: float
) -> None:
    nodes = ["dr-ap-01", "dr-ap-02", "tt-ap-01", "lx-ap-01"]
    with OutageRig.running(rig_dir, nodes, influx=influx_server, database=influx_db) as rig:
        rig.broker.stop()
        time.sleep(down_s)  # the fault's length
        rig.broker.start()
        rig.wait_judging(60)  # the cloud judges again once every board is back ...
        time.sleep(30)  # ... and any board it missed would be alerted within silence + grace (< 30 s)
        assert rig.sink.notices() == []
        assert rig.alerts() == []
        devices = {d["id"]: d for d in rig.cloud.get_json("/api/v1/devices")}
        assert all(devices[n]["gaps"] == 0 and devices[n]["status"] == "online" for n in nodes)


@pytest.mark.parametrize(("flapping_s", "flaps"), [(50, 4), pytest.param(120, 10, marks=pytest.mark.slow)])
def test_a_device_flapping_every_5s_is_one_alert_with_a_count(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str, flapping_s: float, flaps: int
) -> None:
    with OutageRig.running(  # calm for 20 s resolves it (shipped: 60 s), to keep the test short
        rig_dir,
        ["dr-ap-01", "dr-ap-02"],
        influx=influx_server,
        database=influx_db,
        alerting={"flap_quiet_s": 20},
    ) as rig:
        end = time.monotonic() + flapping_s
        while time.monotonic() < end:
            rig.kill("dr-ap-01")  # power flickers: the board dies ...
            time.sleep(2.5)
            rig.start_agent("dr-ap-01")  # ... and boots again
            time.sleep(2.5)
        rig.sink.wait_for(lambda n: n["kind"] == "resolve", 120, "the flapping alert resolving")
        assert _kinds(rig.sink) == [("open", "node", "dr-ap-01"), ("resolve", "node", "dr-ap-01")]
        (alert,) = rig.alerts()
        assert alert["flaps"] >= flaps


def test_maintenance_records_without_sending_and_a_device_still_down_after_it_notifies(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    with OutageRig.running(
        rig_dir, ["dr-ap-01", "dr-ap-02"], influx=influx_server, database=influx_db
    ) as rig:
        now = time.time()
        window = {
            "target_kind": "device",
            "target": "dr-ap-01",
            "starts_at": now - 1,
            "ends_at": now + 40,
            "comment": "thay điểm phát",
        }
        _post(rig, "/api/v1/maintenance", window)
        rig.freeze("dr-ap-01")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not rig.alerts():
            time.sleep(0.5)
        (alert,) = rig.alerts()
        assert alert["suppressed"] is True and alert["notified_at"] is None
        assert rig.sink.notices() == []
        got = rig.sink.wait_for(lambda n: n["subject"] == "dr-ap-01", 30, "after the window")
        assert got.at >= now + 40


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    inbox = _Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, inbox
    ctl.stop()


def test_webhook_and_email_get_exactly_the_expected_messages_and_a_dead_webhook_is_retried(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str, smtp: tuple[int, _Inbox]
) -> None:
    port, inbox = smtp
    sink = WebhookSink(respond=lambda i: 503 if i < 3 else 200)  # down for its first three calls
    email = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "sender": "canh-bao@commune-iot.test",
        "recipients": ["ky-thuat@commune-iot.test"],
    }
    alerting = {"notify": {"email": [email], "webhooks": []}}
    with OutageRig.running(
        rig_dir,
        ["dr-ap-01", "dr-ap-02"],
        influx=influx_server,
        database=influx_db,
        alerting=alerting,
        sink=sink,
    ) as rig:
        rig.kill("dr-ap-01")
        rig.sink.wait_for(lambda n: n["kind"] == "open", 30, "the open notice, after retries")
        assert rig.sink.attempts == 4
        # ingest went on meanwhile: the other agent's heartbeats are current
        dev = {d["id"]: d for d in rig.cloud.get_json("/api/v1/devices")}["dr-ap-02"]
        assert dev["gaps"] == 0
        rig.start_agent("dr-ap-01")
        rig.sink.wait_for(lambda n: n["kind"] == "resolve", 60, "the resolved notice")
        time.sleep(2)
    assert _kinds(sink) == [("open", "node", "dr-ap-01"), ("resolve", "node", "dr-ap-01")]
    assert [m["Subject"] for m in inbox.mails] == [
        "🔴 CẢNH BÁO: Điểm phát Wi-Fi dr-ap-01: mất kết nối với máy chủ",
        "✅ ĐÃ KHÔI PHỤC: Điểm phát Wi-Fi dr-ap-01: mất kết nối với máy chủ",
    ]
    body = inbox.mails[1].get_body()
    assert body is not None and "Sau " in body.get_content()


def _outbox_states(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT state FROM notice_outbox"))}


def _lease_holder(engine: Engine) -> str:
    with engine.connect() as conn:
        q = text("SELECT holder FROM alert_leases WHERE name = 'alert-evaluator'")
        return str(conn.execute(q).scalar() or "")


@pytest.mark.sql("postgresql")
def test_two_cloud_nodes_alert_once_and_the_survivor_takes_over_within_30s_when_the_evaluator_dies(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str, sql_url: str
) -> None:
    """Two ``cloud serve`` nodes on one PostgreSQL and one InfluxDB, on the shared
    subscription: each hears part of the traffic, one holds the evaluator lease. A frozen
    board is announced once. The evaluator node is killed (-9) at a random instant of its
    lease's renewal cycle while that alert is open, and a second board goes silent at once,
    while nobody evaluates. The survivor takes the lease within 30 s, keeps the first alert,
    raises the second (none lost) and announces each recovery once; no notice is sent twice,
    and the board that stays healthy never raises an alert."""
    with OutageRig.running(
        rig_dir,
        ["dr-ap-01", "tt-ap-01", "lx-ap-01"],
        influx=influx_server,
        database=influx_db,
        workers=2,
        sql_url=sql_url,
        # Not the shipped 7 days: Mosquitto keeps dealing a dead worker's share to its persistent
        # session, so the survivor hears half of a healthy board's messages and may alert it
        # falsely (an open bug; docs/scaling.md "While a node is down"). What is tested here is
        # the evaluator's failover: the dead session ends at once, the survivor hears the rest.
        mqtt={"session_expiry_s": 2},
    ) as rig:
        engine = SqlStore.engine_for(rig.sql_url)
        try:
            frozen_at = rig.freeze("dr-ap-01")
            rig.sink.wait_for(lambda n: n["subject"] == "dr-ap-01", 30, "about the frozen agent")
            # Killed after it recorded the delivery: a node killed between sending and
            # recording is the at-least-once case (its successor sends again; documented).
            deadline = time.monotonic() + 10
            while _outbox_states(engine) != {"sent"} and time.monotonic() < deadline:
                time.sleep(0.1)
            holder = _lease_holder(engine)
            leader = rig.clouds[0] if holder.endswith("-1") else rig.clouds[1]
            survivor = next(c for c in rig.clouds if c is not leader)
            time.sleep(random.uniform(0.0, 5.0))  # anywhere in the lease's 5 s renewal cycle
            assert leader.proc is not None
            os.killpg(leader.proc.pid, signal.SIGKILL)  # the process and its MQTT receiver
            killed_at = time.monotonic()
            silent_at = rig.freeze("lx-ap-01")  # goes silent while nobody evaluates
            leader.proc.wait(10)
            while _lease_holder(engine) == holder and time.monotonic() < killed_at + 40:
                time.sleep(0.2)
            takeover_s = time.monotonic() - killed_at
            assert _lease_holder(engine) not in ("", holder), "the survivor did not take the evaluator lease"
            assert takeover_s <= 30.0, f"the survivor took over after {takeover_s:.1f} s"
            lost = rig.sink.wait_for(
                lambda n: n["subject"] == "lx-ap-01", 40, "about the board gone silent without an evaluator"
            )
            deadline = time.monotonic() + 20  # the survivor judges with the alert it inherited
            while not _down(survivor, "da-ron") and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _down(survivor, "da-ron") == 1
            thawed_at = rig.thaw("dr-ap-01")
            rig.thaw("lx-ap-01")
            rig.sink.wait_for(_resolved("dr-ap-01", thawed_at), 60, "resolved by the survivor")
            rig.sink.wait_for(_resolved("lx-ap-01", thawed_at), 60, "resolved by the survivor")
            time.sleep(5)  # an absence cannot be awaited: a duplicate would arrive within this
            alerts = survivor.get_json("/api/v1/alerts")
        finally:
            engine.dispose()
    print(f"\ntakeover {takeover_s:.1f} s after kill -9; alert for the board silent meanwhile "
          f"{lost.at - silent_at:.1f} s after it went silent")  # fmt: skip
    assert sorted(_kinds(rig.sink)) == [
        ("open", "node", "dr-ap-01"),
        ("open", "node", "lx-ap-01"),
        ("resolve", "node", "dr-ap-01"),
        ("resolve", "node", "lx-ap-01"),
    ]
    assert frozen_at < rig.sink.notices()[0].at <= frozen_at + 20.0
    assert lost.notice["kind"] == "open" and lost.at - silent_at <= 30.0 + 20.0
    assert sorted((a["subject"], a["state"]) for a in alerts) == [
        ("dr-ap-01", "resolved"),
        ("lx-ap-01", "resolved"),
    ]


def _down(cloud: CloudProcess, commune: str) -> int:
    summary = cloud.get_json("/api/v1/communes/summary")
    return int(next(c["nodes_down"] for c in summary if c["commune"] == commune))


def _resolved(subject: str, after: float) -> Any:
    return lambda n: n["kind"] == "resolve" and n["subject"] == subject and n["at"] >= after


def _publish(rig: OutageRig, topic: str, payload: bytes) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", rig.broker.port)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_board_with_a_wrong_clock_and_a_backlog_raises_two_warnings_with_figures(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    """A board whose clock is 400 s behind (NTP broken) and whose outbox holds 15-minute-old
    data (uplink too thin) says so in its heartbeat; the technician gets both, with figures."""
    with OutageRig.running(rig_dir, ["tt-ap-01"], influx=influx_server, database=influx_db) as rig:
        health = Health(
            node="tt-ap-02",
            session="c0ffee00",
            seq=1,
            ts=datetime.now(UTC) - timedelta(seconds=400),
            agent_uptime_s=3600.0,
            outbox_depth=1200,
            outbox_oldest_s=900.0,
        )
        _publish(rig, topic_for("tu-tra", "tt-ap-02", Channel.HEALTH), encode(health))
        for problem in ("clock_skew", "outbox_backlog"):
            rig.sink.wait_for(lambda n, p=problem: n.get("problem") == p, 30, problem)
    got = {r.notice["problem"]: r for r in rig.sink.notices(lambda n: n["scope"] == "device")}
    assert got["clock_skew"].notice["detail"].startswith("-40")  # -400 s, give or take the delivery
    assert got["outbox_backlog"].notice["detail"] == "1200 msg, 900 s"
    assert {r.notice["severity"] for r in got.values()} == {"info"}
    assert "lệch đồng hồ (-40" in got["clock_skew"].body["title"]


@pytest.mark.slow
def test_an_ap_that_stops_answering_snmp_is_told_apart_from_an_ap_that_is_gone(
    rig_dir: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    """The real SNMP collector on a board polls two APs that do not answer SNMP: one still
    answers ping (its SNMP agent is off or the community wrong), one answers nothing (an
    address nobody holds). The technician gets a warning for the first and an outage for
    the second, each once."""
    with OutageRig.running(rig_dir, ["tt-ap-01"], influx=influx_server, database=influx_db) as rig:
        node = rig.devices["lx-ap-01"]
        cfg = edge_config(node, rig.broker.url, rig.run_dir / "agents" / "lx-ap-01")
        cfg["collectors"] = [
            {
                "type": "snmp_ap",
                "snmp": {"version": "2c", "community": "public"},
                "interval_s": 5,
                "timeout_s": 0.5,
                "retries": 0,
                "ping_timeout_s": 1,
                "aps": [
                    {"device": "lx-ap-01", "host": "127.0.0.1", "port": free_port()},  # pings, no SNMP
                    {"device": "lx-ap-02", "host": "192.0.2.7"},  # TEST-NET-1: no one answers
                ],
            }
        ]
        agent = AgentProcess.write(rig.run_dir, cfg).start()
        rig.agents["lx-ap-01"] = agent
        snmp_off = rig.sink.wait_for(lambda n: n["subject"] == "lx-ap-01" and n["kind"] == "open", 60)
        gone = rig.sink.wait_for(lambda n: n["subject"] == "lx-ap-02" and n["kind"] == "open", 60)
    assert (snmp_off.notice["problem"], snmp_off.notice["severity"]) == ("snmp_unreachable", "warning")
    assert (gone.notice["problem"], gone.notice["severity"]) == ("unreachable", "critical")
    assert "không trả lời SNMP (vẫn ping được)" in snmp_off.body["title"]
    assert [r.notice["subject"] for r in rig.sink.notices(lambda n: n["kind"] == "open")] in (
        ["lx-ap-01", "lx-ap-02"],
        ["lx-ap-02", "lx-ap-01"],
    )
