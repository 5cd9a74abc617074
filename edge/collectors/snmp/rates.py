"""Octet counters to bit rates, with 32/64-bit wrap and reboot handling.

A counter that goes backwards is either a wrap (Counter32 passes 2**32 in about 34 s at
1 Gbit/s, hours on a village AP) or a reset (the AP rebooted, or its agent restarted).
Reporting a reset as a wrap would show a 4 GB burst; reporting a wrap as a reset would
lose a sample. The device's uptime tells them apart: when it restarted between two polls,
the counter holds what was counted since the restart, so the rate is value / uptime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

COUNTER32: Final = 2**32
COUNTER64: Final = 2**64
#: A "wrap" faster than this is a reset in disguise (no village AP link carries 100 Gbit/s).
MAX_PLAUSIBLE_BPS: Final = 100e9


@dataclass(frozen=True)
class Sample:
    """One counter reading: ``value`` of a ``bits``-wide counter at monotonic time ``at``,
    with the device's uptime then (None when the device reports none)."""

    value: int
    bits: int
    at: float
    uptime_s: float | None


def rate_bps(prev: Sample | None, cur: Sample, *, max_bps: float = MAX_PLAUSIBLE_BPS) -> float | None:
    """Bits per second between two octet-counter samples, or None when it cannot be known.

    - first sample, counter width changed, or no time elapsed: None;
    - the device restarted in between (its uptime went down, or is below the time elapsed) and
      the counter went down: it counted from 0 since the restart, so value * 8 / uptime; if
      the counter did not go down (only the agent restarted?) the sample is a new baseline;
    - otherwise a counter that went down wrapped once (Counter32) — unless that implies an
      implausible rate, or it is a Counter64 (which never wraps in practice): then it was
      reset without an uptime to prove it, and the sample only starts a new baseline.
    """
    if prev is None or prev.bits != cur.bits:
        return None
    elapsed = cur.at - prev.at
    if elapsed <= 0:
        return None
    restarted = (
        cur.uptime_s is not None
        and prev.uptime_s is not None
        and (cur.uptime_s < prev.uptime_s or cur.uptime_s + 1 < elapsed)
    )
    if restarted:
        assert cur.uptime_s is not None
        if cur.value >= prev.value or cur.uptime_s <= 0:
            # Not reset with the restart (only the SNMP agent restarted?) or no time base:
            # ambiguous, so this sample only starts a new baseline.
            return None
        bps = cur.value * 8 / cur.uptime_s
        return round(bps, 1) if bps <= max_bps else None
    if cur.value >= prev.value:
        delta = cur.value - prev.value
    elif cur.bits == 32:
        delta = cur.value + COUNTER32 - prev.value
    else:
        return None
    bps = delta * 8 / elapsed
    if bps > max_bps:
        return None
    return round(bps, 1)


class CounterTracker:
    """Remembers the last sample of each counter (per AP, interface and direction)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, ...], Sample] = {}

    def update(self, key: tuple[str, ...], sample: Sample) -> float | None:
        rate = rate_bps(self._last.get(key), sample)
        self._last[key] = sample
        return rate

    def forget(self, keep: set[tuple[str, ...]]) -> None:
        """Drop counters of interfaces that disappeared (so a re-added one starts afresh)."""
        for key in list(self._last):
            if key not in keep:
                del self._last[key]
