"""JSON message schemas, validated by pydantic on both ends.

Every sequenced message carries an envelope modelled on Sparkplug B: the node id, a
session id that changes on every agent start (Sparkplug's bdSeq), a per-session
sequence number (so the cloud sees gaps), the edge timestamp in UTC, and a flag for
data replayed from the edge outbox. Snapshots are the one non-JSON payload: raw JPEG
bytes on their own topic, referenced by the event's SHA-256.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from wire.topics import ID_PATTERN, SEQUENCED, Channel

SCHEMA_VERSION: Final = 1

#: Largest JSON payload either side accepts. Brokers we ship cap packets higher than
#: this so the cloud sees (and dead-letters) an oversized message instead of a silent drop.
MAX_JSON_BYTES: Final = 64 * 1024
#: Largest snapshot JPEG.
MAX_SNAPSHOT_BYTES: Final = 256 * 1024

#: Measurements a node may write through ``metrics``. The cloud refuses any other name,
#: so a buggy or hostile board cannot create series at will. Add names here (and to
#: docs/protocol.md) when a collector needs a new one.
MEASUREMENTS: Final = frozenset(
    {
        "ap",  # one access point: reachable, uptime, total clients
        "ap_radio",  # per radio/band: clients (tag band)
        "ap_ssid",  # per SSID: clients (tag ssid)
        "ap_if",  # per interface: octets, rates, oper status (tag ifname)
        "camera",  # one camera stream: up, fps, frozen, decode errors
    }
)
#: Tags the cloud sets itself from the topic and inventory; a point may not carry them.
RESERVED_TAGS: Final = frozenset({"node", "device", "commune", "site", "kind", "replay"})

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
TagValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SessionId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,32}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
FieldValue = bool | int | float | Annotated[str, StringConstraints(max_length=256)]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


class WireError(ValueError):
    """A payload that does not satisfy the contract; the text says why, for the dead-letter log."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Envelope(_Model):
    v: Literal[1] = SCHEMA_VERSION
    node: Id
    session: SessionId
    seq: int = Field(ge=0, le=2**53)
    ts: UtcDatetime
    replay: bool = False


class Status(Envelope):
    """Retained birth/death certificate. ``seq`` is 0; it is not part of the data sequence."""

    state: Literal["online", "offline"]
    reason: Literal["birth", "will", "shutdown"]
    agent_version: str = Field(default="", max_length=64)
    devices: list[Id] = Field(default_factory=list, max_length=16)
    #: Seconds between health messages, so the cloud can judge missing heartbeats.
    health_interval_s: float | None = Field(default=None, gt=0, le=3600)


class Health(Envelope):
    """Board health; also the heartbeat. Fields the board cannot read are null."""

    cpu_pct: float | None = Field(default=None, ge=0, le=100)
    load1: float | None = Field(default=None, ge=0)
    load5: float | None = Field(default=None, ge=0)
    load15: float | None = Field(default=None, ge=0)
    mem_used_pct: float | None = Field(default=None, ge=0, le=100)
    mem_avail_mb: float | None = Field(default=None, ge=0)
    disk_used_pct: float | None = Field(default=None, ge=0, le=100)
    disk_free_mb: float | None = Field(default=None, ge=0)
    temp_c: float | None = Field(default=None, ge=-60, le=150)
    agent_uptime_s: float = Field(ge=0)
    board_uptime_s: float | None = Field(default=None, ge=0)
    outbox_depth: int = Field(ge=0)
    outbox_bytes: int = Field(default=0, ge=0)
    outbox_oldest_s: float = Field(default=0, ge=0)
    outbox_dropped: int = Field(default=0, ge=0)


class Point(_Model):
    """One time-series point of a collector. Numbers are stored as floats (see protocol.md)."""

    measurement: str
    device: Id
    tags: dict[Key, TagValue] = Field(default_factory=dict, max_length=8)
    fields: dict[Key, FieldValue] = Field(min_length=1, max_length=64)
    ts: UtcDatetime | None = None

    def model_post_init(self, __context: object) -> None:
        if self.measurement not in MEASUREMENTS:
            raise ValueError(f"unknown measurement {self.measurement!r}")
        clash = RESERVED_TAGS.intersection(self.tags)
        if clash:
            raise ValueError(f"reserved tag(s) {sorted(clash)}")


