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
from typing import Annotated, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from wire.compression import CompressionError, unpack
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
#: A ``camera`` point's field (optional; older agents omit it): while ``tampering`` is set, the
#: SHA-256 of the picture the camera took when it began (covered, dark, blurred, turned), sent
#: before the point on ``snapshot/<tamper_snapshot_suffix(sha)>``. The cloud attaches it to the
#: technician alert; it is never a police event.
TAMPER_SNAPSHOT_FIELD: Final = "tampering_snapshot"
#: Tags the cloud sets itself from the topic and inventory; a point may not carry them.
RESERVED_TAGS: Final = frozenset({"node", "device", "commune", "site", "kind", "replay"})

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
TagValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SessionId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,32}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
FieldValue = bool | int | float | Annotated[str, StringConstraints(max_length=256)]
#: A desired configuration's version: set by the cloud, only ever growing; 0 = none (local file).
ConfigVersion = Annotated[int, Field(ge=0, le=2**53)]


def _version(value: object) -> object:
    if isinstance(value, bool):  # True == 1 in Python, so a Literal[1] alone would take it
        raise ValueError("Input should be 1")
    return value


#: The schema version: the number 1 (not true, not 1.0 — strict mode refuses floats for it).
Version = Annotated[Literal[1], BeforeValidator(_version)]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


M = TypeVar("M", bound=BaseModel)


class WireError(ValueError):
    """A payload that does not satisfy the contract; the text says why, for the dead-letter log."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Envelope(_Model):
    v: Version = SCHEMA_VERSION
    node: Id
    session: SessionId
    seq: int = Field(ge=0, le=2**53)
    ts: UtcDatetime
    replay: bool = False


class UpdateReport(_Model):
    """The board's last agent update, carried in its birth: after a rollback the board runs
    the old version again, and this is how the cloud learns that (and why) the new one failed."""

    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    #: trial: running the new version, not yet proven healthy; active: it proved healthy;
    #: rolled_back: the launcher went back to the previous version; failed: refused or not
    #: installed (download, signature, hash, install), nothing was changed.
    state: Literal["trial", "active", "rolled_back", "failed"]
    error: str = Field(default="", max_length=500)
    ts: UtcDatetime


class Status(Envelope):
    """Retained birth/death certificate. ``seq`` is 0; it is not part of the data sequence.

    ``ts`` is the status's stamp, which orders a node's statuses (``status_order``): the birth
    and the Will of one connection carry the same stamp (taken before the connect attempt),
    and every connection's stamp is later than every stamp the board sent before, across
    agent restarts and clock steps. See docs/protocol.md, "Status".
    """

    state: Literal["online", "offline"]
    reason: Literal["birth", "will", "shutdown"]
    agent_version: str = Field(default="", max_length=64)
    devices: list[Id] = Field(default_factory=list, max_length=16)
    #: Seconds between health messages, so the cloud can judge missing heartbeats.
    health_interval_s: float | None = Field(default=None, gt=0, le=3600)
    #: Version of the cloud-set configuration the node runs (0: its local file only).
    #: Optional: agents older than the device twin omit it.
    config_version: ConfigVersion | None = None

    #: The last agent update (absent on a board that never updated itself).
    update: UpdateReport | None = None


def status_order(stamp: float, state: str) -> tuple[float, int]:
    """Which status of a node is the newest: the later stamp; on one stamp, offline.

    So the Will of a connection ends it (it carries its birth's stamp), a stale Will of an
    earlier connection never ends a newer one, and the next connection's birth (a later
    stamp) starts it again, in whatever order the messages arrive. ``stamp`` is ``ts`` in
    epoch seconds. The cloud's SQL store applies the same rule in SQL (cloud/storage/sql.py).
    """
    return (stamp, 1 if state == "offline" else 0)


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
    #: What runs (optional: agents older than the device twin omit them).
    agent_version: str | None = Field(default=None, max_length=64)
    config_version: ConfigVersion | None = None


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
        sha = self.fields.get(TAMPER_SNAPSHOT_FIELD)
        if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
            raise ValueError(f"{TAMPER_SNAPSHOT_FIELD} must be a SHA-256 in lowercase hex")


def tamper_snapshot_suffix(sha256: str) -> str:
    """The ``snapshot`` topic suffix of a tampering picture (a topic suffix is at most 64 chars)."""
    return f"tamper-{sha256[:16]}"


class Metrics(Envelope):
    points: list[Point] = Field(min_length=1, max_length=500)


class Box(_Model):
    """A motion box in fractions of the frame (0..1), independent of resolution."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(ge=0, le=1)
    h: float = Field(ge=0, le=1)


class Label(_Model):
    """An object the board's labeller found in the event's snapshot (see ``labels/``)."""

    label: Key  # COCO class name with underscores: person, motorcycle, car, truck, dog...
    confidence: float = Field(ge=0, le=1)
    #: Where in the snapshot; absent for a class seen only in an earlier snapshot of the event.
    box: Box | None = None


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
    # The moving regions of the snapshot's own frame (``boxes`` is their union over the whole
    # event): where the cloud's labeller looks. Optional: older agents omit it.
    snapshot_boxes: list[Box] | None = Field(default=None, max_length=32)
    # Objects in the event, when the board labels them itself (labels.enabled on a camera);
    # absent: the board did not label (the cloud may), [] : it looked and found nothing.
    labels: list[Label] | None = Field(default=None, max_length=32)
    # Cameras that detect on a substream (``snapshot_source`` main/http): where the snapshot
    # came from, its size in px (boxes are fractions of it), and why the detected frame was sent
    # when the high-resolution picture failed. Absent otherwise (cameras without a substream).
    snapshot_source: Literal["detect", "main", "http"] | None = None
    snapshot_width_px: int | None = Field(default=None, ge=1, le=16384)
    snapshot_height_px: int | None = Field(default=None, ge=1, le=16384)
    snapshot_fallback: str | None = Field(default=None, max_length=200)
    # On a fallback (``snapshot_source: detect`` with ``snapshot_fallback``): the source that
    # failed, so the police page can say which picture is missing. Optional: older agents omit it.
    snapshot_wanted: Literal["main", "http"] | None = None


