"""Where notices wait for their channel: in memory, or durably in SQL (``SqlNoticeQueue``).

Per channel the queue is first in, first out, with the head held back while it waits for
a retry: a resolve must not overtake its open. The dispatcher asks for the head, tries it,
and settles it as sent, to retry at a time, or failed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from cloud.notify.messages import Notice

Outcome = Literal["sent", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Queued:
    id: int
    notice: Notice
    attempts: int = 0  # attempts made so far
    next_at: float = 0.0  # not before (epoch s)


class NoticeQueue(Protocol):
    def put(self, channel: str, notice: Notice, at: float) -> None:
        """Queue one notice for one channel; must not block the event loop."""

    async def head(self, channel: str) -> Queued | None:
        """The oldest unsettled notice of the channel (due or not)."""

    async def claim(self, item: Queued, now: float, hold_s: float) -> bool:
        """Take the head for one attempt of at most ``hold_s``; False when another process has it."""

    async def settle(
        self, channel: str, item: Queued, outcome: Outcome, at: float, next_at: float = 0.0, error: str = ""
    ) -> None:
        """Record what became of an attempt."""

    async def pending(self, channels: list[str]) -> int:
        """Notices not yet settled as sent or failed."""


class MemoryNoticeQueue:
    """For tests and tools: lost when the process ends, bounded per channel."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.dropped: dict[str, int] = {}
        self._q: dict[str, deque[Queued]] = {}
        self._ids = 0

    def put(self, channel: str, notice: Notice, at: float) -> None:
        q = self._q.setdefault(channel, deque())
        if len(q) >= self.limit:
            q.popleft()
            self.dropped[channel] = self.dropped.get(channel, 0) + 1
        self._ids += 1
        q.append(Queued(self._ids, notice, 0, at))

    async def head(self, channel: str) -> Queued | None:
        q = self._q.get(channel)
        return q[0] if q else None

    async def claim(self, item: Queued, now: float, hold_s: float) -> bool:
        return True

    async def settle(
        self, channel: str, item: Queued, outcome: Outcome, at: float, next_at: float = 0.0, error: str = ""
    ) -> None:
        q = self._q.get(channel)
        if not q or q[0].id != item.id:
            return
        if outcome == "retry":
            q[0] = replace(item, attempts=item.attempts + 1, next_at=next_at)
        else:
            q.popleft()
        await asyncio.sleep(0)

    async def pending(self, channels: list[str]) -> int:
        return sum(len(self._q.get(c, ())) for c in channels)
