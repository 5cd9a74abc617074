"""Keeping the MQTT keepalive with beats, and checking the link with rarer pings.

Why: on a metered 3G uplink the keepalive is most of a board's bytes (docs/field.md). The
broker needs *a* packet within 1.5 x keepalive to keep the connection and hold back the
Last Will; a PINGREQ also asks for a PINGRESP, which only the board needs, to find a dead
link. An empty QoS 0 PUBLISH through a topic alias is one packet the broker answers with
a bare TCP ACK, where PINGREQ, PINGRESP and the board's ACK are three: 0.44 MB/day less for
an AP board on the 3G profile, 0.30 for a camera board (docs/field.md). The broker's Will
comes exactly as fast (Mosquitto counts any packet), and MQTT asks only that the client sends
*some* control packet within each keepalive (MQTT 5, 3.1.2.10), so this is plain MQTT.

So between link checks a board sends a beat when it sent nothing for a keepalive, and it
sends a PINGREQ only when nothing came from the broker for ``check_link_s``; a PINGREQ
unanswered for a keepalive drops the connection, as paho does. A dead link is then found
within ``check_link_s + keepalive_s`` instead of ``2 x keepalive_s``.

paho 2.x has no hook for this: :class:`BeatingClient` replaces its private
``_check_keepalive`` (the edge extras pin paho to 2.2.x in pyproject.toml; tests/edge/test_edge_beats.py
fails if paho's internals move).
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

#: paho's state of a connection whose CONNACK arrived (private, like what the override reads).
_CONNECTED = mqtt._ConnectionState.MQTT_CS_CONNECTED  # type: ignore[attr-defined]
#: The alias of the beat topic on each connection (aliases live as long as a connection).
BEAT_ALIAS = 1


class BeatingClient(mqtt.Client):
    """paho's client; with :meth:`beat_on` it keeps the keepalive with beats between pings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._beat_topic: str | None = None
        self._check_link_s = 0.0
        self._beat_alias_max = 0
        self._beat_aliased = False

    def beat_on(self, topic: str, check_link_s: float) -> None:
        self._beat_topic = topic
        self._check_link_s = check_link_s

    def connected_with(self, topic_alias_max: int) -> None:
        """A new connection (from on_connect): its broker's alias limit; no alias set yet."""
        self._beat_alias_max = topic_alias_max
        self._beat_aliased = False

    def _check_keepalive(self) -> None:
        keepalive = self._keepalive
        if (
            self._beat_topic is None
            or self._check_link_s <= keepalive
            or self._state != _CONNECTED
            or self._sock is None
        ):
            super()._check_keepalive()
            return
        now = mqtt.time_func()
        with self._msgtime_mutex:
            last_out = self._last_msg_out
            last_in = self._last_bytes_received
        if self._ping_t == 0 and now - last_in >= self._check_link_s:
            super()._check_keepalive()  # a PINGREQ (loop_misc drops the link if unanswered)
        elif now - last_out >= keepalive:
            self._beat()  # nothing went out for a keepalive: the broker must hear something
            with self._msgtime_mutex:  # as paho does for its PINGREQ (its writes do not)
                self._last_msg_out = now

    def _beat(self) -> None:
        assert self._beat_topic is not None
        if self._beat_alias_max >= BEAT_ALIAS:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.TopicAlias = BEAT_ALIAS
            topic = "" if self._beat_aliased else self._beat_topic
            info = self.publish(topic, b"", qos=0, properties=props)
            self._beat_aliased = self._beat_aliased or info.rc is MQTTErrorCode.MQTT_ERR_SUCCESS
        else:  # a broker without topic aliases: the whole topic every time
            self.publish(self._beat_topic, b"", qos=0)
