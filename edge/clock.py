"""Is the board's wall clock right yet? And how to fix stamps taken before it was.

A Raspberry Pi has no battery-backed clock: it boots at 1970 or at the time of its last
shutdown (fake-hwclock) and is right only once NTP has synchronised it, which needs the
uplink. Anything stamped before then would land in the wrong hour or day at the cloud (or
before 2020, which the cloud refuses). So the agent asks, for every message it stores,
whether the clock can be trusted; when it cannot, the outbox keeps the offset between the
wall clock and the boot-time clock plus the kernel's boot id beside the message and holds
it back, and once the clock is synchronised every held stamp is moved by the difference
between that offset and the right one (:meth:`edge.outbox.Outbox.correct_times`). The
boot-time clock (``CLOCK_BOOTTIME``) runs steadily from boot whatever NTP does, so that
difference is exact for messages of the same boot; a message from an earlier boot that
never saw a synchronised clock cannot be placed and is dropped (counted and logged).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

#: A wall clock before this (2026-01-01 UTC, before this release) is certainly not set.
NOT_BEFORE = 1_767_225_600.0

#: adjtimex(2) returns TIME_ERROR while the kernel clock is not synchronised (STA_UNSYNC).
_TIME_ERROR = 5

#: JSON keys of the wire messages that hold a wall-clock time (envelope, points, events).
TIME_KEYS = frozenset({"ts", "start", "end"})

SyncCheck = Literal["kernel", "not_before"]


class _Timex(ctypes.Structure):
    # struct timex starts with ``unsigned int modes``; the rest (about 200 bytes) is padding
    # we never read. modes=0 asks without changing anything.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 256)]


def kernel_synced() -> bool | None:
    """The kernel's own verdict (set by timesyncd, chrony or ntpd); None where unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        state = int(libc.adjtimex(ctypes.byref(_Timex())))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def boot_id() -> str:
    """The kernel's random id of this boot: boot-time readings compare only within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def boottime() -> float:
    """Seconds since boot, steady whatever is done to the wall clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class SyncClock:
    """Says whether wall-clock stamps can be trusted; once they can, for the rest of the run.

    ``check="kernel"`` (for boards running timesyncd or chrony) trusts the clock when
    adjtimex reports it synchronised and it is after :data:`NOT_BEFORE`; ``"not_before"``
    (the default, for machines whose kernel never reports sync, like containers) trusts any
    time after :data:`NOT_BEFORE`, which catches a clock at 1970 or years behind but not a
    fake-hwclock time a few hours old. ``wall`` and ``kernel`` are injectable for tests.
    """

    def __init__(
        self,
        check: SyncCheck = "not_before",
        *,
        not_before: float = NOT_BEFORE,
        wall: Callable[[], float] = time.time,
        kernel: Callable[[], bool | None] = kernel_synced,
    ) -> None:
        self.check = check
        self.not_before = not_before
        self.wall = wall
        self.kernel = kernel
        self.boot = boot_id()
        self._synced = False

    def synced(self) -> bool:
        if not self._synced:
            ok = self.wall() >= self.not_before
            if ok and self.check == "kernel":
                ok = self.kernel() is not False  # None: no adjtimex here, the floor decides
            self._synced = ok
        return self._synced

    def offset(self) -> float:
        """Wall clock minus boot-time clock, now: what a stamp is corrected with."""
        return self.wall() - boottime()


def shift_times(doc: Any, delta_s: float) -> Any:
    """``doc`` (decoded JSON) with every time under :data:`TIME_KEYS` moved by ``delta_s``."""
    if isinstance(doc, list):
        return [shift_times(v, delta_s) for v in doc]
    if not isinstance(doc, dict):
        return doc
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in TIME_KEYS and isinstance(value, str):
            try:
                at = datetime.fromisoformat(value)
            except ValueError:
                out[key] = value
                continue
            moved = (at + timedelta(seconds=delta_s)).astimezone(UTC)
            out[key] = moved.isoformat().replace("+00:00", "Z")
        else:
            out[key] = shift_times(value, delta_s)
    return out
