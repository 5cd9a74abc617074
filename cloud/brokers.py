"""The cloud's MQTT sessions (ingest receiver, fleet service) on one broker or a cluster's nodes.

Both keep a persistent session under a stable client id, in the MQTT version the broker
speaks (``mqtt.protocol``): v5 with a Session Expiry Interval, or 3.1.1 with a non-clean
session for a broker without v5 (a NATS cluster). With ``mqtt.urls``, paho's own reconnect
loop is pointed at the next node whenever a connection fails or is lost; the session, kept
by the cluster, is resumed there (docs/scaling.md).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.config import MqttConfig


def make_client(cfg: MqttConfig, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client for a persistent session in the configured MQTT version."""
    if cfg.protocol == "5":
        return mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
        )
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=False,
        manual_ack=manual_ack,
    )


class Brokers:
    """Which broker a paho client (running paho's own network loop) connects to, and the next."""

    def __init__(self, cfg: MqttConfig, client: mqtt.Client) -> None:
        self.cfg = cfg
        self._urls = cfg.endpoints
        self._at = 0
        self._client = client
        client.on_connect_fail = self._connect_failed

    @property
    def url(self) -> str:
        return self._urls[self._at]

    def _host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 1883

    def connect_async(self, *, receive_maximum: int | None = None) -> None:
        """Start the persistent session on the first broker (call ``loop_start`` next)."""
        host, port = self._host_port()
        if self.cfg.protocol != "5":  # 3.1.1: the broker's own limits stand in for these properties
            self._client.connect_async(host, port, keepalive=self.cfg.keepalive_s)
            return
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        self._client.connect_async(
            host, port, keepalive=self.cfg.keepalive_s, clean_start=False, properties=props
        )

    def publish_properties(self, props: Properties) -> Properties | None:
        """``props`` for a PUBLISH in MQTT 5; none in 3.1.1, which has no properties."""
        return props if self.cfg.protocol == "5" else None

    def advance(self) -> None:
        """After a lost or failed connection: paho's next reconnect goes to the next node."""
        if len(self._urls) == 1:
            return
        self._at = (self._at + 1) % len(self._urls)
        # paho's host/port setters refuse while the lost connection's state lingers (only the
        # reconnect clears it), and reconnect() reads exactly these two attributes.
        self._client._host, self._client._port = self._host_port()

    def _connect_failed(self, _client: mqtt.Client, _userdata: object) -> None:
        self.advance()
