"""The MQTT half of an ingest worker, in a process of its own.

paho's receive path costs about as much CPU per message as validating and journaling it,
and in one process both share the GIL. So the worker process (``IngestWorker``, which
validates, journals, writes SQL and drains to InfluxDB) starts this receiver as a child:
it owns the MQTT session, hands the raw messages over in batches (``cloud.ingest.framing``)
and acknowledges a batch only when the worker reports it durable.

Why it is built this way:

* One worker subscribes exclusively; several share an MQTT v5 shared subscription
  (``$share/<group>/ciot/v1/+/+/#``) to split the traffic (see ``MqttConfig.share_group``
  for why one worker does not use a shared one). ``clean_start=False`` with a Session
  Expiry Interval and a stable client id so the broker queues a worker's share while it
  restarts.
* Manual acknowledgement: a QoS-1 message is acknowledged only after the worker said its
  batch is durable. If the worker dies, the pipe reaches end-of-file and this process
  exits at once without acknowledging anything more: the broker redelivers the rest to
  the next session; writes are idempotent, so a duplicate is harmless.
* paho's network thread only appends to a deque; a forwarder thread frames what has
  accumulated (a batch every millisecond or so) and an acker thread turns the worker's
  ``DURABLE`` replies into PUBACKs. While the worker fsyncs one batch the next is
  already on its way (pipelining), and the worker commits several at once.
* Presence (Sparkplug's primary-host STATE): once the broker grants the subscription,
  the receiver announces the worker on ``ciot/host/v1/state/<client_id>`` and repeats it
  every ``host_heartbeat_s``; its Last Will and its orderly stop say offline.
* Retained status messages are not delivered to shared subscriptions, so the receiver
  also holds a plain subscription to ``.../status`` when it shares one.
* A broker can stay connected and deliver nothing (a cluster electing a new leader after
  losing a node, a wedged process): every second the receiver sends itself a probe through
  the broker (``host_probe_topic``); when none has come back for ``stall_s`` it reports the
  worker disconnected, so alerting does not take the broker's silence for the boards'.
* On a clustered broker (``mqtt.urls``) paho reconnects to the next node after a loss and
  resumes the session the cluster kept (``cloud.brokers``). The receiver also knocks on
  every node every few seconds: when one stops answering, its boards are on their way to
  the others (a CONNECT may wait seconds while the cluster elects leaders), so the worker
  reports a short interruption and alerting gives every board its settle time again.

Run as ``python -m cloud.ingest.receiver FD`` with the MQTT settings as JSON on stdin.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from cloud.brokers import Brokers, make_client
from cloud.config import MqttConfig
from cloud.ingest import framing
from wire import HostState, encode_host_state, host_state_topic
from wire.topics import ALL_NODES, PREFIX, Channel, host_probe_topic, shared_filter

log = logging.getLogger(__name__)

STATUS_FILTER = f"{PREFIX}/+/+/{Channel.STATUS.value}"
_PUBACK_CMD = 0x40
_PUBACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id
#: How long the forwarder lets a batch grow after its first message. Short: the worker
#: batches again on its side while it is busy, so this only saves frames when idle-ish.
_GATHER_S = 0.001
#: Seconds between the probes a receiver sends itself through the broker.
PROBE_EVERY_S = 1.0
#: Seconds before a refused subscription is asked for again.
RESUBSCRIBE_S = 2.0
#: How often the nodes of a cluster are knocked on, and how long the interruption reported
#: for a node that stopped answering lasts (longer than the alert evaluator's tick).
WATCH_EVERY_S = 2.0
NODE_LOST_HOLD_S = 3.0


class Receiver:
    def __init__(self, cfg: MqttConfig, client_id: str, conn: Connection) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self.conn = conn
        self.host_topic = host_state_topic(client_id)
        self.probe_topic = host_probe_topic(client_id)
        self._probe_topic_bytes = self.probe_topic.encode()
        self._probe_token = secrets.token_hex(4)  # tells our probes from an earlier process's
        self._probes: dict[bytes, float] = {}  # payload -> monotonic time sent
        self._probe_seq = 0
        self._heard_at = 0.0  # sending time of the newest probe that came back
        self._stalled = False
        self._link_lock = threading.Lock()  # connected/stalled reports go out in order
        # (mid, qos, generation, topic bytes, payload): appended by paho's thread only
        self._queue: collections.deque[tuple[int, int, int, bytes, bytes | bytearray]] = collections.deque()
        self._wake = threading.Event()
        self._send_lock = threading.Lock()
        self._generation = 0
        self._leaving = False
        self._seq = 0
        self._unacked: collections.deque[tuple[int, int, list[int]]] = collections.deque()  # seq, gen, mids
        self._unacked_lock = threading.Lock()
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._all_acked = threading.Event()
        self._end_seq = -1
        self._client = self._make_client()

    # ------------------------------------------------------------------ MQTT
    def _make_client(self) -> mqtt.Client:
        c = make_client(self.cfg, self.client_id, manual_ack=True)
        self._brokers = Brokers(self.cfg, c)
        if self.cfg.username:
            c.username_pw_set(self.cfg.username, self.cfg.password_value() or None)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.will_set(self.host_topic, self._host_state(online=False), qos=1, retain=True)
        c.reconnect_delay_set(1, 5)  # nodes hold their data until we are back: come back quickly
        c.max_queued_messages_set(0)  # paho's queue of outgoing packets (our PUBACKs) must not limit us
        return c

    def _host_state(self, *, online: bool) -> bytes:
        state = HostState(
            worker=self.client_id, online=online, ts=datetime.now(UTC), heartbeat_s=self.cfg.host_heartbeat_s
        )
        return encode_host_state(state)

    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: ReasonCode, _props: Any) -> None:
        if reason.is_failure:
            self._state(False, f"broker refused connection: {reason}")
            log.error("MQTT broker %s refused %s: %s", self._brokers.url, self.client_id, reason)
            return
        self._generation += 1
        self._subscribe()
        with self._link_lock:
            self._stalled = False
            self._state(True, "")
        log.info(
            "connected to MQTT broker %s as %s (session present: %s)",
            self._brokers.url,
            self.client_id,
            flags.session_present,
            extra={"client_id": self.client_id},
        )

    def _on_subscribe(
        self, client: mqtt.Client, _ud: Any, _mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            # An ACL that forbids it, or a NATS cluster that cannot make the subscription's
            # consumer while a node is down: we hear nothing, so we are not connected; try again.
            error = f"broker refused the subscription: {[str(r) for r in reasons]}"
            with self._link_lock:
                self._state(False, error)
            log.error(
                "MQTT broker %s refused our subscription: %s; trying again in %.0f s",
                self._brokers.url,
                error,
                RESUBSCRIBE_S,
            )
            timer = threading.Timer(RESUBSCRIBE_S, self._subscribe, args=(self._generation,))
            timer.daemon = True
            timer.start()
            return
        with self._link_lock:
            self._state(True, "")
        self._heard_at = time.monotonic()  # the probes' clock starts now
        self._subscribed.set()
        self._announce()

    def _subscribe(self, generation: int | None = None) -> None:
        """Every subscription of this worker (again, on the connection ``generation`` if given)."""
        if generation is not None and generation != self._generation:
            return  # that connection is gone; the new one subscribed itself
        if self.cfg.share_group:
            subs = [(shared_filter(self.cfg.share_group, ALL_NODES), 1), (STATUS_FILTER, 1)]
        else:
            subs = [(ALL_NODES, 1)]
        self._client.subscribe([*subs, (self.probe_topic, 1)])

    def _announce(self) -> None:
        """Tell nodes we are subscribed and live (retained, so late joiners see who exists)."""
        self._client.publish(self.host_topic, self._host_state(online=True), qos=1, retain=True)

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            if self._subscribed.wait(1.0) and not self._leaving:
                self._announce()
                self._stop.wait(self.cfg.host_heartbeat_s)

    def _probe_loop(self) -> None:
        """Send a probe every second; report a stall when none came back for ``stall_s``."""
        while not self._stop.wait(PROBE_EVERY_S):
            if not self._subscribed.is_set() or self._leaving:
                continue
            now = time.monotonic()
            self._probe_seq += 1
            payload = f"{self._probe_token}:{self._probe_seq}".encode()
            with self._link_lock:  # paho's thread pops the ones that come back
                self._probes = {p: t for p, t in self._probes.items() if now - t < 120} | {payload: now}
            self._client.publish(self.probe_topic, payload, qos=1)
            lag = now - self._heard_at
            with self._link_lock:
                if lag < self.cfg.stall_s or self._stalled or not self._subscribed.is_set():
                    continue
                self._stalled = True
                why = (
                    f"broker {self._brokers.url} connected but delivering nothing for {lag:.0f} s "
                    "(a cluster electing a leader, or a wedged broker)"
                )
                self._state(False, why)
            log.warning("%s; alerting pauses until it delivers", why, extra={"stalled_s": round(lag, 1)})

    def _watch_loop(self) -> None:
        """Notice a node of the cluster that stops answering (see the module's docstring)."""
        nodes = self.cfg.endpoints
        if len(nodes) < 2:
            return
        down = {u for u in nodes if not _answers(u)}
        while not self._stop.wait(WATCH_EVERY_S):
            now_down = {u for u in nodes if not _answers(u)}
            lost, down = now_down - down, now_down
            if not lost or not self._subscribed.is_set() or self._leaving:
                continue
            why = f"broker node {', '.join(sorted(lost))} stopped answering; its boards move to the others"
            log.warning("%s: alerting gives every board its settle time", why)
            with self._link_lock:
                self._state(False, why)
            self._stop.wait(NODE_LOST_HOLD_S)
            with self._link_lock:
                if self._subscribed.is_set() and not self._stalled:
                    self._state(True, "")

    def _probe_back(self, payload: bytes) -> None:
        with self._link_lock:
            sent = self._probes.pop(payload, None)
            if sent is None:  # an earlier process's, or a duplicate
                return
            self._heard_at = max(self._heard_at, sent)
            if not self._stalled or not self._subscribed.is_set():
                return
            self._stalled = False
            self._state(True, "")
        log.info("broker %s delivers again", self._brokers.url)

    def _on_disconnect(
        self, _client: mqtt.Client, _ud: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._subscribed.clear()
        lost = self._brokers.url
        self._brokers.advance()
        if not self._leaving:
            with self._link_lock:
                self._state(False, f"disconnected: {reason}")
            log.warning(
                "lost MQTT broker %s (%s); reconnecting%s, unacknowledged messages will be redelivered",
                lost,
                reason,
                f" to {self._brokers.url}" if self._brokers.url != lost else "",
            )

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        # paho's network thread: do almost nothing (its own work is the throughput ceiling)
        if msg._topic == self._probe_topic_bytes:
            self._client.ack(msg.mid, msg.qos)
            self._probe_back(bytes(msg.payload))
            return
        if self._leaving:
            return  # not acked: redelivered to our session after the restart
        self._queue.append((msg.mid, msg.qos, self._generation, msg._topic, msg.payload))
        if not self._wake.is_set():
            self._wake.set()

    # ------------------------------------------------------------------ pipe
    def _send(self, frame: bytes) -> None:
        try:
            with self._send_lock:
                self.conn.send_bytes(frame)
        except OSError:
            self._die("the ingest worker went away")

    def _state(self, connected: bool, text: str) -> None:
        self._send(framing.encode_state(connected, text))

    def _die(self, why: str) -> None:
        """The worker is gone: acknowledge nothing more, let the broker redeliver."""
        log.error("%s; MQTT receiver %s exits without acknowledging more", why, self.client_id)
        os._exit(3)

    def _forward_loop(self) -> None:
        queue, wake = self._queue, self._wake
        pop = queue.popleft
        while True:
            if not self._stop.is_set():
                wake.wait()
            stopping = self._stop.is_set()  # _leaving is set first: nothing is added after this
            if not stopping:
                time.sleep(_GATHER_S)
            wake.clear()
            n = len(queue)
            if not n:
                if stopping:
                    break
                continue
            items = [pop() for _ in range(n)]
            self._seq += 1
            mids = [m for m, q, _g, _t, _p in items if q == 1]
            with self._unacked_lock:
                # one generation per batch: a reconnect in the middle splits nothing we ack wrongly
                self._unacked.append((self._seq, items[-1][2] if items[0][2] == items[-1][2] else -1, mids))
            frame = framing.encode_batch(self._seq, time.time(), [i[3] for i in items], [i[4] for i in items])
            self._send(frame)
        with self._unacked_lock:
            self._end_seq = self._seq
            if not self._unacked:
                self._all_acked.set()
        self._send(framing.encode_seq(framing.END, self._seq))

    def _ack_loop(self) -> None:
        while True:
            try:
                frame = self.conn.recv_bytes()
            except (EOFError, OSError):
                self._die("the ingest worker closed the pipe")
                return
            kind = frame[0]
            if kind == framing.DURABLE:
                self._ack_up_to(framing.decode_seq(frame))
            elif kind == framing.STOP:
                self._leaving = True
                self._stop.set()
                self._wake.set()

    def _ack_up_to(self, seq: int) -> None:
        """PUBACK every message of the batches up to ``seq`` from this connection.

        ``client.ack()`` per message (a queued packet, a wake-up of paho's thread and a send()
        each) was a large share of ingest CPU, so the PUBACKs go out as one write through
        paho's own packet queue; the bytes are exactly what ``ack()`` would send."""
        gen = self._generation
        mids: list[int] = []
        with self._unacked_lock:  # held until queued, so a stop cannot disconnect before these
            while self._unacked and self._unacked[0][0] <= seq:
                _seq, bgen, bmids = self._unacked.popleft()
                if bgen == gen:
                    mids.extend(bmids)
            if mids:
                queue = getattr(self._client, "_packet_queue", None)
                if queue is None:  # paho changed: the slow, public way
                    for mid in mids:
                        self._client.ack(mid, 1)
                else:
                    queue(_PUBACK_CMD, b"".join([_PUBACK.pack(_PUBACK_CMD, 2, mid) for mid in mids]), 0, 0)
            if self._end_seq >= 0 and seq >= self._end_seq:
                self._all_acked.set()

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        forwarder = threading.Thread(target=self._forward_loop, name="forward", daemon=True)
        forwarder.start()
        threading.Thread(target=self._heartbeat_loop, name="presence", daemon=True).start()
        threading.Thread(target=self._probe_loop, name="probe", daemon=True).start()
        threading.Thread(target=self._watch_loop, name="watch", daemon=True).start()
        acker = threading.Thread(target=self._ack_loop, name="ack", daemon=True)
        acker.start()
        self._brokers.connect_async(receive_maximum=self.cfg.receive_maximum)
        self._client.loop_start()
        self._stop.wait()
        # Orderly stop: the last batch goes to the worker, which commits it and says so.
        forwarder.join()
        self._all_acked.wait(30.0)
        if self._client.is_connected():
            # Nodes hold their data from now on instead of sending it into our queue alone.
            info = self._client.publish(self.host_topic, self._host_state(online=False), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2.0)
        self._client.disconnect()  # queued after the last PUBACKs, so those go out first
        self._client.loop_stop()
        return 0


def _answers(url: str) -> bool:
    """Whether a broker accepts TCP connections (a dead node refuses or times out)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 1883), timeout=1.0):
            return True
    except OSError:
        return False


def main() -> int:
    from wire import logs

    logs.setup()
    # Our lifecycle is the worker's: a Ctrl-C or SIGTERM to the process group reaches the
    # worker, which stops us in order (commit, ack, announce offline, disconnect).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = json.loads(sys.stdin.read())
    conn = Connection(int(sys.argv[1]))
    cfg = MqttConfig.model_validate(settings["mqtt"])
    return Receiver(cfg, settings["client_id"], conn).run()


if __name__ == "__main__":
    sys.exit(main())
