"""Simulated boards for load tests: thousands of real MQTT connections in a few processes.

A board here is what the shipped agent is on the wire, without the agent's process: its own
client id (the node id), a new session id per run, a retained birth and a Last Will with one
stamp per connection (``wire.status_order``), a subscription to its ``config`` and ``cmd``
topics and to the cloud's presence (``ciot/host/v1/state/+``, data held until a worker is
live), health every ``health_interval_s`` and collector metrics at the collectors' intervals
(``sim_ap`` 30 s, ``sim_camera`` 10 s), each at a random phase, QoS 1 with an in-flight
window of 20, PINGREQ when nothing was sent for a keepalive. Payloads are the real wire
models, the points those of the simulated collectors (``edge/collectors/sim_*.py``).

Why not one ``python -m edge`` per board: 10,000 agents would need 10,000 processes
(~40 MB each). paho per board in one process costs most of a core at that count; MQTT v5
for this subset (CONNECT with a Will, PUBLISH/PUBACK, SUBSCRIBE, PINGREQ) is a few dozen
lines over asyncio, so ``BoardFleet`` runs about 2,500 boards per process on little CPU.

A board can be killed two ways, as ``kill`` says: ``freeze`` (a power cut or a hung board:
nothing more is sent or read, the TCP connection stays open, the broker gives up after 1.5 x
keepalive and publishes the Will) or ``drop`` (the connection closes: the broker publishes
the Will at once).

Run as ``python -m commune_iot.bench.boards`` with a JSON spec on stdin's first line; then
stdin takes commands (``{"kill": node, "mode": "freeze"}``, ``{"stop": true}``) and stdout
reports JSON lines (``ready``, ``killed``, ``stats``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import random
import resource
import secrets
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from commune_iot import __version__
from edge.collectors.sim_ap import SimAccessPoint, SimAPOptions
from edge.collectors.sim_camera import SimCamera, SimCameraOptions
from wire import HOST_STATE_FILTER, Channel, Health, Metrics, Status, encode, topic_for
from wire.topics import HOST_STATE_PREFIX

KillMode = Literal["freeze", "drop"]
#: The shipped agent's settings (edge/sample.yaml, edge/config.py, the sim collectors).
HEALTH_INTERVAL_S = 10.0
KEEPALIVE_S = 10
AP_INTERVAL_S = 30.0
CAMERA_INTERVAL_S = 10.0
INFLIGHT_WINDOW = 20
#: A worker is live for this many heartbeats after its last announcement (edge/presence.py).
MISSED_HEARTBEATS = 3

_U16 = struct.Struct("!H")
_PINGREQ = b"\xc0\x00"
_HOST_PREFIX = HOST_STATE_PREFIX.encode() + b"/"


# --------------------------------------------------------------------------- MQTT v5 packets
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(b: bytes) -> bytes:
    return _U16.pack(len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str, keepalive: int, will_topic: str, will: bytes) -> bytes:
    """CONNECT, MQTT v5, clean start, Will at QoS 1 retained (as the agent registers it)."""
    flags = 0x02 | 0x04 | 0x08 | 0x20
    head = _str(b"MQTT") + bytes([5, flags]) + _U16.pack(keepalive) + b"\x00"
    payload = _str(client_id.encode()) + b"\x00" + _str(will_topic.encode()) + _str(will)
    return _packet(0x10, head + payload)


def publish_packet(topic: bytes, payload: bytes, pid: int, *, retain: bool = False) -> bytes:
    return _packet(0x32 | int(retain), _str(topic) + _U16.pack(pid) + b"\x00" + payload)


def subscribe_packet(pid: int, filters: list[tuple[str, int]]) -> bytes:
    body = b"".join(_str(f.encode()) + bytes([qos]) for f, qos in filters)
    return _packet(0x82, _U16.pack(pid) + b"\x00" + body)


def puback_packet(pid: int) -> bytes:
    return b"\x40\x02" + _U16.pack(pid)


# --------------------------------------------------------------------------- what a board sends
@dataclass(frozen=True, slots=True)
class BoardSpec:
    node: str
    commune: str
    kind: Literal["ap", "camera"]

    @property
    def metrics_interval_s(self) -> float:
        return CAMERA_INTERVAL_S if self.kind == "camera" else AP_INTERVAL_S


def make_collector(spec: BoardSpec) -> SimAccessPoint | SimCamera:
    """The board's simulated collector (its device is the node, as in the pilot)."""
    if spec.kind == "camera":
        return SimCamera(SimCameraOptions(device=spec.node), node=spec.node)
    return SimAccessPoint(SimAPOptions(device=spec.node), node=spec.node)


