"""Test helpers for the edge agent: a recording MQTT subscriber and agent subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from commune_iot.localsvc import free_port
from wire.compression import unpack
from wire.messages import MAX_JSON_BYTES

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    arrived: datetime

    @property
    def channel(self) -> str:
        """The channel of a ``ciot/v1`` topic; "" for others (beats, host state)."""
        parts = self.topic.split("/")
        return parts[4] if len(parts) > 4 and self.topic.startswith("ciot/v1/") else ""

    def json(self) -> dict[str, Any]:
        """The JSON document, unpacked if the board packs its JSON (``broker.compress``)."""
        doc: dict[str, Any] = json.loads(unpack(self.payload, MAX_JSON_BYTES))
        return doc


class Recorder:
    """A persistent-session QoS-1 subscriber: it survives broker restarts without losing
    messages (Mosquitto keeps its session on disk), so gaps seen here are the agent's."""

    def __init__(
        self,
        port: int,
        topic: str = "ciot/#",
        client_id: str = "edge-test-recorder",
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.topic = topic
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.reconnect_delay_set(0.05, 0.3)  # type: ignore[arg-type]  # paho accepts seconds as float
        if auth is not None:
            c.username_pw_set(*auth)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", port, keepalive=5, clean_start=False, properties=props)
        c.loop_start()
        self.client = c
        if not self._subscribed.wait(10):
            raise AssertionError("recorder could not subscribe")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), datetime.now(UTC)))
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float, what: str
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = [(m.topic, m.payload[:120]) for m in self.messages[-5:]]
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {tail}")
                self._cond.wait(left)
            return list(self.messages)

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def status(m: Received) -> dict[str, Any] | None:
    return m.json() if m.channel == "status" else None


def has_status(
    state: str, reason: str, *, retained: bool | None = None, session: str | None = None
) -> Callable[[list[Received]], bool]:
    def check(msgs: list[Received]) -> bool:
        for m in msgs:
            doc = status(m)
            if not doc or doc["state"] != state or doc["reason"] != reason:
                continue
            if (retained is None or m.retain == retained) and (session is None or doc["session"] == session):
                return True
        return False

    return check


def sequenced(msgs: list[Received]) -> list[dict[str, Any]]:
    return [m.json() for m in msgs if m.channel in ("health", "metrics", "event")]


def write_config(path: Path, **settings: Any) -> Path:
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def agent_config(
    tmp: Path,
    broker_url: str,
    *,
    node: str = "dr-cam-01",
    commune: str = "da-ron",
    health_interval_s: float = 0.2,
    collectors: list[dict[str, Any]] | None = None,
    outbox: dict[str, Any] | None = None,
    name: str = "edge.yaml",
    hold_until_cloud: bool = False,
) -> Path:
    """An agent config for a broker with no cloud behind it: unless a test asks, the agent
    does not wait for a cloud ingest worker to announce itself (see edge/presence.py)."""
    box = {"path": str(tmp / "outbox.sqlite3")}
    box.update(outbox or {})
    return write_config(
        tmp / name,
        node=node,
        commune=commune,
        broker={"url": broker_url, "keepalive_s": 5, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        health_interval_s=health_interval_s,
        hold_until_cloud=hold_until_cloud,
        outbox=box,
        collectors=collectors or [],
        log={"level": "INFO"},
    )


class AgentProcess:
    """``python -m edge --config FILE`` as a real process (so tests can SIGKILL it)."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **(env or {}))
        env.pop("CIOT_EDGE_CONFIG", None)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float) -> None:
        """Wait until the agent has logged ``text`` (it must stay alive meanwhile)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.proc.poll() is None, f"agent exited: {self.log()[-2000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in the agent log after {timeout} s"
            time.sleep(0.1)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@dataclass
class RelayedConnection:
    """One TCP connection through :class:`CountingRelay`: bytes each way, and (with
    ``mqtt_packets``) the time and type of each MQTT packet the board sent."""

    up_bytes: int = 0
    down_bytes: int = 0
    up_packets: list[tuple[float, int]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class CountingRelay:
    """TCP relay between a board and its broker that counts what passes, per connection, and
    can cut every connection at once (a dropped uplink, seen by both ends)."""

    def __init__(self, target_port: int, *, mqtt_packets: bool = False) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.mqtt_packets = mqtt_packets  # plain MQTT only: the board's packets are parsed
        self.connections: list[RelayedConnection] = []
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        conn = RelayedConnection(writers=[writer, up_w])
        self.connections.append(conn)

        async def down() -> None:
            while data := await up_r.read(65536):
                conn.down_bytes += len(data)
                writer.write(data)
                await writer.drain()
            writer.close()

        task = asyncio.create_task(down())
        try:
            while True:
                if not self.mqtt_packets:
                    data = await reader.read(65536)
                    if not data:
                        break
                    conn.up_bytes += len(data)
                    up_w.write(data)
                else:
                    packet = await _mqtt_packet(reader)
                    conn.up_bytes += len(packet)
                    conn.up_packets.append((time.monotonic(), packet[0] >> 4))
                    up_w.write(packet)
                await up_w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_w.close()
            task.cancel()

    def packets_between(self, t0: float, t1: float) -> list[tuple[float, int]]:
        """The board's MQTT packets (time, type) sent between ``t0`` and ``t1``, any connection."""
        return sorted((t, k) for c in list(self.connections) for t, k in list(c.up_packets) if t0 <= t < t1)

    def cut(self) -> None:
        """Close every connection both ways."""

        def close_all() -> None:
            for c in self.connections:
                for w in c.writers:
                    w.close()

        self._loop.call_soon_threadsafe(close_all)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _mqtt_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT packet: fixed header, variable-length remaining length, body."""
    head = bytearray(await reader.readexactly(1))
    length, shift = 0, 0
    while True:
        b = (await reader.readexactly(1))[0]
        head.append(b)
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return bytes(head) + await reader.readexactly(length)
