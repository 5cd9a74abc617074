"""The wire contract between edge agents and the cloud: topics and message schemas.

Edge and cloud share this package and nothing else, so a change here is a protocol
change and must keep ``docs/protocol.md`` true.
"""

from wire.messages import (
    SCHEMA_VERSION,
    Box,
    Envelope,
    Health,
    Metrics,
    MotionEvent,
    Point,
    Status,
    WireError,
    decode,
    encode,
)
from wire.topics import Channel, Topic, TopicError, parse_topic, shared_filter, topic_for

__all__ = [
    "SCHEMA_VERSION",
    "Box",
    "Channel",
    "Envelope",
    "Health",
    "Metrics",
    "MotionEvent",
    "Point",
    "Status",
    "Topic",
    "TopicError",
    "WireError",
    "decode",
    "encode",
    "parse_topic",
    "shared_filter",
    "topic_for",
]
