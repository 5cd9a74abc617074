"""The ``update`` command on MQTT, until the fleet's command queue sends it (see below).

It publishes the command as the control plane defines it (``wire.control.Command``: id,
name, arguments, who issued it, when it expires) on the board's ``cmd`` topic, QoS 1, and
returns once the broker acknowledged it. It does not track replies: the rollout judges a
board by what its births report. When the command channel of the device twin work is
merged, bind ``Rollouts`` to its queue instead (signed commands, replies, audit), and
remove this module.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.config import MqttConfig
from wire.release import UpdateArgs
from wire.topics import Channel, topic_for

ISSUER = "rollout"


def command_payload(node: str, args: UpdateArgs, ttl_s: float, *, issued_by: str = ISSUER) -> bytes:
    now = datetime.now(UTC)
    return json.dumps(
        {
            "v": 1,
            "node": node,
            "id": secrets.token_urlsafe(12),
            "name": "update",
            "args": args.model_dump(mode="json", exclude_none=True),
            "issued_by": issued_by,
            "issued_at": now.isoformat().replace("+00:00", "Z"),
            "expires_at": (now + timedelta(seconds=ttl_s)).isoformat().replace("+00:00", "Z"),
        }
    ).encode()


class MqttUpdateSender:
    """A small publishing-only MQTT session of the cloud (its broker user may write ``cmd``)."""

    def __init__(self, cfg: MqttConfig, client_id: str) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password_value() or None)
        self.client = c
        self._started = False

    def _publish(self, topic: str, payload: bytes) -> None:
        with self._lock:
            if not self._started:
                self.client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
                self.client.loop_start()
                self._started = True
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        if not info.is_published():
            raise ConnectionError(f"the broker did not acknowledge the command on {topic}")

    async def __call__(self, node: str, commune: str, args: UpdateArgs, ttl_s: float) -> None:
        topic = topic_for(commune, node, Channel.CMD)
        await asyncio.to_thread(self._publish, topic, command_payload(node, args, ttl_s))

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
