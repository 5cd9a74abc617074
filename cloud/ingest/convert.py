"""Validate one MQTT message against the wire contract and turn it into line protocol.

Pure functions of (topic, payload, inventory): no I/O, so the rules (what is
dead-lettered, which tags a point gets) are tested without a broker. This is the hot
path of ingest; topic parsing and inventory lookups are cached per topic.

InfluxDB schema written here (every number a float, bools as bools):

* ``health``: one point per Health message at its ``ts``; tags node, commune, site, kind,
  known; fields = the numeric board readings present, plus seq and replay, and for live
  messages ``clock_skew_s`` (board stamp minus cloud receive time; network delay included).
* each metrics Point under its own measurement (``ap``, ``camera``, ...) at ``point.ts``
  (else the envelope ``ts``); tags device, node, commune, site, kind + the point's tags.
* ``motion``: one point per event at the event ``start`` (so start/update/end of an event
  overwrite one point, and the final phase wins); tags device, node, commune, site, kind, and
  ``hour`` (local hour of the start, ``00``-``23``, Asia/Ho_Chi_Minh: an hour-of-day heatmap
  is a GROUP BY, which InfluxQL cannot compute from the timestamp);
  fields peak_area_pct, duration_s, n_boxes, frames (absent from older agents), score,
  snapshot_sha256, event_id, phase, seq, replay.
* ``status``: one point per birth/death that took effect, at the cloud time it did (not at
  its ``ts``, which is its connection's stamp): tags node, commune, site, kind, known; fields
  online (1.0/0.0), reason. Only the SQL store knows whether a status is newer than the
  node's current one (``wire.status_order``; several workers may see them in any order), so
  ``convert`` leaves these lines to ``status_line``, called by the consumer once SQL decided.
  Each point is later than the node's previous one, so the newest point is the node's state.

``replay`` is always a field: a replayed message must land on the same series and
timestamp as the original so that it overwrites instead of duplicating.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from cloud.inventory import Inventory
from cloud.storage.lineproto import LineError, format_fields, series_key
from wire import Health, Metrics, MotionEvent, Status, TopicError, WireError, decode, parse_topic
from wire.control import decode_control
from wire.messages import Envelope, check_snapshot
from wire.topics import CONTROL, Channel, Topic

_HEALTH_FIELDS: Final = tuple(
    f for f in Health.model_fields if f not in {"v", "node", "session", "seq", "ts", "replay"}
)
UNKNOWN: Final = "unknown"
#: Plausible edge timestamps: not before the project existed (a board whose clock was never
#: set says 1970), not more than a day ahead of the cloud (a wrong clock, or a forged stamp
#: that would sit in every "last value" query for years). Outside: dead-lettered with why.
EARLIEST_TS: Final = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
MAX_AHEAD_S: Final = 86_400.0
LOCAL_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")  # the province's time, for hour-of-day tags


@dataclass(frozen=True, slots=True)
class Converted:
    """A valid message: its lines and what the SQL state needs to know."""

    node: str
    commune: str
    known: bool
    channel: Channel
    lines: list[str]
    message: Envelope | None  # None for a snapshot
    snapshot: bytes | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid message, for the dead-letter table."""

    reason: str
    node_guess: str | None


@dataclass(frozen=True, slots=True)
class _NodeTags:
    commune: str
    site: str
    kind: str
    known: bool


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def _ms(dt: datetime) -> int:
    """Exact milliseconds since the epoch (float seconds would round differently at times)."""
    return (dt - _EPOCH) // _MS


#: Channels of a decommissioned board whose messages are ignored rather than dead-lettered.
_QUIET_WHEN_RETIRED: Final = frozenset({Channel.STATUS.value, Channel.CONFIG.value, Channel.CMD.value})


class _Decommissioned(str):
    """Why a message of a decommissioned board is refused (its status is ignored instead)."""


