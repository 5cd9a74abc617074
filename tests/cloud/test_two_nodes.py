"""Two cloud nodes on one shared subscription: what Mosquitto does with the messages of a
member that dies, and a ``cloud serve`` node killed (-9) under load losing nothing.

The evaluator-lease failover of the same two-node setup is in
tests/alerting/test_outage_acceptance.py (it needs agents and a webhook).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cloud_helpers import count, encoded, health, topic
from paho.mqtt.enums import CallbackAPIVersion

from commune_iot.fleet import CloudProcess, cloud_config
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port
from wire import Channel

#: A shared subscriber in a process of its own (so it can be killed), writing "<payload> <dup>"
#: per message; with ``ack`` it acknowledges, without it every message stays in flight.
_MEMBER = """
import sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
port, client_id, ack, out = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "ack", open(sys.argv[4], "a")
def on_message(c, _u, m):
    out.write(f"{m.payload.decode()} {int(m.dup)}\\n")
    out.flush()
    if ack:
        c.ack(m.mid, m.qos)
def on_connect(c, _u, flags, _rc, _p):
    c.subscribe("$share/g/load/#", qos=1)
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True)
c.on_message, c.on_connect = on_message, on_connect
p = Properties(PacketTypes.CONNECT)
p.SessionExpiryInterval, p.ReceiveMaximum = 300, 50
c.connect("127.0.0.1", port, clean_start=False, properties=p)
c.loop_forever()
"""


def _received(path: Path) -> list[tuple[int, bool]]:
    if not path.exists():
        return []
    return [(int(a), b == "1") for a, b in (line.split() for line in path.read_text().splitlines() if line)]


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class _Publisher:
    def __init__(self, broker: Mosquitto) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()

    def send(self, messages: list[tuple[str, bytes]]) -> None:
        infos = [self.c.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_mosquitto_keeps_a_dead_shared_members_share_until_it_returns(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Measured on the broker we ship against (Mosquitto 2.0.11), with persistent sessions:
    the messages in flight to a member that dies are neither lost nor given to the other
    member; they wait in its session, and so does its round-robin share of every message
    published while it is dead. All of it is delivered (the in-flight ones flagged DUP) when
    a client with its id connects again; only the session's expiry would lose it."""
    a_out, b_out = tmp_path / "a.txt", tmp_path / "b.txt"

    def member(client_id: str, ack: str, out: Path) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", _MEMBER, str(mosquitto.port), client_id, ack, str(out)]
        return subprocess.Popen(argv, start_new_session=True)

    a = member("member-a", "no-ack", a_out)  # takes messages, acknowledges none: all in flight
    b = member("member-b", "ack", b_out)
    pub = _Publisher(mosquitto)
    try:
        deadline = time.monotonic() + 20
        while not (_received(a_out) and _received(b_out)):  # probes until both are subscribed
            assert time.monotonic() < deadline, "the members did not subscribe"
            pub.send([("load/x", b"-1")])
            time.sleep(0.1)
        pub.send([("load/x", str(i).encode()) for i in range(200)])
        _wait(lambda: len(_received(a_out)) >= 50, 20, "member A's in-flight window (50) full")
        os.killpg(a.pid, signal.SIGKILL)
        a.wait(10)
        in_flight = {i for i, _ in _received(a_out) if i >= 0}
        pub.send([("load/x", str(i).encode()) for i in range(200, 400)])
        _wait(lambda: sum(i >= 200 for i, _ in _received(b_out)) >= 90, 20, "member B's share after the kill")
        time.sleep(1.0)  # anything more for B would arrive now (an absence cannot be awaited)
        b_after = sorted(i for i, _ in _received(b_out) if i >= 200)
        a = member("member-a", "ack", tmp_path / "a-again.txt")  # the same client id returns
        _wait(
            lambda: (
                len({i for i, _ in _received(b_out)} | {i for i, _ in _received(tmp_path / "a-again.txt")})
                >= 401
            ),
            20,
            "every message delivered once A is back",
        )
        again = _received(tmp_path / "a-again.txt")
    finally:
        pub.close()
        for p in (a, b):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
    b_ids = {i for i, _ in _received(b_out) if i >= 0}
    a_ids = {i for i, _ in again if i >= 0}
    print(
        f"\nMosquitto: {len(in_flight)} in flight to A when killed; of 200 published while A was dead, "
        f"B got {len(b_after)}, A's session kept {sum(i >= 200 for i in a_ids)}; on A's return it got "
        f"{len(a_ids)}, {sum(d for _, d in again)} flagged DUP"
    )
    assert b_ids.isdisjoint(a_ids) and (b_ids | a_ids) >= set(range(400))  # each once, none lost
    assert in_flight <= a_ids and sum(d for _, d in again) >= len(in_flight)  # in flight: back to A, DUP
    assert 60 <= len(b_after) <= 140, b_after  # the dead member kept its round-robin share


