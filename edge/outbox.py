"""Durable outbox: every message is written here before it is published.

A row is deleted only when the broker's PUBACK for it arrives, so a broker outage, an
uplink outage, a ``kill -9`` or a power cut between production and acknowledgement
loses nothing: the row is still on disk and goes out again (at-least-once; the cloud
drops duplicates by node, session and seq). SQLite in WAL mode with ``synchronous=FULL``
makes each committed row survive power loss, which is the normal failure of a board on
a village mains supply.

The outbox is bounded (count, bytes, age) because a board's SD card is small and a week
of camera snapshots would fill it. When it must drop, it drops the oldest messages of the
lowest priority first (health, then metrics, then events and snapshots), keeps the drop
counts on disk per priority, and logs what it dropped and why.

All methods must be called from one thread (the agent's event loop).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Literal

from edge.clock import shift_times

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    priority INTEGER NOT NULL,
    is_json  INTEGER NOT NULL,
    retain   INTEGER NOT NULL DEFAULT 0,
    session  TEXT    NOT NULL,
    link_gen INTEGER NOT NULL,
    created  REAL    NOT NULL,
    clock_offset REAL,
    boot     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_drop_order ON outbox (priority, id);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created);
CREATE TABLE IF NOT EXISTS drops (
    priority INTEGER PRIMARY KEY,
    count    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value REAL NOT NULL
);
"""

#: A stamp kept on disk further ahead of the board's clock than this is not trusted (see
#: ``Outbox.status_stamp``): a clock once set years ahead must not hold every later stamp there.
STAMP_TRUST_AHEAD_S = 86_400.0

#: How often (seconds) a continuing stream of drops is summarised in the log.
DROP_LOG_INTERVAL_S = 30.0


class Priority(IntEnum):
    """Drop order: the lowest value goes first when the outbox is full."""

    HEALTH = 0
    METRICS = 1
    EVENT = 2  # motion events and their snapshots

    @property
    def label(self) -> str:
        return {0: "health", 1: "metrics", 2: "event/snapshot"}[self.value]


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    topic: str
    payload: bytes
    priority: Priority
    is_json: bool
    retain: bool
    #: Agent session that produced the row.
    session: str
    #: Link generation the row was produced under; -1 when produced while offline.
    link_gen: int
    #: Unix time of production.
    created: float
    #: Stamped by a clock not yet synchronised: held back until ``correct_times`` fixes it.
    held: bool = False


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_s: float
    dropped: int
    dropped_by_priority: dict[Priority, int] = field(default_factory=dict)


