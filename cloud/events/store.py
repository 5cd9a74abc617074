"""The police event log in SQL: one row per motion event, its notes and its review state.

Ingest upserts an event on every start/update/end message of it. The merge is
order-independent (start = least, end = greatest, descriptive fields from the newest
message by edge time), so a replayed, redelivered or reordered message updates the row
and never duplicates it, whichever of several workers writes it. Review state and notes
belong to people and are never touched by ingest.

An event is keyed by (device, event_id): ids are unique per camera, and keying by the
device as well keeps a board from overwriting another camera's event with a chosen id.
Rows are reached by a surrogate integer ``id`` in URLs.

Object labels (``labels``: person, motorcycle, car...) come from the board when it labels its
events (then ingest merges them like the other descriptive fields and ``labels_source`` is
``edge``), else from the cloud's labeller (``cloud.events.labelling``), which labels each stored
snapshot of the event and lists the ones it labelled in ``labelled_snapshots``. ``label_set``
(``,car,person,``) is what the filters match; NULL there means "not labelled (yet)", ``,``
"labelled, nothing found".

Cameras detecting on a substream say where each snapshot came from (``SNAPSHOT_ORIGIN``: the
camera's HTTP snapshot, the main stream, or the detected frame it fell back to, with its size and
why); those columns go with the snapshot hash, from the newest message that names a snapshot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    update,
)

from cloud.storage.schema import ensure_schema
from cloud.storage.sqlexpr import greatest as _greatest
from cloud.storage.sqlexpr import least as _least

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("node", String(64), nullable=False),
    Column("commune", String(64), nullable=False),
    Column("site", String(64), nullable=False, default=""),
    Column("start", Float, nullable=False),  # epoch seconds (UTC)
    Column("end", Float),  # NULL while the event lasts
    Column("last_ts", Float, nullable=False),  # end, or the newest update's time
    Column("duration_s", Float, nullable=False, default=0.0),
    Column("local_minute", Integer, nullable=False, default=0),  # start, minutes after local midnight
    Column("phase", String(8), nullable=False),
    Column("peak_area_pct", Float, nullable=False, default=0.0),
    Column("boxes", Text, nullable=False, default="[]"),  # JSON [{x,y,w,h}] normalised
    Column("zones", Text, nullable=False, default=""),  # comma-separated
    Column("score", Float),
    Column("frames", Integer),
    Column("snapshot_sha256", String(64)),
    Column("snapshot_boxes", Text),  # JSON [{x,y,w,h}]: what moved in the snapshot's frame
    # Where the snapshot came from, for a camera detecting on its substream (NULL otherwise and
    # for events stored before migration 0008): "http", "main", or "detect" when the board fell
    # back to the detected frame; then the source it wanted and why it failed (the board's text).
    Column("snapshot_source", String(8)),
    Column("snapshot_wanted", String(8)),
    Column("snapshot_width_px", Integer),
    Column("snapshot_height_px", Integer),
    Column("snapshot_fallback", String(200)),
    Column("labels", Text),  # JSON [{label, confidence, box?}]; NULL: not labelled (yet)
    Column("label_set", String(512)),  # ",car,person," for filters; NULL: not labelled (yet)
    Column("labelled_snapshots", Text),  # "sha,sha": the snapshots the cloud labelled
    Column("labels_source", String(8)),  # "edge" or "cloud"
    # The label_set ("" unlabelled) the police notification rules last saw (cloud.events.announce).
    Column("announced_labels", String(512)),
    Column("version_ts", Float, nullable=False),  # edge time of the message behind the fields
    Column("messages", Integer, nullable=False, default=1),
    Column("received_at", Float, nullable=False),
    Column("reviewed_by", String(64)),
    Column("reviewed_at", Float),
    Column("keep", Integer, nullable=False, server_default="0"),  # held past retention
    Column("exports", Integer, nullable=False, server_default="0"),  # evidence exports holding it
    Index("ux_events_device_event", "device", "event_id", unique=True),
    Index("ix_events_commune_start", "commune", "start"),
    Index("ix_events_device_start", "device", "start"),
    Index("ix_events_start", "start"),
    Index("ix_events_received", "received_at"),  # the labeller's look for new snapshots
)

notes = Table(
    "event_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", Integer, ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("author", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("text", Text, nullable=False),
)


#: One row per police notification rule that announced an event: a rule tells of an event at most
#: once, whatever is redelivered, replayed or restarted (cloud.events.announce).
event_notices = Table(
    "event_notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", Integer, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("label", String(32), nullable=False, default=""),
    Column("confidence", Float),
    Column("notifiers", String(512), nullable=False, default=""),  # comma-separated
    Index("ux_event_notices_event_rule", "event", "rule", unique=True),
)


#: The columns that say where an event's snapshot came from and its size (migration 0008).
SNAPSHOT_ORIGIN = (
    "snapshot_source",
    "snapshot_wanted",
    "snapshot_width_px",
    "snapshot_height_px",
    "snapshot_fallback",
)


@dataclass(slots=True)
class EventRecord:
    """What one motion message says about its event (built by ingest)."""

    device: str
    event_id: str
    node: str
    commune: str
    site: str
    phase: str
    start: float
    end: float | None
    msg_ts: float
    peak_area_pct: float
    boxes: list[dict[str, float]]
    zones: list[str]
    score: float | None
    frames: int | None
    snapshot_sha256: str | None
    received_at: float = field(default_factory=time.time)
    snapshot_boxes: list[dict[str, float]] | None = None
    labels: list[dict[str, Any]] | None = None  # the board's, when it labels
    snapshot_source: str | None = None
    snapshot_wanted: str | None = None
    snapshot_width_px: int | None = None
    snapshot_height_px: int | None = None
    snapshot_fallback: str | None = None

    def row(self) -> dict[str, Any]:
        last = self.end if self.end is not None else max(self.msg_ts, self.start)
        local = datetime.fromtimestamp(self.start, LOCAL_TZ)
        return {
            "device": self.device,
            "event_id": self.event_id,
            "node": self.node,
            "commune": self.commune,
            "site": self.site,
            "start": self.start,
            "end": self.end,
            "last_ts": last,
            "duration_s": max(0.0, last - self.start),
            "local_minute": local.hour * 60 + local.minute,
            "phase": self.phase,
            "peak_area_pct": self.peak_area_pct,
            "boxes": json.dumps(self.boxes, separators=(",", ":")),
            "zones": ",".join(self.zones),
            "score": self.score,
            "frames": self.frames,
            "snapshot_sha256": self.snapshot_sha256,
            "snapshot_boxes": _json(self.snapshot_boxes),
            "labels": _json(self.labels),
            "label_set": label_set(self.labels),
            "labelled_snapshots": None,
            "labels_source": "edge" if self.labels is not None else None,
            "snapshot_source": self.snapshot_source,
            "snapshot_wanted": self.snapshot_wanted,
            "snapshot_width_px": self.snapshot_width_px,
            "snapshot_height_px": self.snapshot_height_px,
            "snapshot_fallback": self.snapshot_fallback,
            "version_ts": self.msg_ts,
            "messages": 1,
            "received_at": self.received_at,
        }


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def label_set(labels: Sequence[Mapping[str, Any]] | None) -> str | None:
    """``,car,person,`` for filters; None when not labelled."""
    if labels is None:
        return None
    return "," + "".join(f"{c}," for c in sorted({str(lab["label"]) for lab in labels}))


def upsert_events(conn: Connection, insert: Callable[[Table], Any], records: Sequence[EventRecord]) -> None:
    """Merge messages into their events (see the module docstring); one statement per message."""
    ins = insert(events)
    ex = ins.excluded
    c = events.c
    newer = ex.version_ts >= c.version_ts
    new_start = _least(c.start, ex.start)
    new_last = _greatest(c.last_ts, ex.last_ts)
    stmt = ins.on_conflict_do_update(
        index_elements=[c.device, c.event_id],
        set_={
            "start": new_start,
            "end": _greatest(c.end, ex.end),
            "last_ts": new_last,
            "duration_s": new_last - new_start,
            "local_minute": case((ex.start < c.start, ex.local_minute), else_=c.local_minute),
            "phase": case((newer, ex.phase), else_=c.phase),
            "peak_area_pct": _greatest(c.peak_area_pct, ex.peak_area_pct),
            "boxes": case((newer, ex.boxes), else_=c.boxes),
            "zones": case((newer, ex.zones), else_=c.zones),
            "score": case((newer & ex.score.is_not(None), ex.score), else_=c.score),
            "frames": case((newer & ex.frames.is_not(None), ex.frames), else_=c.frames),
            "snapshot_sha256": case(
                (newer & ex.snapshot_sha256.is_not(None), ex.snapshot_sha256), else_=c.snapshot_sha256
            ),
            "snapshot_boxes": case(
                (newer & ex.snapshot_boxes.is_not(None), ex.snapshot_boxes), else_=c.snapshot_boxes
            ),
            # Where the picture came from goes with the picture: taken (NULLs included) from the
            # message that named the snapshot kept above, so a fallback noted for an earlier
            # picture is not left on a later full-resolution one.
            **{
                name: case((newer & ex.snapshot_sha256.is_not(None), ex[name]), else_=c[name])
                for name in SNAPSHOT_ORIGIN
            },
            # The board's labels (newest message wins; a board merges its own over the event),
            # else whatever the cloud's labeller wrote stays.
            "labels": case((newer & ex.labels.is_not(None), ex.labels), else_=c.labels),
            "label_set": case((newer & ex.labels.is_not(None), ex.label_set), else_=c.label_set),
            "labels_source": case((ex.labels.is_not(None), ex.labels_source), else_=c.labels_source),
            "version_ts": _greatest(c.version_ts, ex.version_ts),
            "messages": c.messages + 1,
            "received_at": _least(c.received_at, ex.received_at),
        },
        # A different board claiming this camera's event id changes nothing.
        where=c.node == ex.node,
    )
    conn.execute(stmt, [r.row() for r in records])


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The event list's filters; ``communes`` is the caller's scope (None: all)."""

    communes: frozenset[str] | None = None
    commune: str | None = None
    device: str | None = None
    site: str | None = None
    since: float | None = None
    until: float | None = None
    #: Local time of day of the start, minutes after midnight; from > to wraps midnight.
    minute_from: int | None = None
    minute_to: int | None = None
    reviewed: bool | None = None
    min_duration_s: float | None = None
    #: Only events labelled with one of these classes (a group's members, or one class).
    labels: frozenset[str] | None = None
    #: True: only events with at least one label; False: only events without (none found, or
    #: not labelled yet).
    labelled: bool | None = None

    def clauses(self) -> list[Any]:
        c = events.c
        out: list[Any] = []
        if self.communes is not None:
            out.append(c.commune.in_(sorted(self.communes)) if self.communes else c.id < 0)
        if self.commune:
            out.append(c.commune == self.commune)
        if self.device:
            out.append(c.device == self.device)
        if self.site:
            out.append(c.site == self.site)
        if self.since is not None:
            out.append(c.start >= self.since)
        if self.until is not None:
            out.append(c.start < self.until)
        lo, hi = self.minute_from, self.minute_to
        if lo is not None and hi is not None:
            if lo <= hi:
                out.append(and_(c.local_minute >= lo, c.local_minute < hi))
            else:
                out.append(or_(c.local_minute >= lo, c.local_minute < hi))
        elif lo is not None:
            out.append(c.local_minute >= lo)
        elif hi is not None:
            out.append(c.local_minute < hi)
        if self.reviewed is not None:
            out.append(c.reviewed_at.is_not(None) if self.reviewed else c.reviewed_at.is_(None))
        if self.min_duration_s is not None:
            out.append(c.duration_s >= self.min_duration_s)
        if self.labels is not None:
            out.append(
                or_(*(c.label_set.contains(f",{name},", autoescape=True) for name in sorted(self.labels)))
            )
        if self.labelled is not None:
            has = and_(c.label_set.is_not(None), c.label_set != ",")
            out.append(has if self.labelled else or_(c.label_set.is_(None), c.label_set == ","))
        return out


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    author: str
    at: float
    text: str


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    device: str
    event_id: str
    node: str
    commune: str
    site: str
    start: float
    end: float | None
    duration_s: float
    phase: str
    peak_area_pct: float
    boxes: list[dict[str, float]]
    zones: list[str]
    score: float | None
    frames: int | None
    snapshot_sha256: str | None
    messages: int
    received_at: float
    reviewed_by: str | None
    reviewed_at: float | None
    keep: bool
    exports: int
    labels: list[dict[str, Any]] | None = None  # None: not labelled (yet)
    labels_source: str | None = None
    snapshot_boxes: list[dict[str, float]] | None = None
    #: "http", "main", "detect" (None: not said: a camera without a substream, an older event).
    snapshot_source: str | None = None
    #: On a fallback: the source that failed ("http"/"main"; None: an agent that does not say).
    snapshot_wanted: str | None = None
    snapshot_width_px: int | None = None
    snapshot_height_px: int | None = None
    #: Why the board sent the detected frame instead of the high-resolution picture.
    snapshot_fallback: str | None = None

    @property
    def snapshot_fell_back(self) -> bool:
        """The picture is the small detected frame because the full-resolution one failed."""
        return self.snapshot_source == "detect"

    @property
    def snapshot_size(self) -> str:
        """``1920×1080``, or "" when the board did not say."""
        if self.snapshot_width_px is None or self.snapshot_height_px is None:
            return ""
        return f"{self.snapshot_width_px}×{self.snapshot_height_px}"

    @property
    def label_names(self) -> list[str]:
        """The event's classes, most confident first, each once."""
        return [name for name, *_ in self.label_counts]

    @property
    def label_counts(self) -> list[tuple[str, int, float, bool]]:
        """Per class, most confident first: (class, objects, best confidence, seen in the
        current snapshot)."""
        out: dict[str, tuple[str, int, float, bool]] = {}
        for lab in sorted(self.labels or [], key=lambda x: -x["confidence"]):
            name, n, best, here = out.get(lab["label"], (lab["label"], 0, lab["confidence"], False))
            out[name] = (name, n + 1, best, here or bool(lab.get("box")))
        return list(out.values())

    @classmethod
    def from_row(cls, r: Any) -> Event:
        m = r._mapping
        return cls(
            id=m["id"],
            device=m["device"],
            event_id=m["event_id"],
            node=m["node"],
            commune=m["commune"],
            site=m["site"],
            start=m["start"],
            end=m["end"],
            duration_s=m["duration_s"],
            phase=m["phase"],
            peak_area_pct=m["peak_area_pct"],
            boxes=json.loads(m["boxes"] or "[]"),
            zones=[z for z in (m["zones"] or "").split(",") if z],
            score=m["score"],
            frames=m["frames"],
            snapshot_sha256=m["snapshot_sha256"],
            messages=m["messages"],
            received_at=m["received_at"],
            reviewed_by=m["reviewed_by"],
            reviewed_at=m["reviewed_at"],
            keep=bool(m["keep"]),
            exports=m["exports"],
            labels=json.loads(m["labels"]) if m["labels"] is not None else None,
            labels_source=m["labels_source"],
            snapshot_boxes=json.loads(m["snapshot_boxes"]) if m["snapshot_boxes"] is not None else None,
            snapshot_source=m["snapshot_source"],
            snapshot_wanted=m["snapshot_wanted"],
            snapshot_width_px=m["snapshot_width_px"],
            snapshot_height_px=m["snapshot_height_px"],
            snapshot_fallback=m["snapshot_fallback"],
        )


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Event]
    total: int
    offset: int
    limit: int


