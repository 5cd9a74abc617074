"""A clustered MQTT broker on loopback: NATS server nodes with MQTT and JetStream (Debian's
``nats-server``), started like ``localsvc`` starts Mosquitto: own ports, own data dirs.

Why NATS (docs/scaling.md, "When one broker is not enough"): MQTT sessions, their queued
QoS-1 messages and retained messages live in JetStream streams replicated on every node
(``stream_replicas``), so a client can resume its session on any surviving node. What it
does not do (MQTT 3.1.1 only, no shared subscriptions, no Will for the connections of a
node that dies) is measured in ``tests/cluster``.

Used by the cluster tests and ``commune-iot bench cluster``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from commune_iot.localsvc import ServiceError, _need, _Server, free_port

#: MQTT 3.1.1 is the only version nats-server speaks (2.9, and later releases too).
PROTOCOL = "3.1.1"

NATS_CONF = """\
# Written by commune-iot localcluster for a local run.
server_name: {name}
listen: 127.0.0.1:{client_port}
http: 127.0.0.1:{http_port}
max_payload: 1MB
jetstream {{
  store_dir: "{data}"
  max_memory_store: 256MB
  max_file_store: 4GB
}}
cluster {{
  name: {cluster}
  listen: 127.0.0.1:{route_port}
  routes: [{routes}]
}}
mqtt {{
  listen: 127.0.0.1:{port}
  # Sessions, their queued messages and retained messages on every node: any one may die.
  stream_replicas: {replicas}
  # Unacknowledged QoS-1 messages in flight to one subscription (MQTT 3.1.1 has no Receive
  # Maximum): the cloud's ingest acknowledges in group commits of up to 1,024.
  max_ack_pending: {max_ack_pending}
  # A QoS-1 message not acknowledged this long is sent again (DUP): the cloud's commit
  # takes milliseconds, so this only matters for a subscriber that hangs.
  ack_wait: "{ack_wait}"
}}
"""


class NatsNode(_Server):
    """One node of the cluster; its ``port`` is the MQTT listener."""

    def __init__(self, run_dir: Path, name: str, cluster: str = "ciot") -> None:
        super().__init__(name, run_dir, free_port())
        self.binary = _need("nats-server", "nats-server")
        self.cluster = cluster
        self.client_port = free_port()
        self.http_port = free_port()
        self.route_port = free_port()
        self.routes: list[int] = []
        self.replicas = 3
        self.max_ack_pending = 4096
        self.ack_wait = "30s"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.run_dir / f"{self.name}.conf"

    def start(self) -> NatsNode:
        """Start (or restart, on the same data dir) without waiting: a node alone has no quorum."""
        data = self.run_dir / f"{self.name}-data"
        data.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            NATS_CONF.format(
                name=self.name,
                cluster=self.cluster,
                client_port=self.client_port,
                http_port=self.http_port,
                route_port=self.route_port,
                routes=", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes),
                port=self.port,
                data=data,
                replicas=self.replicas,
                max_ack_pending=self.max_ack_pending,
                ack_wait=self.ack_wait,
            )
        )
        self._spawn([self.binary, "-c", str(self.conf_path)])
        return self

    def _ready(self) -> bool:
        """Serving MQTT with JetStream up (``/healthz`` without the per-stream checks: a node that
        rejoins reports some consumers "not current" for minutes while it serves fine)."""
        try:
            url = f"http://127.0.0.1:{self.http_port}/healthz?js-server-only=true"
            with urllib.request.urlopen(url, timeout=1) as r:
                if json.load(r).get("status") != "ok":
                    return False
        except (OSError, urllib.error.URLError, ValueError):
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True
        return False

    def monitor(self, path: str) -> Any:
        """A monitoring endpoint as JSON (``connz``, ``jsz?...``)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/{path}", timeout=5) as r:
            return json.load(r)

    def mqtt_clients(self) -> set[str]:
        """Client ids of the MQTT connections this node holds now."""
        conns = self.monitor("connz?limit=100000&subs=0").get("connections") or []
        return {c.get("mqtt_client", "") for c in conns if c.get("mqtt_client")}


class NatsCluster:
    """``size`` NATS nodes routed to each other, MQTT on each, JetStream replicated on all."""

    def __init__(self, run_dir: Path, size: int = 3) -> None:
        self.run_dir = run_dir
        self.nodes = [NatsNode(run_dir, f"nats-{i + 1}") for i in range(size)]
        for n in self.nodes:
            n.routes = [m.route_port for m in self.nodes if m is not n]
            n.replicas = min(3, size)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    protocol = PROTOCOL

    def start(self, timeout: float = 60.0) -> NatsCluster:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for n in self.nodes:
            n.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every running node serves MQTT sessions (JetStream's streams have leaders)."""
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            if n.running:
                n.wait_ready(max(1.0, deadline - time.monotonic()))
        for n in self.nodes:
            if n.running:
                _await_mqtt_session(n, deadline)

    def revive(self, timeout: float = 120.0) -> None:
        """Start the nodes that died again (same ports, same data) and wait until they serve."""
        for n in self.nodes:
            if not n.running:
                n.start()
        self.wait_ready(timeout)

    def node_of(self, client_id: str) -> NatsNode | None:
        """The node holding ``client_id``'s connection now, if any."""
        for n in self.nodes:
            if n.running and client_id in n.mqtt_clients():
                return n
        return None

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def kill(self) -> None:
        for n in self.nodes:
            n.kill()


def _await_mqtt_session(node: NatsNode, deadline: float) -> None:
    """An MQTT 3.1.1 CONNECT answered with success: the node can load and store sessions."""
    last = "no answer"
    while time.monotonic() < deadline:
        ok, last = _mqtt_connect(node.port)
        if ok:
            return
        time.sleep(0.25)
    raise ServiceError(f"{node.name} does not accept MQTT sessions on 127.0.0.1:{node.port}: {last}")


def _mqtt_connect(port: int) -> tuple[bool, str]:
    """One bare MQTT 3.1.1 CONNECT (clean session) and its CONNACK, by hand: no client library
    state to clean up, and NATS answers it only once JetStream can load the session."""
    client_id = b"ciot-probe-" + str(port).encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4 (3.1.1), clean session, keepalive 10
    body = var + len(client_id).to_bytes(2, "big") + client_id
    packet = bytes([0x10, len(body)]) + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(10)
            s.sendall(packet)
            ack = s.recv(4)
            if len(ack) == 4 and ack[0] == 0x20 and ack[3] == 0:
                with contextlib.suppress(OSError):
                    s.sendall(b"\xe0\x00")  # DISCONNECT
                return True, "ok"
            return False, f"CONNACK {ack.hex() or 'none (connection closed)'}"
    except OSError as exc:
        return False, str(exc)


@contextlib.contextmanager
def nats_cluster(run_dir: Path, size: int = 3) -> Iterator[NatsCluster]:
    cluster = NatsCluster(run_dir, size)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