class Outbox:
    """SQLite-backed FIFO with priority-aware bounds. See the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        max_messages: int = 200_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 7 * 24 * 3600,
        sync: Literal["full", "normal"] = "full",
        commit_interval_s: float = 0.0,
    ) -> None:
        self.path = path
        #: 0: every call commits (durable when it returns). Above 0: calls join one transaction
        #: committed at most this many seconds after it opened (``flush``) or at the next event or
        #: snapshot: one commit's handful of page writes stands for a minute of health and metrics,
        #: which is what spares the SD card.
        self.commit_interval_s = commit_interval_s
        self._open_since: float | None = None
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db, count, size = self._open(sync)
        except sqlite3.DatabaseError as exc:
            # A worn SD card can corrupt the file. An agent that refuses to start sends
            # nothing at all; keep the evidence aside and start with an empty outbox.
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{path}{suffix}")
                if src.exists():
                    src.rename(Path(f"{aside}{suffix}"))
            log.error(
                "outbox %s is unreadable (%s): moved it to %s and started with an empty outbox",
                path,
                exc,
                aside,
                extra={"outbox": str(path)},
            )
            self._db, count, size = self._open(sync)
        self._count: int = count
        self._bytes: int = size
        self._dropped: dict[Priority, int] = {
            Priority(p): c for p, c in self._db.execute("SELECT priority, count FROM drops")
        }
        self._last_stamp = 0.0  # the last status stamp handed out (see status_stamp)
        # Drops not yet logged, and when the last drop log line was written.
        self._unlogged: dict[tuple[Priority, str], int] = {}
        self._last_drop_log = 0.0

    def _open(self, sync: str) -> tuple[sqlite3.Connection, int, int]:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=True)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
            db.executescript(_SCHEMA)
            have = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
            for column, kind in (("clock_offset", "REAL"), ("boot", "TEXT")):
                if column not in have:  # an outbox written by an agent before edge/clock.py
                    db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {kind}")
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db, int(count), int(size)

    # -- writing ---------------------------------------------------------------------

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        priority: Priority,
        is_json: bool,
        session: str,
        link_gen: int,
        created: float | None = None,
        retain: bool = False,
        unsynced: tuple[float, str] | None = None,
    ) -> int:
        """Store one message; return its row id. Committed when this returns, unless
        ``commit_interval_s`` groups commits (then at the next ``flush``, or at once for an
        event or a snapshot).

        ``unsynced`` is (wall minus boot-time clock, boot id) for a message stamped before the
        clock was synchronised: it is held until :meth:`correct_times` (edge/clock.py)."""
        created = time.time() if created is None else created
        offset, boot = unsynced if unsynced is not None else (None, None)
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, priority, is_json, retain, session, link_gen, created,"
                " clock_offset, boot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    topic,
                    payload,
                    int(priority),
                    int(is_json),
                    int(retain),
                    session,
                    link_gen,
                    created,
                    *(offset, boot),
                ),
            )
            self._count += 1
            self._bytes += len(payload)
            self._enforce_size()
        if priority >= Priority.EVENT:
            self.flush()  # an event or a snapshot is committed at once, whatever the interval
        self._log_drops()
        rowid = cur.lastrowid
        assert rowid is not None
        return rowid

    def delete(self, ids: Iterable[int]) -> int:
        """Forget acknowledged rows; unknown ids (already dropped) are ignored."""
        ids = list(ids)
        if not ids:
            return 0
        removed = 0
        with self._tx():
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                n, size = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE id IN ({marks})",
                    chunk,
                ).fetchone()
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
                removed += n
                self._count -= n
                self._bytes -= size
        return removed

    def expire(self, now: float | None = None) -> int:
        """Drop rows older than ``max_age_s``; return how many."""
        cutoff = (time.time() if now is None else now) - self.max_age_s
        with self._tx():
            per = self._db.execute(
                "SELECT priority, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
                " WHERE created < ? AND clock_offset IS NULL GROUP BY priority",
                (cutoff,),
            ).fetchall()
            if not per:
                return 0
            # held rows carry a wrong clock's time: their age is known once corrected
            self._db.execute("DELETE FROM outbox WHERE created < ? AND clock_offset IS NULL", (cutoff,))
            total = 0
            for prio, n, size in per:
                self._count -= n
                self._bytes -= size
                total += n
                self._count_drop(Priority(prio), n, f"older than max_age_s={self.max_age_s:g}")
        self._log_drops()
        return total

    def held(self) -> int:
        """How many messages wait for the clock to be synchronised."""
        row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE clock_offset IS NOT NULL").fetchone()
        return int(row[0])

    def correct_times(self, boot: str, offset: float) -> tuple[int, int]:
        """The clock is right now (wall minus boot-time clock is ``offset``): move every held
        stamp of boot ``boot`` by what its clock was off and release it; drop held messages of
        other boots, which cannot be placed. Return (corrected, dropped)."""
        rows = self._db.execute(
            "SELECT id, payload, priority, is_json, created, clock_offset, boot FROM outbox"
            " WHERE clock_offset IS NOT NULL ORDER BY id"
        ).fetchall()
        corrected = dropped = 0
        with self._tx():
            for rid, payload, prio, is_json, created, row_offset, row_boot in rows:
                if row_boot != boot:
                    self._db.execute("DELETE FROM outbox WHERE id = ?", (rid,))
                    self._count -= 1
                    self._bytes -= len(payload)
                    reason = "stamped before a reboot by a clock never synchronised"
                    self._count_drop(Priority(prio), 1, reason)
                    dropped += 1
                    continue
                delta = offset - row_offset
                if is_json:
                    doc = shift_times(json.loads(payload), delta)
                    new = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
                    self._bytes += len(new) - len(payload)
                    payload = new
                self._db.execute(
                    "UPDATE outbox SET payload = ?, created = ?, clock_offset = NULL, boot = NULL"
                    " WHERE id = ?",
                    (payload, created + delta, rid),
                )
                corrected += 1
        self._log_drops()
        return corrected, dropped

    def status_stamp(self, now: float | None = None) -> float:
        """The next status stamp: the clock, but always after every stamp handed out before.

        Status messages are ordered by their stamp (docs/protocol.md, "Status"). Kept on disk,
        so stamps keep growing across agent restarts and a clock stepped back (a board whose
        fake hardware clock restores an older time at boot, or an NTP correction); a stamp more
        than a day ahead of the clock is not trusted (the clock was wrong once, far ahead).
        """
        now = time.time() if now is None else now
        kept = 0.0
        with contextlib.suppress(sqlite3.Error):  # then at least the stamps of this run grow
            row = self._db.execute("SELECT value FROM meta WHERE key = 'status_stamp'").fetchone()
            kept = float(row[0]) if row else 0.0
        last = max(self._last_stamp, kept if kept <= now + STAMP_TRUST_AHEAD_S else 0.0)
        stamp = round(max(now, last + 0.001), 3)
        self._last_stamp = stamp
        try:
            with self._tx():
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('status_stamp', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (stamp,),
                )
        except sqlite3.Error as exc:  # a full or failing card must not keep the agent off the broker
            log.warning("cannot keep the status stamp in the outbox (%s); it may repeat after a restart", exc)
        return stamp

    # -- reading ---------------------------------------------------------------------

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows with an id above ``row_id``, oldest first (publish order)."""
        cur = self._db.execute(
            "SELECT id, topic, payload, priority, is_json, retain, session, link_gen, created,"
            " clock_offset IS NOT NULL FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (row_id, limit),
        )
        return [
            Row(r[0], r[1], bytes(r[2]), Priority(r[3]), bool(r[4]), bool(r[5]), r[6], r[7], r[8], bool(r[9]))
            for r in cur
        ]

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def stats(self, now: float | None = None) -> OutboxStats:
        row = self._db.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
        oldest = max(0.0, (time.time() if now is None else now) - row[0]) if row else 0.0
        return OutboxStats(
            depth=self._count,
            bytes=self._bytes,
            oldest_s=oldest,
            dropped=sum(self._dropped.values()),
            dropped_by_priority=dict(self._dropped),
        )

    def flush(self) -> None:
        """Commit the open group transaction, if any (the agent calls it every interval)."""
        if self._open_since is not None:
            self._open_since = None
            self._db.execute("COMMIT")

    def close(self) -> None:
        self.flush()
        self._db.close()

    # -- internals -------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[None]:
        if self.commit_interval_s <= 0:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return
        if self._open_since is None:
            self._db.execute("BEGIN IMMEDIATE")
            self._open_since = time.monotonic()
        self._db.execute("SAVEPOINT call")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO call")
            self._db.execute("RELEASE call")
            raise
        self._db.execute("RELEASE call")
        if time.monotonic() - self._open_since >= self.commit_interval_s:
            self.flush()

    def _enforce_size(self) -> None:
        while self._count > self.max_messages or self._bytes > self.max_bytes:
            over_count = self._count - self.max_messages
            batch = max(1, min(over_count, 256)) if over_count > 0 else 16
            victims = self._db.execute(
                "SELECT id, priority, LENGTH(payload) FROM outbox ORDER BY priority, id LIMIT ?", (batch,)
            ).fetchall()
            if not victims:
                return
            for vid, prio, size in victims:
                if self._count <= self.max_messages and self._bytes <= self.max_bytes:
                    break
                self._db.execute("DELETE FROM outbox WHERE id = ?", (vid,))
                self._count -= 1
                self._bytes -= size
                reason = (
                    f"max_messages={self.max_messages}"
                    if self._count + 1 > self.max_messages
                    else f"max_bytes={self.max_bytes}"
                )
                self._count_drop(Priority(prio), 1, f"outbox full ({reason})")

    def _count_drop(self, priority: Priority, n: int, reason: str) -> None:
        self._dropped[priority] = self._dropped.get(priority, 0) + n
        self._db.execute(
            "INSERT INTO drops (priority, count) VALUES (?, ?)"
            " ON CONFLICT(priority) DO UPDATE SET count = count + excluded.count",
            (int(priority), n),
        )
        key = (priority, reason)
        self._unlogged[key] = self._unlogged.get(key, 0) + n

    def _log_drops(self) -> None:
        if not self._unlogged:
            return
        now = time.monotonic()
        if self._last_drop_log and now - self._last_drop_log < DROP_LOG_INTERVAL_S:
            return
        self._last_drop_log = now
        parts = [
            f"{n} {prio.label} message{'s' if n != 1 else ''} ({reason})"
            for (prio, reason), n in sorted(self._unlogged.items())
        ]
        by_prio = {p.label: n for p, n in sorted(self._dropped.items())}
        log.warning(
            "outbox dropped the oldest lowest-priority messages: %s; kept %d messages, %d bytes. "
            "The uplink or broker has been unreachable for long: check it, or raise the outbox limits",
            ", ".join(parts),
            self._count,
            self._bytes,
            extra={"dropped_total": by_prio, "outbox_depth": self._count},
        )
        self._unlogged.clear()


def messages(n: int) -> str:
    """``1 message`` / ``412 messages``, for log lines a technician reads."""
    return f"{n} message" if n == 1 else f"{n} messages"


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
