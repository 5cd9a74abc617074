"""Deliver notices in the background: a task per notifier, retries with back-off.

Notices wait in a ``NoticeQueue``: in memory by default, in SQL when the cloud runs
(``cloud.storage.notice_outbox``), so a restart neither loses a notice nor sends it
twice. Neither the evaluator nor ingest ever waits for a channel: ``submit`` and
``wake`` return at once, one slow channel does not delay the others, and within a
channel notices go out in order (a resolve never overtakes its open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from cloud.inventory import Inventory
from cloud.notify.base import Notifier, SendError
from cloud.notify.messages import Language, Notice, render
from cloud.notify.queue import MemoryNoticeQueue, NoticeQueue, Queued

log = logging.getLogger(__name__)

#: How often an idle channel looks for work it was not woken for (another worker's, retries).
POLL_S = 5.0


#: ``(notifier, notice, "sent" | "failed", error)`` once a notice is settled for one channel.
Settled = Callable[[Notifier, Notice, Literal["sent", "failed"], str], Awaitable[None]]


def _about(notice: Notice) -> str:
    """For logs: alert #12, or the key (channel:zalo) of a notice about an alert channel itself."""
    return f"alert #{notice.alert_id}" if notice.alert_id else notice.key


@dataclass(slots=True)
class ChannelStats:
    sent: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    dropped: int = 0
    last_error: str = ""


@dataclass(slots=True)
class _Channel:
    notifier: Notifier
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stats: ChannelStats = field(default_factory=ChannelStats)
    task: asyncio.Task[None] | None = None
    busy: bool = False


class Dispatcher:
    def __init__(
        self,
        notifiers: list[Notifier],
        inventory: Inventory,
        language: Language = "vi",
        queue: NoticeQueue | None = None,
        public_url: str = "",
        on_settled: Settled | None = None,
    ) -> None:
        self.inventory = inventory
        #: told of every notice sent or given up (the audit trail of police event notices)
        self.on_settled = on_settled
        self.language: Language = language
        self.public_url = public_url  # notices link to the alert's page there
        self._channels = [_Channel(n) for n in notifiers]
        limit = min((n.retry.queue_max for n in notifiers), default=1000)
        self.queue: NoticeQueue = queue if queue is not None else MemoryNoticeQueue(limit)
        self._stopping = False

    @property
    def names(self) -> list[str]:
        return [c.notifier.name for c in self._channels]

    @property
    def stats(self) -> dict[str, ChannelStats]:
        if isinstance(self.queue, MemoryNoticeQueue):
            for c in self._channels:
                c.stats.dropped = self.queue.dropped.get(c.notifier.name, 0)
        return {c.notifier.name: c.stats for c in self._channels}

    def problems(self) -> dict[str, str | None]:
        """Each channel -> None while it can send, else why not (readiness, metrics)."""
        return {c.notifier.name: c.notifier.problem for c in self._channels}

    def start(self) -> None:
        self._stopping = False
        for c in self._channels:
            if c.task is None:
                c.notifier.start()
                c.task = asyncio.create_task(self._run(c), name=f"notify-{c.notifier.name}")

    def submit(self, notice: Notice) -> None:
        """Queue a notice on every channel (memory queue: returns at once)."""
        now = time.time()
        for c in self._channels:
            self.queue.put(c.notifier.name, notice, now)
        self.wake()

    def wake(self) -> None:
        """New notices were queued elsewhere (by the evaluator, in SQL): look now."""
        for c in self._channels:
            c.wake.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """For tests and orderly stops: True once nothing waits and nothing is being sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(c.busy for c in self._channels) or await self.queue.pending(self.names):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self, flush_s: float = 2.0) -> None:
        with contextlib.suppress(Exception):
            await self.wait_idle(flush_s)
        # Python 3.11's wait_for can swallow a cancellation that lands as its wait ends;
        # the flag makes the channel loop end anyway.
        self._stopping = True
        for c in self._channels:
            if c.task is not None:
                c.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await c.task
                c.task = None
            await c.notifier.aclose()

    async def _run(self, c: _Channel) -> None:
        name = c.notifier.name
        while not self._stopping:
            c.wake.clear()
            try:
                item = await self.queue.head(name)
            except Exception as exc:  # the database is briefly unavailable: try again soon
                log.error("notifier %s cannot read its queue (%s); retrying", name, exc)
                item = None
            now = time.time()
            if item is None or item.next_at > now:
                wait = POLL_S if item is None else min(POLL_S, item.next_at - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(c.wake.wait(), wait)
                continue
            c.busy = True
            try:
                if await self.queue.claim(item, now, c.notifier.retry.timeout_s + 5.0):
                    try:
                        await self._attempt(c, item)
                    except asyncio.CancelledError:  # stopping mid-send: hand it back, do not hold it
                        await self.queue.settle(name, item, "retry", now, next_at=now)
                        raise
            except Exception as exc:
                log.error("notifier %s could not record a delivery (%s); retrying", name, exc)
                await asyncio.sleep(1.0)
            finally:
                c.busy = False

    async def _attempt(self, c: _Channel, item: Queued) -> None:
        n, retry, notice = c.notifier, c.notifier.retry, item.notice
        attempt = item.attempts + 1
        where = {"notifier": n.name, "channel": n.kind, "alert_id": notice.alert_id, "alert": notice.key}
        try:
            await asyncio.wait_for(
                n.send(notice, render(notice, self.inventory, self.language, self.public_url)),
                retry.timeout_s,
            )
        except Exception as exc:
            c.stats.failed_attempts += 1
            c.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
            permanent = isinstance(exc, SendError) and exc.permanent
            now = time.time()
            if permanent or attempt >= retry.attempts:
                c.stats.given_up += 1
                log.error(
                    "notifier %s gave up the %s notice of %s after %d attempt(s): %s",
                    n.name,
                    notice.kind,
                    _about(notice),
                    attempt,
                    c.stats.last_error,
                    extra=where,
                )
                await self.queue.settle(n.name, item, "failed", now, error=c.stats.last_error)
                await self._settled(n, notice, "failed", c.stats.last_error)
                return
            delay = min(retry.initial_s * 2 ** (attempt - 1), retry.max_s)
            log.warning(
                "notifier %s: attempt %d failed (%s); retrying in %.1f s",
                n.name,
                attempt,
                c.stats.last_error,
                delay,
                extra=where,
            )
            await self.queue.settle(n.name, item, "retry", now, next_at=now + delay, error=c.stats.last_error)
            return
        c.stats.sent += 1
        log.info("notifier %s sent the %s notice of %s", n.name, notice.kind, _about(notice), extra=where)
        await self.queue.settle(n.name, item, "sent", time.time())
        await self._settled(n, notice, "sent", "")

    async def _settled(
        self, n: Notifier, notice: Notice, outcome: Literal["sent", "failed"], error: str
    ) -> None:
        if self.on_settled is None:
            return
        try:
            await self.on_settled(n, notice, outcome, error)
        except Exception as exc:  # the record failing must not resend or stop the channel
            log.error(
                "notifier %s: the %s notice of %s was not recorded (%s)", n.name, outcome, _about(notice), exc
            )
