"""The plug-in shape every notifier implements: one ``send`` that raises when it failed.

Retries, back-off, queueing and logging live in ``dispatch``, so a notifier is only the
call to its service (as Uptime Kuma's notification providers are).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from sqlalchemy import Connection

from cloud.notify.messages import Message, Notice
from cloud.notify.settings import RetryConfig


class SendError(Exception):
    """A send that failed; ``permanent`` ones (bad token, refused address) are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class ChannelTrouble(Protocol):
    """How a channel that cannot send (Zalo's token refused) tells the other channels."""

    def queue(self, conn: Connection, channel: str, notice: Notice) -> None:
        """Queue ``notice`` for every channel but ``channel``, inside the caller's transaction."""

    def wake(self) -> None:
        """Deliver what was queued (after the commit)."""


class Notifier(ABC):
    #: Channel type, for logs and metrics: webhook, email, telegram, zalo.
    kind: str = ""

    def __init__(self, name: str, retry: RetryConfig) -> None:
        self.name = name
        self.retry = retry

    @abstractmethod
    async def send(self, notice: Notice, message: Message) -> None:
        """Deliver one notice; raise ``SendError`` (or any exception) when it did not arrive."""

    def start(self) -> None:
        """Start the channel's own background work (token renewal); the dispatcher calls it."""
        return None

    @property
    def audience(self) -> str:
        """Who receives what this channel sends (the audit trail says who was told)."""
        return ""

    @property
    def problem(self) -> str | None:
        """Why the channel cannot send now (readiness, metrics); None while it can."""
        return None

    async def aclose(self) -> None:
        """Release connections; the dispatcher calls it on stop."""
        return None