class Metrics(Envelope):
    points: list[Point] = Field(min_length=1, max_length=500)


class Box(_Model):
    """A motion box in fractions of the frame (0..1), independent of resolution."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(ge=0, le=1)
    h: float = Field(ge=0, le=1)


class MotionEvent(Envelope):
    event_id: EventId
    device: Id
    phase: Literal["start", "update", "end"]
    start: UtcDatetime
    end: UtcDatetime | None = None
    peak_area_pct: float = Field(ge=0, le=100)
    boxes: list[Box] = Field(default_factory=list, max_length=32)
    zones: list[Key] = Field(default_factory=list, max_length=16)
    score: float | None = Field(default=None, ge=0, le=1)
    snapshot_sha256: Sha256 | None = None
    snapshot_bytes: int | None = Field(default=None, ge=0, le=MAX_SNAPSHOT_BYTES)
    # Frames the detector found motion in during the event so far (at its detect rate, pre-roll
    # included). Optional: agents older than the field omit it.
    frames: int | None = Field(default=None, ge=0)


class HostState(_Model):
    """An ingest worker's liveness, published by the cloud on ``host_state_topic(worker)``.

    Nodes hold data in their outbox until a worker says, live, that it is subscribed:
    after a broker restart Mosquitto 2.0 restores persistent sessions but not their
    *shared* subscriptions, so data published before a worker re-subscribes would be
    acknowledged to the node and delivered to nobody. A worker publishes ``online`` only
    after its subscription is granted, then every ``heartbeat_s``; its Last Will and its
    orderly stop publish ``online: false``.
    """

    v: Literal[1] = SCHEMA_VERSION
    worker: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    online: bool
    ts: UtcDatetime
    heartbeat_s: float = Field(gt=0, le=3600)


def encode_host_state(state: HostState) -> bytes:
    return state.model_dump_json().encode()


def decode_host_state(payload: bytes) -> HostState:
    try:
        return HostState.model_validate_json(payload)
    except ValidationError as exc:
        raise WireError(f"host state: {exc.errors(include_url=False)[0]['msg']}") from None


_MODELS: Final[dict[Channel, type[Envelope]]] = {
    Channel.STATUS: Status,
    Channel.HEALTH: Health,
    Channel.METRICS: Metrics,
    Channel.EVENT: MotionEvent,
}
_MODEL_CHANNEL: Final = {model: channel for channel, model in _MODELS.items()}


def channel_of(message: Envelope) -> Channel:
    return _MODEL_CHANNEL[type(message)]


def encode(message: Envelope) -> bytes:
    """Compact JSON; timestamps as ISO 8601 with ``Z``."""
    return message.model_dump_json(exclude_none=True).encode()


_ERR_SPACE = re.compile(r"\s+")


def decode(channel: Channel, payload: bytes) -> Envelope:
    """Validate a JSON payload for ``channel``; raise WireError with a one-line reason."""
    model = _MODELS.get(channel)
    if model is None:
        raise WireError(f"channel {channel.value!r} carries no JSON envelope")
    if len(payload) > MAX_JSON_BYTES:
        raise WireError(f"payload too large: {len(payload)} bytes > {MAX_JSON_BYTES}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise WireError(_ERR_SPACE.sub(" ", f"{where}: {first['msg']}{more}")[:300]) from None


def is_sequenced(channel: Channel) -> bool:
    return channel in SEQUENCED


JPEG_MAGIC: Final = b"\xff\xd8\xff"


def check_snapshot(payload: bytes) -> None:
    """Cheap structural check of a JPEG: start and end markers, size limit."""
    if len(payload) > MAX_SNAPSHOT_BYTES:
        raise WireError(f"snapshot too large: {len(payload)} bytes > {MAX_SNAPSHOT_BYTES}")
    if not payload.startswith(JPEG_MAGIC) or not payload.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise WireError("snapshot is not a JPEG (missing SOI/EOI markers)")