@pytest.fixture
def two_nodes(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str, sql_url: str
) -> Iterator[list[CloudProcess]]:
    """Two ``cloud serve`` nodes on one database and one InfluxDB, sharing the subscription."""
    nodes = []
    for i in (1, 2):
        cfg = cloud_config(
            mqtt_url=mosquitto.url,
            influx_url=influx_server.url,
            influx_db=influx_db,
            influx_user=influx_server.username,
            influx_password_file=None,
            state_dir=tmp_path / f"node-{i}",
            http_port=free_port(),
            client_id=f"ciot-cloud-node-{i}",
            sql_url=sql_url,
        )
        cfg["influx"]["password"] = influx_server.password
        cfg["mqtt"]["share_group"] = "nodes"
        nodes.append(CloudProcess.write(tmp_path, cfg, name=f"node-{i}"))
    live = _Presence(mosquitto)
    try:
        for n in nodes:
            n.start()
        _wait(lambda: live.online >= {"ciot-cloud-node-1", "ciot-cloud-node-2"}, 30, "both nodes subscribed")
        yield nodes
    finally:
        live.close()
        for n in nodes:
            n.stop()


class _Presence:
    """Which workers say they are subscribed and live (what the boards listen to)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.online: set[str] = set()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", broker.port)
        self.c.subscribe("ciot/host/v1/state/+", qos=1)
        self.c.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        state = json.loads(m.payload)
        (self.online.add if state["online"] else self.online.discard)(state["worker"])

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


NODES = [("da-ron", "dr-ap-01"), ("tu-tra", "tt-cam-03"), ("lac-xuan", "lx-ap-07"), ("da-ron", "dr-cam-01")]


def _metric(node: CloudProcess, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(node.request("/metrics"), timeout=5) as r:  # a technician's token
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.sql("postgresql")
def test_a_cloud_node_killed_under_load_loses_no_point(
    two_nodes: list[CloudProcess], mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    """About 1,500 messages a second for 6 s into two nodes; one is killed (-9, with its
    receiver) at a random instant and started again 0.5-3 s later, as its supervisor would
    (compose ``restart: unless-stopped``, systemd ``Restart=always``). Every point arrives:
    what it had in flight and what the broker queued for it while dead come back to it under
    its client id; what it had journalled it drains itself; duplicates overwrite."""
    per_node = 2250
    messages = [
        (topic(c, n, Channel.HEALTH), encoded(health(n, seq)))
        for seq in range(1, per_node + 1)
        for c, n in NODES
    ]
    victim = random.choice(two_nodes)
    kill_after = random.uniform(1.0, 5.0)
    down_for = random.uniform(0.5, 3.0)
    pub = _Publisher(mosquitto)
    done = threading.Event()

    def load() -> None:
        started = time.monotonic()
        for i in range(0, len(messages), 150):  # ~1,500 msg/s in 100 ms steps
            pub.send(messages[i : i + 150])
            time.sleep(max(0.0, started + (i + 150) / 1500 - time.monotonic()))
        done.set()

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        time.sleep(kill_after)
        assert victim.proc is not None and not done.is_set()
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        time.sleep(down_for)
        victim.start()
        loader.join(60)
        assert done.is_set()
        deadline = time.monotonic() + 60
        while count(influx_server, influx_db, "health") < len(messages) and time.monotonic() < deadline:
            time.sleep(0.5)
        stored = count(influx_server, influx_db, "health")
        after_restart = _metric(victim, "ciot_messages_received_total")
    finally:
        pub.close()
    print(
        f"\n{len(messages)} messages; node {victim.config_path.stem} killed after {kill_after:.1f} s, "
        f"back {down_for:.1f} s later, then received {after_restart:.0f}; {stored} points stored"
    )
    assert stored == len(messages), f"{len(messages) - stored} points lost"
    assert after_restart > 0  # its session's share came back to it
