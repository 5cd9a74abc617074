"""What a NATS cluster (Debian's nats-server 2.9) does with the MQTT our protocol relies on.

Measured facts behind docs/scaling.md ("When one broker is not enough"): each test turns red
when the broker changes the behaviour the design works around (MQTT 5, shared subscriptions,
a Will when a node dies), or breaks one it relies on (sessions and retained messages that
survive losing a node).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from commune_iot.localcluster import NatsCluster

STATUS_FILTER = "ciot/v1/+/+/status"


@dataclass
class Client:
    """A paho MQTT 3.1.1 client on one node, with what it received."""

    client: mqtt.Client
    got: list[mqtt.MQTTMessage] = field(default_factory=list)
    connack: list[tuple[str, bool]] = field(default_factory=list)  # (reason, session present)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, pred: Any, timeout: float, what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self), timeout), f"no {what} within {timeout:.0f} s"

    def topics(self) -> list[str]:
        with self.cond:
            return [m.topic for m in self.got]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def connect(
    port: int,
    client_id: str,
    *,
    v5: bool = False,
    clean: bool = True,
    will: tuple[str, bytes] | None = None,
    manual_ack: bool = False,
    keepalive: int = 10,
) -> Client:
    if v5:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean,
            manual_ack=manual_ack,
        )
    out = Client(c)

    def on_message(_c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        with out.cond:
            out.got.append(m)
            out.cond.notify_all()

    def on_connect(_c: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        with out.cond:
            out.connack.append((str(reason), bool(flags.session_present)))
            out.cond.notify_all()

    c.on_message = on_message
    c.on_connect = on_connect
    c.reconnect_delay_set(0.2, 1)
    if will is not None:
        c.will_set(will[0], will[1], qos=1, retain=True)
    c.connect_async("127.0.0.1", port, keepalive=keepalive)
    c.loop_start()
    out.wait(lambda o: o.connack, 30, f"CONNACK for {client_id}")
    return out


def subscribe(c: Client, topic: str, qos: int = 1) -> list[Any]:
    granted: list[Any] = []
    done = threading.Event()

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        granted.extend(reasons)
        done.set()

    c.client.on_subscribe = on_subscribe
    c.client.subscribe(topic, qos=qos)
    assert done.wait(30), f"no SUBACK for {topic}"
    return granted


def wills_of(c: Client) -> list[tuple[str, bytes]]:
    with c.cond:
        return [(m.topic, bytes(m.payload)) for m in c.got if bytes(m.payload) == b"will"]


def test_nats_speaks_mqtt_311_only_has_no_shared_subscriptions_and_refuses_dots(cluster: NatsCluster) -> None:
    a, b, _ = cluster.nodes
    v5 = connect(a.port, "v5-board", v5=True)
    assert v5.connack[0][0] == "Unsupported protocol version"  # our default (paho, MQTT 5) is refused
    v5.close()

    shared = connect(a.port, "shared-worker")
    granted = subscribe(shared, "$share/ingest/ciot/v1/+/+/#")
    assert not granted[0].is_failure  # granted ...
    plain = connect(b.port, "plain-worker")
    subscribe(plain, "ciot/v1/+/+/#")
    board = connect(b.port, "board")
    board.client.publish("ciot/v1/tu-tra/tt-ap-01/health", b"{}", qos=1).wait_for_publish(30)
    plain.wait(lambda o: o.got, 30, "message on the plain subscription")
    assert shared.topics() == []  # ... but delivers nothing: "$share/..." is an ordinary topic here

    # A '.' is NATS's subject separator: the broker closes the connection of whoever uses it.
    board.client.publish("ciot/host/v1/state/cloud.example-ingest", b"{}", qos=1)
    board.wait(lambda o: len(o.connack) >= 2, 30, "reconnect after the broker dropped the client")
    for c in (shared, plain, board):
        c.close()


def test_losing_a_node_keeps_sessions_and_retained_statuses_but_not_the_wills_of_its_clients(
    cluster: NatsCluster,
) -> None:
    doomed, spare, other = cluster.nodes
    # A cloud-like subscriber: persistent session, acknowledges only what it stored.
    worker = connect(doomed.port, "ingest-worker", clean=False, manual_ack=True)
    subscribe(worker, "ciot/v1/+/+/#")
    watcher = connect(spare.port, "watcher")
    subscribe(watcher, STATUS_FILTER)
    # A board on the node that dies, with a Will and a retained birth; another on a node that lives.
    victim = connect(doomed.port, "dr-ap-01", will=("ciot/v1/da-ron/dr-ap-01/status", b"will"), keepalive=4)
    victim.client.publish("ciot/v1/da-ron/dr-ap-01/status", b"birth", qos=1, retain=True).wait_for_publish(30)
    survivor_will = ("ciot/v1/tu-tra/tt-ap-01/status", b"will")
    survivor = connect(other.port, "tt-ap-01", will=survivor_will, keepalive=4)

    publisher = connect(other.port, "publisher")
    for i in range(20):
        publisher.client.publish("ciot/v1/lac-xuan/lx-ap-01/health", str(i).encode(), qos=1)
    worker.wait(lambda o: len(o.topics()) >= 20 + 1, 60, "20 messages and the retained birth")
    stored = {b"birth"} | {str(i).encode() for i in range(10)}
    with worker.cond:  # the birth and the first ten are stored; the other ten stay in flight
        for m in worker.got:
            if bytes(m.payload) in stored:
                worker.client.ack(m.mid, m.qos)

    victim.client.loop_stop()  # its node dies under it; it does not get to reconnect here
    worker.client.loop_stop()
    killed_at = time.monotonic()
    doomed.kill()
    topic = "ciot/v1/lac-xuan/lx-ap-01/health"
    for info in [publisher.client.publish(topic, str(i).encode(), qos=1) for i in range(20, 30)]:
        info.wait_for_publish(60)  # the surviving nodes took them (once they elected leaders)

    resumed = connect(spare.port, "ingest-worker", clean=False)
    assert resumed.connack[-1] == ("Success", True), "the session did not survive its node"
    want = {str(i) for i in range(10, 30)}
    resumed.wait(lambda o: want <= {bytes(m.payload).decode() for m in o.got}, 90, "in-flight and later ones")

    # A board's subscriptions are QoS 0 on NATS (edge/link.py): a QoS-1 one needs a new
    # replicated consumer, which the cluster often fails to make while a node is down.
    fresh = connect(other.port, "late-reader")
    assert not subscribe(fresh, "ciot/v1/da-ron/+/status", qos=0)[0].is_failure
    fresh.wait(lambda o: o.got, 30, "the retained birth")
    assert bytes(fresh.got[0].payload) == b"birth"  # retained messages are replicated

    survivor.client.loop_stop()
    sock = survivor.client.socket()
    assert sock is not None
    sock.close()  # the board's process dies: its node sends its Will
    watcher.wait(lambda o: (survivor_will[0], b"will") in wills_of(o), 30, "the survivor's Will")
    # The node that died took its clients' Wills with it: nobody sends the victim's, ever. The
    # broker would have sent it 1.5 x keepalive after the last packet: give it that, and more.
    time.sleep(max(0.0, killed_at + 4 * 1.5 + 3 - time.monotonic()))
    assert ("ciot/v1/da-ron/dr-ap-01/status", b"will") not in wills_of(watcher)
    for c in (watcher, resumed, fresh, publisher):
        c.close()