class EventStore:
    """Reads and review actions; the ingest path writes through :func:`upsert_events`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine, metadata)

    def search(
        self, f: EventFilter, *, offset: int = 0, limit: int = 50, order: Literal["desc", "asc"] = "desc"
    ) -> Page:
        where = and_(True, *f.clauses())
        key = events.c.start.desc() if order == "desc" else events.c.start.asc()
        q = select(events).where(where).order_by(key, events.c.id.desc()).offset(offset).limit(limit)
        with self.engine.connect() as conn:
            rows = [Event.from_row(r) for r in conn.execute(q)]
            total = conn.execute(select(func.count()).select_from(events).where(where)).scalar_one()
        return Page(rows, int(total), offset, limit)

    def get(self, event_pk: int, communes: frozenset[str] | None) -> Event | None:
        """The event, or None when missing or outside ``communes`` (indistinguishable on purpose)."""
        q = select(events).where(events.c.id == event_pk, *EventFilter(communes=communes).clauses())
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        return Event.from_row(r) if r is not None else None

    def get_many(self, ids: Sequence[int], communes: frozenset[str] | None) -> list[Event]:
        q = (
            select(events)
            .where(events.c.id.in_(list(ids)), *EventFilter(communes=communes).clauses())
            .order_by(events.c.start)
        )
        with self.engine.connect() as conn:
            return [Event.from_row(r) for r in conn.execute(q)]

    def neighbours(self, ev: Event, n: int = 3) -> tuple[list[Event], list[Event]]:
        """Up to ``n`` events of the same camera before and after this one."""
        c = events.c
        before = (
            select(events)
            .where(c.device == ev.device, or_(c.start < ev.start, and_(c.start == ev.start, c.id < ev.id)))
            .order_by(c.start.desc(), c.id.desc())
            .limit(n)
        )
        after = (
            select(events)
            .where(c.device == ev.device, or_(c.start > ev.start, and_(c.start == ev.start, c.id > ev.id)))
            .order_by(c.start.asc(), c.id.asc())
            .limit(n)
        )
        with self.engine.connect() as conn:
            b = [Event.from_row(r) for r in conn.execute(before)]
            a = [Event.from_row(r) for r in conn.execute(after)]
        return list(reversed(b)), a

    def day(self, device: str, day_start: float, day_end: float) -> list[Event]:
        """A camera's events overlapping one day, for the timeline."""
        c = events.c
        q = (
            select(events)
            .where(c.device == device, c.start < day_end, c.last_ts >= day_start)
            .order_by(c.start)
            .limit(5000)
        )
        with self.engine.connect() as conn:
            return [Event.from_row(r) for r in conn.execute(q)]

    def notes_of(self, event_pk: int) -> list[Note]:
        q = select(notes).where(notes.c.event == event_pk).order_by(notes.c.at, notes.c.id)
        with self.engine.connect() as conn:
            return [Note(r.id, r.author, r.at, r.text) for r in conn.execute(q)]

    def note_counts(self, event_pks: Sequence[int]) -> dict[int, int]:
        """Notes per event, for the events that have any (the list marks them)."""
        if not event_pks:
            return {}
        q = (
            select(notes.c.event, func.count())
            .where(notes.c.event.in_(list(event_pks)))
            .group_by(notes.c.event)
        )
        with self.engine.connect() as conn:
            return {int(e): int(n) for e, n in conn.execute(q)}

    def add_note(self, event_pk: int, author: str, text: str, at: float | None = None) -> Note:
        at = time.time() if at is None else at
        with self.engine.begin() as conn:
            res = conn.execute(notes.insert().values(event=event_pk, author=author, at=at, text=text))
            pk = res.inserted_primary_key
            assert pk is not None
        return Note(int(pk[0]), author, at, text)

    def set_reviewed(self, event_pk: int, by: str | None, at: float | None = None) -> None:
        """Mark reviewed by ``by`` (None: back to unreviewed)."""
        values: dict[str, Any] = {
            "reviewed_by": by,
            "reviewed_at": (time.time() if at is None else at) if by else None,
        }
        with self.engine.begin() as conn:
            conn.execute(update(events).where(events.c.id == event_pk).values(**values))

    def set_keep(self, event_pk: int, keep: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(events).where(events.c.id == event_pk).values(keep=int(keep)))

    def mark_exported(self, conn: Connection, ids: Sequence[int]) -> None:
        conn.execute(update(events).where(events.c.id.in_(list(ids))).values(exports=events.c.exports + 1))

    def expired(self, before: float, limit: int = 1000) -> list[tuple[int, str | None]]:
        """Events that ended before ``before`` and are neither kept nor exported: (id, snapshot)."""
        c = events.c
        q = (
            select(c.id, c.snapshot_sha256)
            .where(c.last_ts < before, c.keep == 0, c.exports == 0)
            .order_by(c.start)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(r.id, r.snapshot_sha256) for r in conn.execute(q)]

    def delete(self, ids: Sequence[int]) -> int:
        with self.engine.begin() as conn:
            conn.execute(delete(notes).where(notes.c.event.in_(list(ids))))
            conn.execute(delete(event_notices).where(event_notices.c.event.in_(list(ids))))
            return int(conn.execute(delete(events).where(events.c.id.in_(list(ids)))).rowcount or 0)

    def label_todo(self, since: float, limit: int = 16) -> list[Event]:
        """Events first received after ``since`` whose snapshot the cloud has not labelled yet
        (none the board labels), newest first."""
        c = events.c
        q = (
            select(events)
            .where(
                c.received_at >= since,
                c.snapshot_sha256.is_not(None),
                or_(c.labels_source.is_(None), c.labels_source == "cloud"),
                or_(c.labelled_snapshots.is_(None), ~c.labelled_snapshots.contains(c.snapshot_sha256)),
            )
            .order_by(c.received_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Event.from_row(r) for r in conn.execute(q)]

    def set_cloud_labels(
        self, event_pk: int, sha256: str, labelled: Sequence[str], labels: list[dict[str, Any]] | None
    ) -> bool:
        """Store what the cloud found on the event's snapshots ``labelled`` (the current one,
        ``sha256``, among them); None: the current one could not be read (only marks them done).
        Changes nothing when the event has moved on to another snapshot or the board labels it
        meanwhile; True when stored."""
        c = events.c
        values: dict[str, Any] = {"labelled_snapshots": ",".join(labelled)}
        if labels is not None:
            values |= {"labels": _json(labels), "label_set": label_set(labels), "labels_source": "cloud"}
        q = (
            update(events)
            .where(
                c.id == event_pk,
                c.snapshot_sha256 == sha256,
                or_(c.labels_source.is_(None), c.labels_source == "cloud"),
            )
            .values(**values)
        )
        with self.engine.begin() as conn:
            return bool(conn.execute(q).rowcount)

    def notified(self, event_pk: int) -> list[dict[str, Any]]:
        """The police notification rules that told of the event: rule, at, label, confidence,
        notifiers (the event page says who was told; ``cloud.events.announce`` writes them)."""
        c = event_notices.c
        q = select(c.rule, c.at, c.label, c.confidence, c.notifiers).where(c.event == event_pk).order_by(c.id)
        with self.engine.connect() as conn:
            return [
                {**r._mapping, "notifiers": [n for n in r.notifiers.split(",") if n]} for r in conn.execute(q)
            ]

    def snapshot_in_use(self, sha256: str) -> bool:
        q = select(func.count()).select_from(events).where(events.c.snapshot_sha256 == sha256)
        with self.engine.connect() as conn:
            return bool(conn.execute(q).scalar_one())

    def snapshot_visible(self, sha256: str, communes: frozenset[str] | None) -> Event | None:
        """An event in scope that shows this snapshot (so the picture may be served), else None."""
        q = (
            select(events)
            .where(events.c.snapshot_sha256 == sha256, *EventFilter(communes=communes).clauses())
            .limit(1)
        )
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        return Event.from_row(r) if r is not None else None
