"""The wire contract between edge agents and the cloud: topics and message schemas.

Edge and cloud share this package and, for object labels, the ``labels`` package (a model
and the policy that turns its detections into an event's labels: no protocol). A change here
is a protocol change and must keep ``docs/protocol.md`` true.
"""

from wire.messages import (
    SCHEMA_VERSION,
    Box,
    Envelope,
    Health,
    HostState,
    Label,
    Metrics,
    MotionEvent,
    Point,
    Status,
    WireError,
    decode,
    decode_host_state,
    encode,
    encode_host_state,
)
from wire.topics import (
    HOST_STATE_FILTER,
    Channel,
    Topic,
    TopicError,
    host_state_topic,
    parse_topic,
    shared_filter,
    topic_for,
)

__all__ = [
    "HOST_STATE_FILTER",
    "SCHEMA_VERSION",
    "Box",
    "Channel",
    "Envelope",
    "Health",
    "HostState",
    "Label",
    "Metrics",
    "MotionEvent",
    "Point",
    "Status",
    "Topic",
    "TopicError",
    "WireError",
    "decode",
    "decode_host_state",
    "encode",
    "encode_host_state",
    "host_state_topic",
    "parse_topic",
    "shared_filter",
    "topic_for",
]
