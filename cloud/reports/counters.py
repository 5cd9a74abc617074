"""Traffic from raw interface octet counters: wraps, reboots and gaps.

Why counters and not the agent's ``in_bps``/``out_bps``: a rate covers only the interval
between two polls the agent saw, so every lost or late message loses traffic, and after a
reboot the agent's rate (value / uptime) spread over the poll interval over-counts. The
counters themselves carry everything that passed, so the difference between two readings
is exact whatever was lost in between, as long as the reading pair is unambiguous.

Rules for two consecutive readings ``a`` then ``b`` of one counter (the report reads the
last reading of each bucket):

* more than ``max_gap_s`` apart: nothing counted (a Counter32 can wrap several times
  unseen in a long gap; the report's footnotes say so);
* the AP rebooted in between (its uptime went down, or is shorter than the time elapsed):
  the counter restarted from zero, so ``b`` is what passed since the reboot;
* ``b >= a``: ``b - a``;
* ``b < a`` and ``a < 2**32``: a 32-bit wrap, ``b + 2**32 - a``, unless that implies more
  than ``max_bps`` (then it was a reset without an uptime to prove it: ``b``);
* ``b < a`` and ``a >= 2**32``: a 64-bit counter does not wrap in practice: a reset, ``b``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

COUNTER32: Final = 2**32
MAX_BPS: Final = 10e9  # no village AP link carries 10 Gbit/s


def rebooted(up_a: float | None, up_b: float | None, elapsed_s: float) -> bool:
    if up_a is None or up_b is None:
        return False
    return up_b < up_a or up_b + 1 < elapsed_s


def delta(
    a: float, b: float, elapsed_s: float, up_a: float | None, up_b: float | None, max_bps: float = MAX_BPS
) -> float:
    """Octets that passed between two readings (rules in the module docstring, gap excluded)."""
    if rebooted(up_a, up_b, elapsed_s):
        return b
    if b >= a:
        return b - a
    if a < COUNTER32:
        wrapped = b + COUNTER32 - a
        if elapsed_s > 0 and wrapped * 8 / elapsed_s <= max_bps:
            return wrapped
    return b


def total(
    readings: Iterable[tuple[int, float, float | None]], max_gap_s: float, max_bps: float = MAX_BPS
) -> float:
    """Octets over readings ``(ms, counter, uptime_s)`` in time order."""
    out = 0.0
    prev: tuple[int, float, float | None] | None = None
    for r in readings:
        if prev is not None:
            elapsed = (r[0] - prev[0]) / 1000
            if 0 < elapsed <= max_gap_s:
                out += delta(prev[1], r[1], elapsed, prev[2], r[2], max_bps)
        prev = r
    return out
