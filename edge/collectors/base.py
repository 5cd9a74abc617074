"""The plug-in contract between the runtime and a collector.

A collector produces data; besides ``run`` it may answer a few questions for the board's
control plane (edge/control), each with a safe default: take new options live
(``reconfigure``), say whether it is doing its job (``job_state``, for the last-known-good
check), and serve the ``snapshot``, ``poll`` and ``ping`` commands.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from wire import Point
from wire.topics import ID_PATTERN


class Sink(Protocol):
    """Where a collector hands its output. Calls return once the data is durable in the outbox."""

    def emit_metrics(self, points: Sequence[Point]) -> None:
        """One ``metrics`` message carrying ``points``."""

    def emit_event(self, event: Mapping[str, Any], jpeg: bytes | None = None) -> None:
        """One ``MotionEvent``: ``event`` holds its fields except the envelope (node, session,
        seq, ts), which the runtime fills. With ``jpeg``, the snapshot is sent first on
        ``snapshot/<event_id>`` and ``snapshot_sha256``/``snapshot_bytes`` are filled in."""

    def emit_snapshot(self, suffix: str, jpeg: bytes) -> None:
        """A JPEG on ``snapshot/<suffix>`` (e.g. the picture of a tampered camera, which a
        ``camera`` point then names by its SHA-256)."""


class CollectorOptions(BaseModel):
    """Options every collector has; plug-ins subclass this with their own fields."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Device id this collector reports on; defaults to the node id.",
    )

    def device_ids(self) -> list[str]:
        """Devices this collector reports on (a collector polling several APs lists them all)."""
        return [self.device] if self.device else []


@dataclass(frozen=True, slots=True)
class JobState:
    """Is a collector doing its job: True, False, or None while it cannot tell yet (a stream
    still opening, no poll finished yet). ``detail`` says what is wrong, for a technician."""

    ok: bool | None
    detail: str = ""


class Unsupported(Exception):
    """A command this collector cannot serve (a snapshot of an access point)."""


class Collector(abc.ABC):
    """Base of every plug-in. ``run`` loops until cancelled; an exception there is logged
    and the collector restarted after a pause by the runtime, so one flaky device does not
    stop the board's health or the other collectors."""

    Options: ClassVar[type[CollectorOptions]] = CollectorOptions

    def __init__(self, options: CollectorOptions, *, node: str) -> None:
        self.options = options
        self.node = node

    @property
    def device(self) -> str:
        return self.options.device or self.node

    @abc.abstractmethod
    async def run(self, sink: Sink) -> None:
        """Produce data into ``sink`` until cancelled."""

    def reconfigure(self, options: CollectorOptions) -> bool:
        """Take ``options`` while running and return True, or return False (the default) to be
        restarted with them. Called on the event loop, between two steps of ``run``."""
        return False

    def job_state(self) -> JobState:
        """Whether this collector is doing its job right now (default: always)."""
        return JobState(True)

    def addresses(self) -> dict[str, str]:
        """Device id -> host this collector talks to (for the ``ping`` command)."""
        return {}

    async def snapshot(self, device: str) -> bytes:
        """A JPEG of what the device sees now (``snapshot`` command)."""
        raise Unsupported(f"{type(self).__name__} takes no pictures")

    async def poll_now(self, device: str, sink: Sink) -> dict[str, Any]:
        """Read the device now, outside the schedule, emit the data and summarise it (``poll``)."""
        raise Unsupported(f"{type(self).__name__} cannot be polled on demand")