class HostState(_Model):
    """An ingest worker's liveness, published by the cloud on ``host_state_topic(worker)``.

    Nodes hold data in their outbox until a worker says, live, that it is subscribed:
    after a broker restart Mosquitto 2.0 restores persistent sessions but not their
    *shared* subscriptions, so data published before a worker re-subscribes would be
    acknowledged to the node and delivered to nobody. A worker publishes ``online`` only
    after its subscription is granted, then every ``heartbeat_s``; its Last Will and its
    orderly stop publish ``online: false``.
    """

    v: Version = SCHEMA_VERSION
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
    return decode_as(model, payload)


def decode_as(model: type[M], payload: bytes) -> M:
    """Validate a JSON payload (or one packed by wire.compression) as ``model``; raise
    WireError with a one-line reason."""
    if len(payload) > MAX_JSON_BYTES:
        raise WireError(f"payload too large: {len(payload)} bytes > {MAX_JSON_BYTES}")
    try:
        payload = unpack(payload, MAX_JSON_BYTES)
    except CompressionError as exc:
        raise WireError(str(exc)) from None
    try:
        # strict: JSON true is not the number 1, "5" is not 5 (JSON keeps those types, so a
        # sender that mixes them up is found at once, in the dead letters)
        return model.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise WireError(_ERR_SPACE.sub(" ", f"{where}: {first['msg']}{more}")[:300]) from None


def is_sequenced(channel: Channel) -> bool:
    return channel in SEQUENCED


JPEG_MAGIC: Final = b"\xff\xd8\xff"
#: Largest snapshot side and area the cloud accepts (a camera sends 640 px wide; 8K is absurd).
MAX_SNAPSHOT_SIDE: Final = 8192
MAX_SNAPSHOT_PIXELS: Final = 40_000_000
#: Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic).
_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_SOS: Final = 0xDA


def jpeg_dimensions(payload: bytes) -> tuple[int, int]:
    """(width, height) from the frame header; WireError unless the headers are a sane JPEG.

    Walks the marker segments from SOI up to the first scan (SOS) in pure Python: every
    segment length must stay inside the payload, exactly one frame header (SOF) with
    8/12-bit precision, 1, 3 or 4 components and sane dimensions must come before the scan.
    The entropy-coded data itself is not decoded (that would need a codec in the cloud);
    the end marker is checked by ``check_snapshot``."""
    n = len(payload)
    if payload[:2] != b"\xff\xd8":
        raise WireError("snapshot is not a JPEG (no SOI marker)")
    pos = 2
    size: tuple[int, int] | None = None
    while True:
        if pos >= n:
            raise WireError("snapshot is not a JPEG: it ends before any image data (no SOS)")
        if payload[pos] != 0xFF:
            raise WireError(f"snapshot is not a JPEG: no marker at byte {pos}")
        while pos < n and payload[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise WireError("snapshot is not a JPEG: truncated marker")
        marker = payload[pos]
        pos += 1
        if marker in (0x00, 0xD8, 0xD9):
            raise WireError(f"snapshot is not a JPEG: unexpected marker 0xff{marker:02x} at byte {pos - 2}")
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue  # markers without a length
        if pos + 2 > n:
            raise WireError("snapshot is not a JPEG: truncated segment")
        length = (payload[pos] << 8) | payload[pos + 1]
        if length < 2 or pos + length > n:
            raise WireError(f"snapshot is not a JPEG: segment 0xff{marker:02x} runs past the end")
        body = payload[pos + 2 : pos + length]
        pos += length
        if marker in _SOF:
            if size is not None:
                raise WireError("snapshot is not a JPEG: more than one frame header")
            if len(body) < 6:
                raise WireError("snapshot is not a JPEG: short frame header")
            precision, comps = body[0], body[5]
            height, width = (body[1] << 8) | body[2], (body[3] << 8) | body[4]
            if precision not in (8, 12) or comps not in (1, 3, 4) or len(body) != 6 + 3 * comps:
                raise WireError("snapshot is not a JPEG: invalid frame header")
            if not width or not height:
                raise WireError(f"snapshot has an empty picture ({width}x{height})")
            if (
                width > MAX_SNAPSHOT_SIDE
                or height > MAX_SNAPSHOT_SIDE
                or width * height > MAX_SNAPSHOT_PIXELS
            ):
                raise WireError(
                    f"snapshot dimensions {width}x{height} are absurd "
                    f"(at most {MAX_SNAPSHOT_SIDE} px a side, "
                    f"{MAX_SNAPSHOT_PIXELS:,} px)"
                )
            size = (width, height)
        elif marker == _SOS:
            if size is None:
                raise WireError("snapshot is not a JPEG: image data before any frame header (SOF)")
            return size


def check_snapshot(payload: bytes) -> tuple[int, int]:
    """Structural check of a JPEG: size limit, SOI/EOI markers, and its headers up to the
    first scan (``jpeg_dimensions``). Returns (width, height)."""
    if len(payload) > MAX_SNAPSHOT_BYTES:
        raise WireError(f"snapshot too large: {len(payload)} bytes > {MAX_SNAPSHOT_BYTES}")
    if not payload.startswith(JPEG_MAGIC) or not payload.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise WireError("snapshot is not a JPEG (missing SOI/EOI markers)")
    return jpeg_dimensions(payload)
