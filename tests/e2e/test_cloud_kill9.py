"""The cloud killed (SIGKILL) at random instants under load leaves exact gap counts (issue 14).

59 boards' worth of traffic (each with its own session and sequence, health and metrics
alternately, a message per board every 0.5 s) goes through a real Mosquitto to
``commune-iot cloud serve``; the cloud process and its MQTT receiver are killed with SIGKILL
at random instants and restarted each time. Afterwards every board must show 0 gaps (its
counters were committed with the data they count, and a redelivered message is not counted
twice), and every point must be in InfluxDB exactly once.

The default run kills 5 times (about a minute); ``CIOT_KILLS`` or the slow variant more.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from spine_helpers import wait_until
from support import influx_query

from commune_iot.fleet import CloudProcess, cloud_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port
from wire import Channel, Health, Metrics, Point, encode, host_state_topic, topic_for

NODES = sorted({(d["commune"], d["node"]) for d in load_devices()})
PERIOD_S = 0.5  # each board sends a message every PERIOD_S


class Fleet:
    """A light publisher standing in for 59 agents: real sessions and seqs, QoS 1."""

    def __init__(self, port: int) -> None:
        self.sessions = {node: secrets.token_hex(8) for _, node in NODES}
        self.sent: Counter[tuple[str, str]] = Counter()  # (node, measurement) -> points
        self.seq: Counter[str] = Counter()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._stop = threading.Event()
        self._infos: list[mqtt.MQTTMessageInfo] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            for commune, node in NODES:
                self.seq[node] += 1
                seq, now = self.seq[node], datetime.now(UTC)
                env = {"node": node, "session": self.sessions[node], "seq": seq, "ts": now}
                if seq % 2:
                    msg: Health | Metrics = Health(**env, agent_uptime_s=seq * PERIOD_S, outbox_depth=0)
                    channel, measurement = Channel.HEALTH, "health"
                else:
                    point = Point(measurement="ap", device=node, fields={"reachable": True, "clients": seq})
                    msg = Metrics(**env, points=[point])
                    channel, measurement = Channel.METRICS, "ap"
                self._infos.append(self.client.publish(topic_for(commune, node, channel), encode(msg), qos=1))
                self.sent[node, measurement] += 1
            self._stop.wait(max(0.0, PERIOD_S - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for info in self._infos:
            info.wait_for_publish(30)  # the broker has every message (queued for the cloud)
        self.client.loop_stop()
        self.client.disconnect()


def _await_host_online(port: int, client_id: str) -> None:
    """Until the cloud announces, live, that its subscription is granted (nothing is lost after)."""
    live = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda _c, _u, m: live.set() if not m.retain and b'"online":true' in m.payload else None
    c.on_connect = lambda cl, *_a: cl.subscribe(host_state_topic(client_id), qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert live.wait(60), "the cloud never announced itself live"
    finally:
        c.loop_stop()
        c.disconnect()


def _kill9(cloud: CloudProcess) -> None:
    """SIGKILL to the cloud and its MQTT receiver child at once (a crash, an OOM kill)."""
    assert cloud.proc is not None
    os.killpg(cloud.proc.pid, signal.SIGKILL)
    cloud.proc.wait(10)


def _run(tmp_path: Path, broker: Mosquitto, influx: InfluxDB, db: str, kills: int) -> None:
    client_id = "ciot-cloud-kill9"
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx.url,
        influx_db=db,
        influx_user=influx.username,
        influx_password_file=None,
        state_dir=tmp_path / "cloud",
        http_port=free_port(),
        client_id=client_id,
    )
    cfg["influx"]["password"] = influx.password
    cloud = CloudProcess.write(tmp_path, cfg).start(wait=60)
    fleet = Fleet(broker.port)
    rng = random.Random()
    try:
        _await_host_online(broker.port, client_id)
        fleet.start()
        for _ in range(kills):
            time.sleep(rng.uniform(0.5, 6.0))  # a random instant: mid-commit, mid-fsync, mid-write ...
            _kill9(cloud)
            cloud.start(wait=60)
        time.sleep(rng.uniform(0.5, 3.0))
        fleet.stop()

        def counts() -> Counter[tuple[str, str]]:
            got: Counter[tuple[str, str]] = Counter()
            for m, tag, field in (("health", "node", "seq"), ("ap", "device", "clients")):
                for s in influx_query(influx, db, f'SELECT COUNT("{field}") FROM "{m}" GROUP BY "{tag}"'):
                    got[s["tags"][tag], m] = int(s["values"][0][1])
            return got

        wait_until(lambda: counts() == fleet.sent, 90, "every point in InfluxDB")
        devices = {d["node"]: d for d in cloud.get_json("/api/v1/devices")}

        def counted() -> bool:
            nonlocal devices
            devices = {d["node"]: d for d in cloud.get_json("/api/v1/devices")}
            return all(devices[node]["last_seq"] == fleet.seq[node] for _, node in NODES)

        wait_until(counted, 30, "every board's last message counted")
    finally:
        cloud.stop()
    gaps = {node: devices[node]["gaps"] for _, node in NODES if devices[node]["gaps"]}
    assert not gaps, f"false gaps after {kills} kills: {gaps}"
    assert all(devices[node]["session"] == fleet.sessions[node] for _, node in NODES)
    assert counts_once(influx, db, fleet), "a point stored twice"


def counts_once(influx: InfluxDB, db: str, fleet: Fleet) -> bool:
    """Each board's health points carry every seq it sent as health, once."""
    for s in influx_query(influx, db, 'SELECT "seq" FROM "health" GROUP BY "node"'):
        seqs = [int(v[1]) for v in s["values"]]
        if sorted(seqs) != list(range(1, fleet.seq[s["tags"]["node"]] + 1, 2)):
            return False
    return True


def test_five_kill9s_under_load_leave_no_false_gap_and_every_point_once(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    _run(tmp_path, mosquitto, influx_server, influx_db, kills=int(os.environ.get("CIOT_KILLS", "5")))


@pytest.mark.slow
def test_twenty_kill9s_under_load_leave_no_false_gap_and_every_point_once(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    _run(tmp_path, mosquitto, influx_server, influx_db, kills=20)