def health_payload(
    node: str, session: str, seq: int, now: datetime, uptime_s: float, rnd: random.Random
) -> bytes:
    """A health message with the readings of a healthy board."""
    return encode(
        Health(
            node=node,
            session=session,
            seq=seq,
            ts=now,
            cpu_pct=round(rnd.uniform(3, 40), 1),
            load1=round(rnd.uniform(0.05, 1.5), 2),
            load5=0.4,
            load15=0.3,
            mem_used_pct=round(rnd.uniform(30, 60), 1),
            mem_avail_mb=round(rnd.uniform(300, 600), 1),
            disk_used_pct=41.0,
            disk_free_mb=18_500.0,
            temp_c=round(rnd.uniform(42, 61), 1),
            agent_uptime_s=round(uptime_s, 1),
            board_uptime_s=round(86_400 + uptime_s, 1),
            outbox_depth=0,
            agent_version=__version__,
            config_version=0,
        )
    )


def metrics_payload(
    collector: SimAccessPoint | SimCamera, session: str, seq: int, now: datetime, mono: float
) -> bytes:
    """One reading of the collector, as the agent sends it."""
    c = collector
    points = [c.stream_point(now)] if isinstance(c, SimCamera) else c.sample(now, mono)
    return encode(Metrics(node=c.node, session=session, seq=seq, ts=now, points=points))


# --------------------------------------------------------------------------- one board


@dataclass(slots=True)
class _Out:
    topic: bytes
    payload: bytes
    retain: bool = False


