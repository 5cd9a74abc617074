"""MQTT topic tree: ``ciot/v1/<commune>/<node>/<channel>[/<suffix>]``.

The commune and the edge node (the board running an agent) are in the topic so that
broker ACLs can confine a board to its own subtree, and so that an operator can
``mosquitto_sub -t 'ciot/v1/tu-tra/#'`` one commune.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

ROOT = "ciot"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"

#: Identifiers of communes, nodes and devices: lowercase, digits, ``-`` and ``_``.
#: MQTT wildcards, ``/`` and spaces can never appear, so an id is always one topic level.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ID = re.compile(ID_PATTERN)
_SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Channel(StrEnum):
    STATUS = "status"  # retained birth ("online") and death ("offline", also the Last Will)
    HEALTH = "health"  # board health, every interval; doubles as the heartbeat
    METRICS = "metrics"  # time series from collectors (AP clients, traffic, stream health)
    EVENT = "event"  # motion events (JSON)
    SNAPSHOT = "snapshot"  # raw JPEG bytes; suffix = event id (or a command id, or tamper-<sha16>)
    CONFIG = "config"  # cloud -> node: desired configuration, retained (wire.twin.DesiredConfig)
    CMD = "cmd"  # cloud -> node: one command (wire.commands.Command)
    REPORTED = "reported"  # node -> cloud: the configuration it runs (wire.twin.ConfigReport)
    REPLY = "reply"  # node -> cloud: a command's acknowledgement or result (wire.commands.CommandReply)


#: Channels whose payload is a JSON envelope with a sequence number.
SEQUENCED = frozenset({Channel.HEALTH, Channel.METRICS, Channel.EVENT})
#: Channels only the cloud publishes (broker ACL): what a node is told to be and to do.
DOWNLINK = frozenset({Channel.CONFIG, Channel.CMD})
#: The fleet's control plane (device twin and commands): handled by the cloud's fleet
#: service, never ingested as telemetry.
CONTROL = frozenset({Channel.CONFIG, Channel.CMD, Channel.REPORTED, Channel.REPLY})


class TopicError(ValueError):
    """A topic outside the tree, or with an identifier that is not allowed."""


@dataclass(frozen=True, slots=True)
class Topic:
    commune: str
    node: str
    channel: Channel
    suffix: str | None = None

    def __str__(self) -> str:
        return topic_for(self.commune, self.node, self.channel, self.suffix)


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def topic_for(commune: str, node: str, channel: Channel, suffix: str | None = None) -> str:
    for name, value in (("commune", commune), ("node", node)):
        if not valid_id(value):
            raise TopicError(f"invalid {name} id {value!r}: must match {ID_PATTERN}")
    base = f"{PREFIX}/{commune}/{node}/{channel.value}"
    if suffix is None:
        return base
    if not _SUFFIX.match(suffix):
        raise TopicError(f"invalid topic suffix {suffix!r}")
    return f"{base}/{suffix}"


def parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) not in (5, 6) or parts[0] != ROOT:
        raise TopicError(f"not a {PREFIX} topic: {topic!r}")
    if parts[1] != VERSION:
        raise TopicError(f"unsupported protocol version {parts[1]!r} in {topic!r}")
    commune, node, chan = parts[2], parts[3], parts[4]
    if not valid_id(commune) or not valid_id(node):
        raise TopicError(f"invalid commune or node id in {topic!r}")
    try:
        channel = Channel(chan)
    except ValueError:
        raise TopicError(f"unknown channel {chan!r} in {topic!r}") from None
    suffix = parts[5] if len(parts) == 6 else None
    if channel is Channel.SNAPSHOT:
        if suffix is None or not _SUFFIX.match(suffix):
            raise TopicError(f"snapshot topic needs an event id suffix: {topic!r}")
    elif suffix is not None:
        raise TopicError(f"unexpected suffix on {chan} topic: {topic!r}")
    return Topic(commune, node, channel, suffix)


def node_filter(commune: str, node: str) -> str:
    """Everything one node publishes."""
    return f"{PREFIX}/{commune}/{node}/#"


#: Everything every node publishes (the cloud's ingest filter).
ALL_NODES = f"{PREFIX}/+/+/#"


def channel_filter(channel: Channel) -> str:
    """One channel of every node, e.g. ``ciot/v1/+/+/reply``."""
    return f"{PREFIX}/+/+/{channel.value}"


#: Liveness of the cloud's ingest workers (Sparkplug's "primary host STATE"): each worker
#: keeps a retained message at ``ciot/host/v1/state/<worker>``, republished live every few
#: seconds. A different root than the nodes' tree, so no node filter ever matches it.
#: Where a board keeps its MQTT keepalive between link checks (edge/keepalive.py): empty QoS 0
#: messages that nobody subscribes to, outside PREFIX so that no ingest worker receives them.
BEAT_PREFIX = f"{ROOT}/beat"


def beat_topic(node: str) -> str:
    return f"{BEAT_PREFIX}/{node}"


HOST_STATE_PREFIX = "ciot/host/v1/state"
HOST_STATE_FILTER = f"{HOST_STATE_PREFIX}/+"
_WORKER = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def host_state_topic(worker: str) -> str:
    if not _WORKER.match(worker):
        raise TopicError(f"invalid ingest worker id {worker!r}")
    return f"{HOST_STATE_PREFIX}/{worker}"


def host_probe_topic(worker: str) -> str:
    """Where a worker sends itself a probe through the broker to see it deliver (one level
    below its state topic: no node's ``HOST_STATE_FILTER`` matches it, the cloud's ACL does)."""
    return f"{host_state_topic(worker)}/probe"


def shared_filter(group: str, topic_filter: str = ALL_NODES) -> str:
    """MQTT v5 shared subscription: the broker hands each message to one member of ``group``."""
    if not valid_id(group):
        raise TopicError(f"invalid share group {group!r}")
    return f"$share/{group}/{topic_filter}"
