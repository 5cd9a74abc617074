"""The MQTT session of one agent: connect, birth, Last Will, reconnect, orderly goodbye.

paho-mqtt is driven from the agent's asyncio loop through its socket callbacks (the
pattern of paho's ``loop_asyncio`` example): reads, writes, keepalive and every paho
callback run on the loop thread, so the outbox's SQLite connection never crosses threads.
Only the blocking TCP/TLS connect runs in a worker thread, while the loop leaves the
client alone.

Reconnects use :func:`edge.backoff.backoff_delay` (capped, jittered) instead of paho's
jitter-free delay, so a commune's boards do not hammer the broker in lock-step after an
outage. With a clustered broker (``broker.urls``) every failed or lost connection moves to
the next node; the delay grows only once every node was tried, so a board whose node died
is on another within about a second.

Messages paho already holds unacknowledged are re-sent by paho itself after a reconnect
(``_messages_reconnect_reset_out``), to whichever broker; callers must not hand them over
twice.

The Last Will and the birth of one connection carry one stamp, taken before the connect
attempt: the cloud orders status messages by it, so a Will ends exactly the connection it
belongs to whatever arrives in between (docs/protocol.md, "Status").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import zlib
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.backoff import backoff_delay
from edge.config import BrokerConfig
from edge.keepalive import BeatingClient
from edge.outbox import messages
from edge.presence import Presence
from wire import HOST_STATE_FILTER

log = logging.getLogger(__name__)


class LinkListener(Protocol):
    """What the link tells its owner; every call arrives on the event loop."""

    def link_up(self, epoch: int) -> None: ...

    def link_down(self) -> None: ...

    def link_ack(self, mid: int, ok: bool, reason: str) -> None: ...

    def waiting(self) -> int:
        """Messages waiting in the outbox, for log lines."""
        ...


class ResumingContext(ssl.SSLContext):
    """A TLS client context that offers each broker the session ticket of its last connection.

    Why: a board on 3G reconnects after every stall (144 times a day on the bench's bad link);
    a resumed TLS 1.3 handshake skips the server's certificate and its signature: about 1.1 KB
    less from the broker per reconnect with the provisioned CA (tests/edge/test_edge_secure_broker.py),
    and no certificate check on the board's CPU. A broker
    that restarted (or another node of a cluster) does not know the ticket and simply makes
    a full handshake, checked as always.
    """

    sessions: dict[str, ssl.SSLSession]

    @classmethod
    def for_broker(cls, ca_file: Path | None) -> ResumingContext:
        ctx = cls(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
        ctx.sessions = {}
        if ca_file is not None:
            ctx.load_verify_locations(str(ca_file))
        else:
            ctx.load_default_certs()
        return ctx

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        host = kwargs.get("server_hostname")
        if kwargs.get("session") is None and host in self.sessions:
            kwargs["session"] = self.sessions[host]
        return super().wrap_socket(sock, *args, **kwargs)

    def keep(self, sock: Any) -> None:
        """After a CONNACK (the server's tickets came before it): remember this broker's ticket."""
        session = getattr(sock, "session", None)
        host = getattr(sock, "server_hostname", None)
        if session is not None and host and session.has_ticket:
            self.sessions[host] = session


class State(Enum):
    DOWN = "down"
    CONNECTING = "connecting"  # worker thread inside paho's reconnect(): hands off the client
    HANDSHAKE = "handshake"  # CONNECT sent, waiting for CONNACK
    UP = "up"
    CLOSED = "closed"


def describe_error(exc: BaseException) -> str:
    """A connect failure in words a technician can act on."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name ({exc.strerror}); check DNS and the uplink"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected ({exc.verify_message}); check broker.ca_file"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}); check mqtts:// port and broker.ca_file"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "connection timed out; the uplink may be down or a firewall drops the port"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused; the broker is not listening on that port"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class Link:
    """One MQTT connection (v5, or 3.1.1 for brokers without v5) with retained birth/death on
    ``status_topic``, to one broker or, in turn, to the nodes of a cluster."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        client_id: str,
        status_topic: str,
        birth: Callable[[float], bytes],
        will: Callable[[float], bytes],
        stamp: Callable[[], float],
        listener: LinkListener,
        extra_inflight: int = 20,
        inflight_window: int = 20,
        hold_until_cloud: bool = False,
        subscriptions: Sequence[str] = (),
        on_message: Callable[[str, bytes], None] | None = None,
        birth_acked: Callable[[], None] | None = None,
        beat_topic: str | None = None,
    ) -> None:
        self.broker = broker
        #: Called (on the loop) when the broker acknowledged a birth: the proof of health the
        #: update launcher waits for (edge/update).
        self._birth_acked = birth_acked
        self._birth_mid: int | None = None
        self.status_topic = status_topic
        #: Topics addressed to this node (its desired configuration and commands), handed to
        #: ``on_message`` on the event loop; subscribed again on every connection.
        self.subscriptions = list(subscriptions)
        self._on_control = on_message
        self._birth = birth
        self._will = will
        self._stamp = stamp
        #: Stamp of the current (or last attempted) connection: its Will's and its birth's.
        self.conn_stamp = 0.0
        self._listener = listener
        self.state = State.DOWN
        #: Incremented on every accepted connection; 0 means "never connected".
        self.epoch = 0
        #: Incremented on every lost connection and failed attempt (see :meth:`stamp`).
        self.generation = 0
        self._first_attempt_open = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._writer_fd: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._down = asyncio.Event()
        self._wake = asyncio.Event()
        self._closing = False
        self._refused: str | None = None
        self._ack_waiters: dict[int, asyncio.Future[bool]] = {}
        #: Which cloud ingest workers are live; data waits in the outbox while none is.
        self.presence = Presence(enabled=hold_until_cloud)
        self._deliverable = False

        #: The brokers to try in turn; a board starts at one given by its client id, so the
        #: boards of a fleet spread over a cluster's nodes instead of all crowding the first.
        self._urls = broker.endpoints
        self._at = zlib.crc32(client_id.encode()) % len(self._urls)
        self._v5 = broker.protocol == "5"
        #: QoS of this board's subscriptions (its config, commands, the cloud's presence). A clean
        #: session keeps nothing across a disconnection, so over TCP QoS 1 adds nothing that the
        #: cloud's resending (commands) and retaining (config) do not; on NATS (3.1.1) each QoS-1
        #: subscription is a replicated JetStream consumer, slow to make and refused while a node
        #: is down (docs/scaling.md), a QoS-0 one is not. Mosquitto (v5) keeps QoS 1.
        self._sub_qos = 1 if self._v5 else 0
        client = BeatingClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
        )
        client.connect_timeout = broker.connect_timeout_s
        client.max_inflight_messages_set(inflight_window + extra_inflight)
        client.max_queued_messages_set(0)
        if self._v5 and beat_topic is not None and broker.check_link_s is not None:
            client.beat_on(beat_topic, broker.check_link_s)  # edge/keepalive.py
        if broker.tls:
            client.tls_set_context(ResumingContext.for_broker(broker.ca_file))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        self.client = client
        self._aim()

    # -- public API (event loop only) --------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state is State.UP

    @property
    def deliverable(self) -> bool:
        """Connected, and (when holding for the cloud) an ingest worker is live."""
        return self.state is State.UP and self.presence.online()

    def stamp(self) -> int:
        """Link stamp for a message produced now: the current generation while data flows (or
        while the very first connect is still under way), -1 while it is held. A message sent
        later under a different generation waited across a disconnection or a hold: a replay."""
        if self.deliverable or self._first_attempt_open:
            return self.generation
        return -1

    def _check_presence(self) -> None:
        """Note a change of deliverability: a hold starts a new generation (what waits is a
        replay); the end of a hold wakes the courier."""
        now = self.deliverable
        if now == self._deliverable:
            return
        self._deliverable = now
        if now:
            self._first_attempt_open = False
            if self.presence.enabled:
                log.info(
                    "cloud ingest live (%s); sending %s waiting in outbox",
                    ", ".join(self.presence.workers()),
                    messages(self._listener.waiting()),
                    extra={"broker": self.url},
                )
            self._listener.link_up(self.epoch)
        elif self.state is State.UP:
            self.generation += 1
            self._first_attempt_open = False
            log.warning(
                "no cloud ingest worker is live on %s; holding data in the outbox (%s waiting)",
                self.url,
                messages(self._listener.waiting()),
                extra={"broker": self.url},
            )

    @property
    def url(self) -> str:
        """The broker this link is connected or connecting to."""
        return self._urls[self._at]

    def _aim(self) -> None:
        """Point paho at the current broker (before each connect attempt)."""
        parts = urlsplit(self.url)
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        keepalive = self.broker.keepalive_s
        if self._v5:
            self.client.connect_async(parts.hostname or "", port, keepalive=keepalive, clean_start=True)
        else:  # a clean session is 3.1.1's default; its CONNECT has no clean_start
            self.client.connect_async(parts.hostname or "", port, keepalive=keepalive)

    def _next_broker(self) -> None:
        """After a failed or lost connection: the next node of the cluster (none to change for one)."""
        self._at = (self._at + 1) % len(self._urls)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._connector(), name="mqtt-connector"),
            asyncio.create_task(self._misc(), name="mqtt-keepalive"),
        ]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Hand one QoS-1 message to paho; return its mid (PUBACK comes via ``link_ack``)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"paho refused to queue a message on {topic}: {mqtt.error_string(info.rc)}")
        return int(info.mid)

    def rebirth(self) -> None:
        """Publish the birth again (retained) when what it says changed, e.g. an update's outcome."""
        if self.state is State.UP:
            self._birth_mid = self.publish(self.status_topic, self._birth(self.conn_stamp), retain=True)

    async def close(self, offline: bytes, within_s: float = 3.0) -> bool:
        """Publish the retained ``offline`` status, wait (bounded) for its PUBACK, disconnect.

        Returns True when the broker acknowledged the goodbye.
        """
        self._closing = True
        self._wake.set()
        acked = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        if self.state is State.UP:
            mid = self.publish(self.status_topic, offline, retain=True)
            fut: asyncio.Future[bool] = loop.create_future()
            self._ack_waiters[mid] = fut
            with contextlib.suppress(TimeoutError):
                acked = await asyncio.wait_for(fut, max(0.1, deadline - loop.time()))
            self._down.clear()
            self.client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._down.wait(), max(0.1, deadline - loop.time()))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._unregister()
        self.state = State.CLOSED
        return acked

    # -- connection management ---------------------------------------------------------

    async def _connector(self) -> None:
        attempt = 0
        while not self._closing:
            self._refused = None
            self.conn_stamp = self._stamp()
            self.client.will_set(self.status_topic, self._will(self.conn_stamp), qos=1, retain=True)
            self.client.username_pw_set(self.broker.username, self.broker.secret())
            self._aim()
            self.state = State.CONNECTING
            self._up_since_connect = False
            self._down.clear()
            try:
                await asyncio.to_thread(self.client.reconnect)
            except Exception as exc:
                self.state = State.DOWN
                self._lost()
                self._unregister()
                delay = self._delay(attempt)
                attempt += 1
                url = self.url
                self._next_broker()
                log.warning(
                    "broker unreachable at %s: %s; retry in %.1f s%s; %s waiting in outbox",
                    url,
                    describe_error(exc),
                    delay,
                    self._next_words(url),
                    messages(self._listener.waiting()),
                    extra={"broker": url, "retry_in_s": round(delay, 1), "attempt": attempt},
                )
                await self._sleep(delay)
                continue
            self.state = State.HANDSHAKE  # the loop may read the socket again
            await self._down.wait()
            refused = self._take_refusal()
            if self._closing_requested():
                return
            if self._up_since_connect:  # a real session, not a refused or dropped handshake
                attempt = 0
            delay = self._delay(attempt)
            attempt += 1
            url = self.url
            self._next_broker()
            if refused is not None:
                log.error(
                    "broker at %s refused the connection: %s; retry in %.1f s%s; %s waiting in outbox",
                    url,
                    refused,
                    delay,
                    self._next_words(url),
                    messages(self._listener.waiting()),
                    extra={"broker": url, "retry_in_s": round(delay, 1)},
                )
            else:
                log.warning(
                    "connection to broker at %s lost: %s; retry in %.1f s%s; %s waiting in outbox",
                    url,
                    self._down_reason,
                    delay,
                    self._next_words(url),
                    messages(self._listener.waiting()),
                    extra={"broker": url, "retry_in_s": round(delay, 1)},
                )
            await self._sleep(delay)

    _down_reason = "unknown"
    _up_since_connect = False

    def _lost(self) -> None:
        self.generation += 1
        self._first_attempt_open = False

    def _take_refusal(self) -> str | None:
        refused, self._refused = self._refused, None
        return refused

    def _closing_requested(self) -> bool:
        return self._closing

    def _delay(self, attempt: int) -> float:
        """Backoff by rounds over the brokers: the next node of a cluster is tried at once
        (jittered below ``reconnect_min_s``), the delay doubles once all of them failed."""
        rounds = attempt // len(self._urls)
        return backoff_delay(rounds, min_s=self.broker.reconnect_min_s, max_s=self.broker.reconnect_max_s)

    def _next_words(self, failed: str) -> str:
        return f" at {self.url}" if self.url != failed else ""

    async def _sleep(self, delay: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _misc(self) -> None:
        """paho's housekeeping (keepalive PINGREQ, dead-connection detection), once a second."""
        while True:
            await asyncio.sleep(1.0)
            if self.state in (State.UP, State.HANDSHAKE):
                self.client.loop_misc()
            self._check_presence()  # a worker's liveness may have run out

    # -- paho callbacks (event loop, except socket open/register during connect) ----------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:
            self._refused = _refusal(reason)
            return
        if not self.presence.enabled:
            self._first_attempt_open = False
        self.epoch += 1
        self.state = State.UP
        self._up_since_connect = True
        self.client.connected_with(int(getattr(props, "TopicAliasMaximum", 0) or 0))
        resumed = bool(getattr(client.socket(), "session_reused", False))
        ctx = client._ssl_context  # paho keeps the context it was given
        if isinstance(ctx, ResumingContext):
            ctx.keep(client.socket())
        # Subscribe before the birth: the broker handles one connection's packets in order,
        # so when the cloud sees the birth and sends a queued command, the board listens.
        if self.subscriptions:
            client.subscribe([(t, self._sub_qos) for t in self.subscriptions])
        self._birth_mid = client.publish(
            self.status_topic, self._birth(self.conn_stamp), qos=1, retain=True
        ).mid
        self.presence.reset()
        if self.presence.enabled:
            client.subscribe(HOST_STATE_FILTER, qos=self._sub_qos)
        log.info(
            "connected to broker at %s; %s waiting in outbox%s%s",
            self.url,
            messages(self._listener.waiting()),
            " (sent once a cloud ingest worker is live)" if self.presence.enabled else " will be sent",
            "; TLS session resumed" if resumed else "",
            extra={"broker": self.url, "epoch": self.epoch, "tls_resumed": resumed},
        )
        self._check_presence()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if mqtt.topic_matches_sub(HOST_STATE_FILTER, msg.topic):
            self.presence.update(bytes(msg.payload), retained=bool(msg.retain))
            self._check_presence()
        elif msg.topic in self.subscriptions and self._on_control is not None:
            try:
                self._on_control(msg.topic, bytes(msg.payload))
            except Exception:  # a bad message must never take the link down
                log.exception("could not handle a message on %s", msg.topic)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        was_up = self.state is State.UP
        self._lost()
        self._down_reason = _disconnect_reason(reason)
        if self.state is not State.CLOSED:
            self.state = State.DOWN
        self._deliverable = False
        self._unregister()
        self._down.set()
        for fut in self._ack_waiters.values():
            if not fut.done():
                fut.set_result(False)
        self._ack_waiters.clear()
        if was_up:
            self._listener.link_down()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties | None
    ) -> None:
        ok = not reason.is_failure
        if mid == self._birth_mid:
            self._birth_mid = None
            if ok and self._birth_acked is not None:
                self._birth_acked()
        waiter = self._ack_waiters.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ok)
        self._listener.link_ack(mid, ok, str(reason))

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call(self._register, sock.fileno())

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call(self._unregister)

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call(self._want_write, sock.fileno())

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call(self._no_write)

    # -- socket plumbing (event loop) ------------------------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the loop; paho calls some socket hooks from the connect worker."""
        assert self._loop is not None
        if _on_loop(self._loop):
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _register(self, fd: int) -> None:
        assert self._loop is not None
        self._unregister()
        self._fd = fd
        self._loop.add_reader(fd, self._readable)

    def _unregister(self) -> None:
        if self._loop is None:
            return
        self._no_write()
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None

    def _want_write(self, fd: int) -> None:
        assert self._loop is not None
        if self._fd == fd and self._writer_fd is None:
            self._writer_fd = fd
            self._loop.add_writer(fd, self._writable)

    def _no_write(self) -> None:
        if self._loop is not None and self._writer_fd is not None:
            self._loop.remove_writer(self._writer_fd)
            self._writer_fd = None

    def _readable(self) -> None:
        if self.state is State.CONNECTING:
            return
        self.client.loop_read()
        # TLS may have decrypted more than one record: the selector will not report bytes
        # already inside the SSL object, so read again while any are pending.
        sock = self.client.socket()
        pending = getattr(sock, "pending", None)
        if self._loop is not None and callable(pending) and pending() > 0:
            self._loop.call_soon(self._readable)

    def _writable(self) -> None:
        if self.state is not State.CONNECTING:
            self.client.loop_write()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _refusal(reason: ReasonCode) -> str:
    text = str(reason)
    hints = {
        "Not authorized": "check broker.username and the password",
        "Bad user name or password": "check broker.username and the password",
        "Client identifier not valid": "check broker.client_id",
        "Server unavailable": "the broker is overloaded or restarting",
        "Banned": "the broker has banned this client",
    }
    hint = hints.get(text)
    return f"{text} [reason code {reason.value}]" + (f"; {hint}" if hint else "")


def _disconnect_reason(reason: ReasonCode) -> str:
    text = str(reason)
    if text in ("Unspecified error", "Normal disconnection"):
        words = "the broker closed the connection or the network dropped it"
    elif text == "Keep alive timeout":
        words = "no answer from the broker within the keepalive; the uplink may be down"
    elif text == "Session taken over":
        words = "another client connected with the same client id (two boards with one node id?)"
    else:
        words = text
    return f"{words} [reason code {reason.value}]"
