"""Notices waiting for delivery, in SQL: an alert's notice survives a cloud restart.

The evaluator writes a notice row per channel in the same transaction that records the
alert change (``AlertStore.apply(..., then=...)``), so "alert opened" and "someone will be
told" are one fact: a crash between them cannot open an alert that nobody hears of, nor
announce one twice. Rows are kept after delivery (state ``sent`` or ``failed``, with the
attempts and the last error) as the notification log, and pruned after ``keep_s``.

Several cloud workers may deliver: a row is claimed by moving its ``next_at`` past the
attempt's timeout in a conditional UPDATE, so two workers never send the same row at
once. A claim whose worker died lapses and another worker sends the row: delivery is at
least once (a worker killed between a successful send and recording it sends nothing
twice itself, but its successor will).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)

from cloud.notify.messages import Notice
from cloud.notify.queue import Outcome, Queued
from cloud.storage.schema import ensure_schema

metadata = MetaData()

notice_outbox = Table(
    "notice_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("alert_id", Integer, nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),  # the Notice as JSON
    Column("created_at", Float, nullable=False),
    Column("next_at", Float, nullable=False),  # due, or claimed until
    Column("attempts", Integer, nullable=False, default=0),
    Column("state", String(8), nullable=False),  # pending | sent | failed
    Column("done_at", Float),
    Column("last_error", Text, nullable=False, default=""),
    Index("ix_notice_outbox_queue", "state", "channel", "id"),
)


def _dump(notice: Notice) -> str:
    return json.dumps(asdict(notice), ensure_ascii=False)


def _load(payload: str) -> Notice:
    d: dict[str, Any] = json.loads(payload)
    d["members"] = tuple(d.get("members", ()))
    return Notice(**d)


class SqlNoticeQueue:
    """The durable ``NoticeQueue``; blocking SQL runs in a thread, never on the event loop."""

    def __init__(self, engine: Engine, keep_s: float = 30 * 86400.0) -> None:
        self.engine = engine
        self.keep_s = keep_s
        ensure_schema(engine, metadata)

    # ------------------------------------------------------------------ writing (evaluator thread)
    @staticmethod
    def add(conn: Connection, channels: list[str], notice: Notice, at: float) -> None:
        """Queue ``notice`` for every channel inside the caller's transaction."""
        if not channels:
            return
        payload = _dump(notice)
        conn.execute(
            notice_outbox.insert(),
            [
                {
                    "channel": ch,
                    "alert_id": notice.alert_id,
                    "kind": notice.kind,
                    "payload": payload,
                    "created_at": at,
                    "next_at": at,
                    "attempts": 0,
                    "state": "pending",
                    "last_error": "",
                }
                for ch in channels
            ],
        )

    def put(self, channel: str, notice: Notice, at: float) -> None:
        with self.engine.begin() as conn:
            self.add(conn, [channel], notice, at)

    # ------------------------------------------------------------------ delivery
    async def head(self, channel: str) -> Queued | None:
        return await asyncio.to_thread(self._head, channel)

    def _head(self, channel: str) -> Queued | None:
        q = notice_outbox.c
        with self.engine.begin() as conn:
            row = conn.execute(
                select(q.id, q.payload, q.attempts, q.next_at)
                .where(q.state == "pending", q.channel == channel)
                .order_by(q.id)
                .limit(1)
            ).one_or_none()
        if row is None:
            return None
        return Queued(row.id, _load(row.payload), row.attempts, row.next_at)

    async def claim(self, item: Queued, now: float, hold_s: float) -> bool:
        """Take the row for one attempt of at most ``hold_s``; False when another worker has it."""
        return await asyncio.to_thread(self._claim, item, now, hold_s)

    def _claim(self, item: Queued, now: float, hold_s: float) -> bool:
        q = notice_outbox.c
        with self.engine.begin() as conn:
            res = conn.execute(
                update(notice_outbox)
                .where(q.id == item.id, q.state == "pending", q.next_at == item.next_at)
                .values(next_at=now + hold_s)
            )
        return res.rowcount == 1

    async def settle(
        self, channel: str, item: Queued, outcome: Outcome, at: float, next_at: float = 0.0, error: str = ""
    ) -> None:
        await asyncio.to_thread(self._settle, item, outcome, at, next_at, error)

    def _settle(self, item: Queued, outcome: Outcome, at: float, next_at: float, error: str) -> None:
        q = notice_outbox.c
        values: dict[str, Any] = {"attempts": item.attempts + 1}
        if error:  # kept after a later success: "sent at the 4th attempt, after HTTP 503"
            values["last_error"] = error[:300]
        if outcome == "retry":
            values["next_at"] = next_at
        else:
            values.update(state=outcome, done_at=at)
        with self.engine.begin() as conn:
            conn.execute(update(notice_outbox).where(q.id == item.id).values(**values))
            if outcome == "sent" and item.id % 100 == 0:  # now and then, forget the old log
                conn.execute(delete(notice_outbox).where(q.created_at < at - self.keep_s))

    async def pending(self, channels: list[str]) -> int:
        return await asyncio.to_thread(self._pending, channels)

    def _pending(self, channels: list[str]) -> int:
        q = notice_outbox.c
        with self.engine.begin() as conn:
            n = conn.execute(
                select(func.count()).where(q.state == "pending", q.channel.in_(channels))
            ).scalar_one()
        return int(n)

    def log(self, alert_id: int) -> list[dict[str, Any]]:
        """What was sent about one alert, on which channel, with the attempts (API, tests)."""
        q = notice_outbox.c
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(q.channel, q.kind, q.state, q.attempts, q.created_at, q.done_at, q.last_error)
                .where(q.alert_id == alert_id)
                .order_by(q.id)
            ).all()
        return [dict(r._mapping) for r in rows]
