"""An independent MQTT subscriber that notes when each message of one node arrived.

It sees what the broker delivered, whatever the cloud did with it, so a test can compare
what the cloud says (presence, outage spans) with what really crossed the broker.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Heard:
    at: float  # epoch seconds, when this subscriber received it
    channel: str
    body: dict[str, Any] | None  # None for a snapshot
    retained: bool

    @property
    def from_node(self) -> bool:
        """Sent by the node itself (a Will is the broker's word, and a retained copy is old)."""
        return not self.retained and not (self.body is not None and self.body.get("reason") == "will")


class NodeTraffic:
    def __init__(self, port: int, commune: str, node: str) -> None:
        self.heard: list[Heard] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"traffic-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(f"ciot/v1/{commune}/{node}/#", qos=1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("traffic observer could not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        channel = msg.topic.split("/")[4]
        body = None if channel == "snapshot" else json.loads(msg.payload)
        with self._cond:
            self.heard.append(Heard(time.time(), channel, body, bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[Heard], bool], timeout: float, what: str) -> Heard:
        """The first message (already heard or to come) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for h in self.heard:
                    if pred(h):
                        return h
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout:.0f} s")
                self._cond.wait(left)

    def last_before(self, t: float) -> Heard:
        with self._cond:
            return [h for h in self.heard if h.from_node and h.at <= t][-1]

    def first_after(self, t: float) -> Heard:
        with self._cond:
            return next(h for h in self.heard if h.from_node and h.at > t)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def is_status(state: str, reason: str, after: float = 0.0) -> Callable[[Heard], bool]:
    return lambda h: (
        h.channel == "status"
        and h.body is not None
        and (h.body["state"], h.body["reason"]) == (state, reason)
        and h.at > after
    )