class Board(asyncio.Protocol):
    """One board's connection and message stream (all on the process's event loop)."""

    def __init__(self, fleet: BoardFleet, spec: BoardSpec) -> None:
        self.fleet = fleet
        self.spec = spec
        self.session = secrets.token_hex(8)
        self.seq = 0
        self.stamp = 0.0
        self.transport: asyncio.Transport | None = None
        self.up = False
        self.killed: KillMode | None = None
        self._buf = bytearray()
        self._pid = 0
        self.inflight: dict[int, tuple[_Out, float]] = {}  # packet id -> message, send time
        self.waiting: deque[_Out] = deque()  # over the in-flight window
        self.held: deque[_Out] = deque(maxlen=10_000)  # produced while no worker was live
        self.live: dict[str, float] = {}  # worker -> deadline (monotonic)
        self.ever_live = False  # data held before the first live worker is not a replay
        self.last_out = 0.0
        t = topic_for(spec.commune, spec.node, Channel.STATUS)
        self.status_topic = t.encode()
        self.health_topic = topic_for(spec.commune, spec.node, Channel.HEALTH).encode()
        self.metrics_topic = topic_for(spec.commune, spec.node, Channel.METRICS).encode()
        self.control_topics = [topic_for(spec.commune, spec.node, c) for c in (Channel.CONFIG, Channel.CMD)]
        self.collector = make_collector(spec)
        self.started = time.monotonic()

    # -- messages ------------------------------------------------------------------------
    def _status(self, state: Literal["online", "offline"], reason: Literal["birth", "will"]) -> bytes:
        return encode(
            Status(
                node=self.spec.node,
                session=self.session,
                seq=0,
                ts=datetime.fromtimestamp(self.stamp, UTC),
                state=state,
                reason=reason,
                agent_version=__version__,
                devices=[self.spec.node],
                health_interval_s=HEALTH_INTERVAL_S,
                config_version=0,
            )
        )

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def health(self) -> None:
        uptime = time.monotonic() - self.started
        payload = health_payload(
            self.spec.node, self.session, self._next_seq(), datetime.now(UTC), uptime, self.fleet.rnd
        )
        self.send(_Out(self.health_topic, payload))

    def metrics(self) -> None:
        now = datetime.now(UTC)
        payload = metrics_payload(self.collector, self.session, self._next_seq(), now, time.monotonic())
        self.send(_Out(self.metrics_topic, payload))

    def deliverable(self) -> bool:
        if not self.up:
            return False
        now = time.monotonic()
        return any(d > now for d in self.live.values())

    def send(self, out: _Out) -> None:
        """Hand over a message as the agent's outbox would: held while no worker is live."""
        if self.killed:
            return
        if not self.deliverable():
            self.held.append(out)
            self.fleet.counts["held"] += 1
            return
        if len(self.inflight) >= INFLIGHT_WINDOW:
            self.waiting.append(out)
            return
        self._publish(out)

    def _publish(self, out: _Out) -> None:
        assert self.transport is not None
        self._pid = self._pid % 65535 + 1
        self.inflight[self._pid] = (out, time.monotonic())
        self.transport.write(publish_packet(out.topic, out.payload, self._pid, retain=out.retain))
        self.last_out = time.monotonic()
        self.fleet.counts["published"] += 1

    def _flush(self) -> None:
        while self.waiting and len(self.inflight) < INFLIGHT_WINDOW:
            self._publish(self.waiting.popleft())
        if self.held and self.deliverable():
            # what waited in the outbox goes first (flagged replay once a worker had been live)
            mark = _replayed if self.ever_live else (lambda p: p)
            self.waiting.extendleft(reversed([_Out(o.topic, mark(o.payload)) for o in self.held]))
            self.held.clear()
            self.ever_live = True
            while self.waiting and len(self.inflight) < INFLIGHT_WINDOW:
                self._publish(self.waiting.popleft())

    def keepalive(self) -> None:
        if self.up and not self.killed and time.monotonic() - self.last_out >= KEEPALIVE_S * 0.9:
            assert self.transport is not None
            self.transport.write(_PINGREQ)
            self.last_out = time.monotonic()

    # -- connection ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        will_topic = self.status_topic.decode()
        transport.write(
            connect_packet(self.spec.node, KEEPALIVE_S, will_topic, self._status("offline", "will"))
        )
        self.last_out = time.monotonic()

    def data_received(self, data: bytes) -> None:
        if self.killed == "freeze":
            return
        buf = self._buf
        buf += data
        while len(buf) >= 2:
            # remaining length: up to 4 bytes of varint after the first byte
            length, mult, i = 0, 1, 1
            while True:
                if i >= len(buf):
                    return
                b = buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            end = i + length
            if len(buf) < end:
                return
            first = buf[0]
            body = bytes(buf[i:end])
            del buf[:end]
            self._packet(first, body)

    def _packet(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == 4:  # PUBACK
            sent = self.inflight.pop(_U16.unpack_from(body)[0], None)
            if sent is not None:
                self.fleet.acked(time.monotonic() - sent[1])
            self._flush()
        elif kind == 3:  # PUBLISH from the broker: presence or a control message
            qos = (first >> 1) & 3
            (tlen,) = _U16.unpack_from(body)
            topic = body[2 : 2 + tlen]
            pos = 2 + tlen
            if qos:
                (pid,) = _U16.unpack_from(body, pos)
                pos += 2
                assert self.transport is not None
                self.transport.write(puback_packet(pid))
            plen, mult = 0, 1
            while True:
                b = body[pos]
                pos += 1
                plen += (b & 0x7F) * mult
                mult *= 128
                if not b & 0x80:
                    break
            if topic.startswith(_HOST_PREFIX):
                self._presence(body[pos + plen :], retained=bool(first & 1))
            else:
                self.fleet.counts["control"] += 1
        elif kind == 2:  # CONNACK
            if body[1] != 0:
                self.fleet.counts["refused"] += 1
                self._lost()
                return
            self.up = True
            self.live.clear()
            assert self.transport is not None
            self._pid = self._pid % 65535 + 1
            self.transport.write(subscribe_packet(self._pid, [(t, 1) for t in self.control_topics]))
            self._publish(_Out(self.status_topic, self._status("online", "birth"), retain=True))
            self._pid = self._pid % 65535 + 1
            self.transport.write(subscribe_packet(self._pid, [(HOST_STATE_FILTER, 1)]))
            self.fleet.connected(self)
        elif kind == 14:  # DISCONNECT from the broker (session taken over, ...)
            self._lost()

    def _presence(self, payload: bytes, *, retained: bool) -> None:
        try:
            state = json.loads(payload)
        except ValueError:
            return
        worker = str(state.get("worker", ""))
        if not state.get("online"):
            self.live.pop(worker, None)
        elif not retained:  # a retained online may be stale (edge/presence.py)
            was = self.deliverable()
            self.live[worker] = time.monotonic() + MISSED_HEARTBEATS * float(state.get("heartbeat_s", 5.0))
            if not was:
                self.ever_live = self.ever_live or not self.held
                self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def _lost(self) -> None:
        if self.transport is None:
            return  # handled already (a DISCONNECT from the broker, then the socket closing)
        transport, self.transport = self.transport, None
        self.up = False
        self.live.clear()
        if not transport.is_closing():
            transport.abort()
        # unacknowledged messages go out again after the reconnect (the outbox keeps them)
        pending = [o for o, _t in sorted(self.inflight.values(), key=lambda x: x[1])] + list(self.waiting)
        self.waiting.clear()
        self.inflight.clear()
        self.held.extend(o for o in pending if not o.retain)
        if not self.killed:
            self.fleet.reconnect(self)

    def kill(self, mode: KillMode) -> None:
        self.killed = mode
        if self.transport is None:
            return
        if mode == "drop":
            self.transport.abort()
        else:
            self.transport.pause_reading()  # and never write again: the socket stays open, silent


def _replayed(payload: bytes) -> bytes:
    """The agent flags data that waited in its outbox across a hold as a replay."""
    return payload.replace(b'"replay":false', b'"replay":true', 1)


# --------------------------------------------------------------------------- one process's boards
@dataclass
class BoardFleet:
    """The boards of one process on one event loop, with one timer heap for all of them."""

    host: str
    port: int
    specs: list[BoardSpec]
    ramp_per_s: float = 500.0
    seed: int = 1
    rnd: random.Random = field(init=False)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("published", "acked", "held", "control", "refused", "reconnects", "connected"), 0
        )
    )
    boards: dict[str, Board] = field(default_factory=dict)
    _heap: list[tuple[float, int, str, str]] = field(default_factory=list)
    _tick: int = 0
    _ack_ms: list[float] = field(default_factory=list)
    _ever_up: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rnd = random.Random(self.seed)

    def _at(self, when: float, node: str, what: str) -> None:
        self._tick += 1
        heapq.heappush(self._heap, (when, self._tick, node, what))

    def acked(self, seconds: float) -> None:
        self.counts["acked"] += 1
        if len(self._ack_ms) < 100_000:
            self._ack_ms.append(seconds * 1000)

    def connected(self, board: Board) -> None:
        self.counts["connected"] += 1
        self._ever_up.add(board.spec.node)

    def reconnect(self, board: Board) -> None:
        """The connection was lost or refused: try again later, as the agent's back-off does."""
        self.counts["reconnects"] += 1
        self._at(time.monotonic() + self.rnd.uniform(1.0, 10.0), board.spec.node, "connect")

    async def _connect(self, board: Board) -> None:
        loop = asyncio.get_running_loop()
        board.stamp = max(time.time(), board.stamp + 0.001)  # later than every earlier stamp
        try:
            await loop.create_connection(lambda: board, self.host, self.port)
        except OSError:
            self.reconnect(board)

    async def run(self, commands: asyncio.Queue[dict[str, Any]], report: Any) -> None:
        now = time.monotonic()
        for i, spec in enumerate(self.specs):
            self.boards[spec.node] = Board(self, spec)
            self._at(now + i / self.ramp_per_s, spec.node, "connect")
            first = now + i / self.ramp_per_s + 2.0
            self._at(first + self.rnd.uniform(0, HEALTH_INTERVAL_S), spec.node, "health")
            self._at(first + self.rnd.uniform(0, spec.metrics_interval_s), spec.node, "metrics")
            self._at(first + self.rnd.uniform(0, KEEPALIVE_S), spec.node, "ping")
        ready_said = False
        stats_at = now
        while True:
            now = time.monotonic()
            heap = self._heap
            while heap and heap[0][0] <= now:
                when, _, node, what = heapq.heappop(heap)
                b = self.boards[node]
                if b.killed:
                    continue
                if what == "connect":
                    self._tasks.add(task := asyncio.create_task(self._connect(b)))
                    task.add_done_callback(self._tasks.discard)
                elif what == "health":
                    b.health()
                    self._at(when + HEALTH_INTERVAL_S, node, what)
                elif what == "metrics":
                    b.metrics()
                    self._at(when + b.spec.metrics_interval_s, node, what)
                elif what == "ping":
                    b.keepalive()
                    self._at(when + 1.0, node, what)
            if not ready_said and len(self._ever_up) == len(self.specs):
                report({"ready": len(self._ever_up)})
                ready_said = True
            if now - stats_at >= 5.0:
                stats_at = now
                report({"stats": self.stats()})
            while not commands.empty():
                cmd = commands.get_nowait()
                if "kill" in cmd:
                    b = self.boards[cmd["kill"]]
                    b.kill(cmd.get("mode", "freeze"))
                    report({"killed": b.spec.node, "mode": b.killed, "at": time.time()})
                elif cmd.get("stop"):
                    report({"stats": self.stats()})
                    for b in self.boards.values():
                        if b.transport is not None:
                            b.killed = "drop"
                            b.transport.abort()
                    return
            delay = heap[0][0] - time.monotonic() if heap else 0.05
            await asyncio.sleep(min(0.05, max(0.0, delay)))

    def stats(self) -> dict[str, Any]:
        acks = sorted(self._ack_ms)
        self._ack_ms.clear()
        up = sum(1 for b in self.boards.values() if b.up)
        deliverable = sum(1 for b in self.boards.values() if b.deliverable())
        return {
            **self.counts,
            "up": up,
            "deliverable": deliverable,
            "ack_ms_p50": acks[len(acks) // 2] if acks else None,
            "ack_ms_p95": acks[int(len(acks) * 0.95)] if acks else None,
            "acks_sampled": len(acks),
        }


def raise_fd_limit(want: int) -> int:
    """Raise this process's open-file limit to ``want`` (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard < want and os.geteuid() == 0:
        hard = want
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _child(spec: dict[str, Any]) -> None:
    boards = [BoardSpec(**b) for b in spec["boards"]]
    raise_fd_limit(len(boards) + 256)
    fleet = BoardFleet(spec["host"], spec["port"], boards, ramp_per_s=spec["ramp_per_s"], seed=spec["seed"])
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def report(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(commands.put_nowait, {"stop": True})  # the parent is gone

    threading.Thread(target=read_stdin, name="commands", daemon=True).start()
    await fleet.run(commands, report)


def main() -> int:
    spec = json.loads(sys.stdin.readline())
    asyncio.run(_child(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