class Converter:
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._version = inventory.version
        # Sized for the fleet: a cache smaller than what every board sends in one interval is
        # emptied before each entry is used again (10,000 boards thrashed the fixed 4,096).
        nodes, devices = len(inventory.nodes), len(inventory.devices)
        self._parse = functools.lru_cache(maxsize=max(4096, 8 * nodes))(self._parse_uncached)
        self._device_tags = functools.lru_cache(maxsize=max(4096, 2 * devices))(self._device_tags_uncached)
        # Series keys (measurement + escaped, sorted tags) repeat for every message of a node.
        self._node_series = functools.lru_cache(maxsize=max(4096, 8 * nodes))(self._node_series_uncached)
        self._point_series = functools.lru_cache(maxsize=max(16384, 16 * devices))(
            self._point_series_uncached
        )

    def _follow_inventory(self) -> None:
        """The live inventory changed (a device added, moved, decommissioned): forget the tags
        derived from the old one."""
        if self.inventory.version != self._version:
            self._version = self.inventory.version
            for cache in (self._parse, self._device_tags, self._node_series, self._point_series):
                cache.cache_clear()

    # ------------------------------------------------------------------ lookups
    def _parse_uncached(self, topic: str) -> tuple[Topic, _NodeTags] | str:
        try:
            t = parse_topic(topic)
        except TopicError as exc:
            return str(exc)
        node = self.inventory.node(t.node)
        if node is None:
            if self.inventory.is_retired(t.node):
                return _Decommissioned(
                    f"board {t.node} is decommissioned: its credentials were revoked; nothing of it is stored"
                )
            return t, _NodeTags(t.commune, UNKNOWN, UNKNOWN, False)
        if node.commune != t.commune:
            return f"node {t.node} belongs to commune {node.commune}, not {t.commune} (topic {topic!r})"
        return t, _NodeTags(node.commune, node.site, self.inventory.node_kind(t.node), True)

    def _device_tags_uncached(self, node: str, device: str) -> dict[str, str]:
        d = self.inventory.device(device)
        if d is None:
            n = self.inventory.node(node)
            return {"device": device, "site": n.site if n else UNKNOWN, "kind": UNKNOWN}
        return {"device": device, "site": d.site, "kind": d.kind}

    def device_site(self, node: str, device: str) -> str:
        """The device's site (village or spot), as tagged on its points."""
        return self._device_tags(node, device)["site"]

    # ------------------------------------------------------------------ convert
    def convert(
        self, topic: str, payload: bytes, received_at: float | None = None
    ) -> Converted | Rejected | None:
        """The message converted, or Rejected with why; None for a valid control-plane message
        (desired configuration, command, report, reply): the fleet service handles those, and
        the cloud's own messages on ``config`` and ``cmd`` say nothing about the node."""
        self._follow_inventory()
        parsed = self._parse(topic)
        if isinstance(parsed, str):
            if isinstance(parsed, _Decommissioned) and topic.rpartition("/")[2] in _QUIET_WHEN_RETIRED:
                return None  # its last status, retained for ever, or the cloud clearing its config
            return Rejected(parsed, _guess_node(topic))
        t, nt = parsed
        try:
            if t.channel is Channel.SNAPSHOT:
                check_snapshot(payload)
                return Converted(t.node, nt.commune, nt.known, t.channel, [], None, payload, t.suffix)
            if t.channel in CONTROL:
                control = decode_control(t.channel, payload)
                if control.node != t.node:
                    return Rejected(
                        f"payload node {control.node!r} differs from topic node {t.node!r}", t.node
                    )
                return None
            msg = decode(t.channel, payload)
        except WireError as exc:
            return Rejected(str(exc), t.node)
        if msg.node != t.node:
            return Rejected(f"payload node {msg.node!r} differs from topic node {t.node!r}", t.node)
        implausible = _implausible_time(msg, received_at)
        if implausible:
            return Rejected(implausible, t.node)
        try:
            lines = self._lines(t, nt, msg, received_at)
        except LineError as exc:
            return Rejected(f"cannot store: {exc}", t.node)
        except OverflowError:  # an integer beyond any float (InfluxDB stores numbers as floats)
            return Rejected("cannot store: a number is too large for a float", t.node)
        return Converted(t.node, nt.commune, nt.known, t.channel, lines, msg)

    def _lines(self, t: Topic, nt: _NodeTags, msg: Envelope, received_at: float | None) -> list[str]:
        if isinstance(msg, Health):
            d = msg.__dict__
            fields: dict[str, bool | int | float | str | None] = {f: d[f] for f in _HEALTH_FIELDS}
            fields["seq"] = msg.seq
            fields["replay"] = msg.replay
            if received_at is not None and not msg.replay:  # a replay's stamp is rightly old
                fields["clock_skew_s"] = round(msg.ts.timestamp() - received_at, 3)
            return [f"{self._node_series('health', t.node, nt)} {format_fields(fields)} {_ms(msg.ts)}"]
        if isinstance(msg, Metrics):
            out = []
            env_ms = _ms(msg.ts)
            for p in msg.points:
                key = self._point_series(p.measurement, t.node, nt.commune, p.device, tuple(p.tags.items()))
                ts = _ms(p.ts) if p.ts is not None else env_ms
                out.append(f"{key} {format_fields(p.fields)} {ts}")
            return out
        if isinstance(msg, MotionEvent):
            hour = msg.start.astimezone(LOCAL_TZ).strftime("%H")  # busy hours, whatever the range
            key = self._point_series("motion", t.node, nt.commune, msg.device, (("hour", hour),))
            end = msg.end or msg.ts
            fields = {
                "peak_area_pct": msg.peak_area_pct,
                "duration_s": max(0.0, (end - msg.start).total_seconds()),
                "n_boxes": len(msg.boxes),
                "frames": msg.frames,
                "score": msg.score,
                "snapshot_sha256": msg.snapshot_sha256,
                "event_id": msg.event_id,
                "phase": msg.phase,
                "seq": msg.seq,
                "replay": msg.replay,
            }
            return [f"{key} {format_fields(fields)} {_ms(msg.start)}"]
        if isinstance(msg, Status):
            return []  # written by status_line once SQL has ordered it
        raise LineError(f"no conversion for {type(msg).__name__}")

    def status_line(self, topic: str, msg: Status, at_ms: int) -> str:
        """The ``status`` point of a status that took effect at ``at_ms`` (its topic passed ``convert``)."""
        parsed = self._parse(topic)
        if isinstance(parsed, str):
            raise LineError(parsed)
        t, nt = parsed
        fields = {"online": 1.0 if msg.state == "online" else 0.0, "reason": msg.reason}
        return f"{self._node_series('status', t.node, nt)} {format_fields(fields)} {at_ms}"

    def _node_series_uncached(self, measurement: str, node: str, nt: _NodeTags) -> str:
        tags = {"node": node, "commune": nt.commune, "site": nt.site, "kind": nt.kind}
        tags["known"] = "true" if nt.known else "false"
        return series_key(measurement, tags)

    def _point_series_uncached(
        self, measurement: str, node: str, commune: str, device: str, point_tags: tuple[tuple[str, str], ...]
    ) -> str:
        tags = dict(point_tags)
        tags.update(self._device_tags(node, device))
        tags["node"] = node
        tags["commune"] = commune
        return series_key(measurement, tags)


def _implausible_time(msg: Envelope, received_at: float | None) -> str | None:
    """Why a timestamp of ``msg`` cannot be right, else None."""
    latest = (received_at if received_at is not None else time.time()) + MAX_AHEAD_S
    stamps: list[tuple[str, datetime]] = [("ts", msg.ts)]
    if isinstance(msg, Metrics):
        stamps += [(f"points.{i}.ts", p.ts) for i, p in enumerate(msg.points) if p.ts is not None]
    elif isinstance(msg, MotionEvent):
        stamps.append(("start", msg.start))
        if msg.end is not None:
            stamps.append(("end", msg.end))
    for where, dt in stamps:
        at = dt.timestamp()
        if at < EARLIEST_TS:
            return f"{where}: {dt.isoformat()} is before 2020 (board clock not set?)"
        if at > latest:
            return f"{where}: {dt.isoformat()} is more than a day ahead of the cloud's clock"
    return None


def _guess_node(topic: str) -> str | None:
    """Best guess of the sender from a topic that failed to parse (for per-node counts)."""
    parts = topic.split("/")
    if len(parts) >= 4 and parts[0] == "ciot":
        guess = parts[3][:64]
        return guess or None
    return None
