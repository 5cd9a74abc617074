"""Deliver notices in the background: a queue and a task per notifier, retries with back-off.

``submit`` never waits and never raises, so neither the evaluator nor ingest can be slowed
by a dead webhook or a slow mail server; one slow channel does not delay the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field

from cloud.inventory import Inventory
from cloud.notify.base import Notifier, SendError
from cloud.notify.messages import Language, Notice, render

log = logging.getLogger(__name__)


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
    queue: deque[Notice] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stats: ChannelStats = field(default_factory=ChannelStats)
    task: asyncio.Task[None] | None = None
    busy: bool = False


class Dispatcher:
    def __init__(self, notifiers: list[Notifier], inventory: Inventory, language: Language = "vi") -> None:
        self.inventory = inventory
        self.language: Language = language
        self._channels = [_Channel(n) for n in notifiers]

    @property
    def stats(self) -> dict[str, ChannelStats]:
        return {c.notifier.name: c.stats for c in self._channels}

    def start(self) -> None:
        for c in self._channels:
            if c.task is None:
                c.task = asyncio.create_task(self._run(c), name=f"notify-{c.notifier.name}")

    def submit(self, notice: Notice) -> None:
        """Queue a notice on every channel; returns at once."""
        for c in self._channels:
            if len(c.queue) >= c.notifier.retry.queue_max:
                dropped = c.queue.popleft()
                c.stats.dropped += 1
                log.error(
                    "notifier %s: queue full, dropped the notice about %s",
                    c.notifier.name,
                    dropped.key,
                    extra={"notifier": c.notifier.name, "alert_id": dropped.alert_id},
                )
            c.queue.append(notice)
            c.wake.set()

    def idle(self) -> bool:
        return all(not c.queue and not c.busy for c in self._channels)

    async def wait_idle(self, timeout_s: float) -> bool:
        """For tests and orderly stops: True once every queue is empty."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.idle():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self, flush_s: float = 2.0) -> None:
        await self.wait_idle(flush_s)
        for c in self._channels:
            if c.task is not None:
                c.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await c.task
                c.task = None
            await c.notifier.aclose()

    async def _run(self, c: _Channel) -> None:
        while True:
            if not c.queue:
                c.wake.clear()
                await c.wake.wait()
                continue
            c.busy = True
            try:
                await self._deliver(c, c.queue.popleft())
            finally:
                c.busy = False

    async def _deliver(self, c: _Channel, notice: Notice) -> None:
        n, retry = c.notifier, c.notifier.retry
        message = render(notice, self.inventory, self.language)
        delay = retry.initial_s
        where = {"notifier": n.name, "channel": n.kind, "alert_id": notice.alert_id, "alert": notice.key}
        for attempt in range(1, retry.attempts + 1):
            try:
                await asyncio.wait_for(n.send(notice, message), retry.timeout_s)
            except Exception as exc:
                c.stats.failed_attempts += 1
                c.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                permanent = isinstance(exc, SendError) and exc.permanent
                if permanent or attempt == retry.attempts:
                    c.stats.given_up += 1
                    log.error(
                        "notifier %s gave up the %s notice of alert #%d after %d attempt(s): %s",
                        n.name,
                        notice.kind,
                        notice.alert_id,
                        attempt,
                        c.stats.last_error,
                        extra=where,
                    )
                    return
                log.warning(
                    "notifier %s: attempt %d failed (%s); retrying in %.1f s",
                    n.name,
                    attempt,
                    c.stats.last_error,
                    delay,
                    extra=where,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, retry.max_s)
                continue
            c.stats.sent += 1
            log.info(
                "notifier %s sent the %s notice of alert #%d",
                n.name,
                notice.kind,
                notice.alert_id,
                extra=where,
            )
            return
