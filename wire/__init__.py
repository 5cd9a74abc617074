"""The wire contract between edge agents and the cloud: topics and message schemas.

Edge and cloud share this package and, for object labels, the ``labels`` package (a model
and the policy that turns its detections into an event's labels: no protocol). A change here
is a protocol change and must keep ``docs/protocol.md`` true. ``messages`` holds the telemetry,
``control`` the device twin and commands, ``crypto`` their sealing and signatures;
``version`` and ``logs`` are what both sides need below them (the release they report,
one log format).
"""

from wire.control import (
    COMMANDS,
    Command,
    CommandReply,
    ConfigReport,
    DesiredConfig,
    command_args,
)
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
    UpdateReport,
    WireError,
    decode,
    decode_as,
    decode_host_state,
    encode,
    encode_host_state,
    status_order,
)
from wire.topics import (
    CONTROL,
    DOWNLINK,
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
    "COMMANDS",
    "CONTROL",
    "DOWNLINK",
    "HOST_STATE_FILTER",
    "SCHEMA_VERSION",
    "Box",
    "Channel",
    "Command",
    "CommandReply",
    "ConfigReport",
    "DesiredConfig",
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
    "UpdateReport",
    "WireError",
    "command_args",
    "decode",
    "decode_as",
    "decode_host_state",
    "encode",
    "encode_host_state",
    "host_state_topic",
    "parse_topic",
    "shared_filter",
    "status_order",
    "topic_for",
]
