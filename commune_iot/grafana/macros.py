"""Grafana's rendering of an InfluxQL panel query, so tests can run it against InfluxDB.

What Grafana's InfluxDB data source does before sending a raw query: ``$timeFilter``
becomes ``time >= <from>ms and time <= <to>ms``; ``$__interval`` the panel's interval
(range / max data points, which is the panel's width in pixels, rounded to Grafana's ladder
of nice intervals, never below the panel's min interval or else the data source's
``timeInterval``, 10 s here); template variables their values, a multi-value or "All"
selection as a regex alternation ``(a|b)`` with regex metacharacters escaped (the queries
use them as ``/^$var$/``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_REGEX_META = re.compile(r"([\\^$.|?*+()\[\]{}/-])")

#: Grafana's ``roundInterval`` (``@grafana/data`` rangeutil), from 10 s up: (below this many
#: ms, use this many ms). A raw interval is rounded to the nearest rung, up or down.
_LADDER_MS: tuple[tuple[int, int], ...] = (
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (30_600_000, 21_600_000),
    (129_600_000, 43_200_000),
    (604_800_000, 86_400_000),
)


def regex_value(values: Sequence[str]) -> str:
    escaped = [_REGEX_META.sub(r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interval_s(from_ms: int, to_ms: int, max_points: int = 1000, min_s: float = 10.0) -> int:
    """Grafana's ``$__interval`` in seconds for a range drawn on ``max_points`` pixels."""
    raw_ms = (to_ms - from_ms) / max(1, max_points)
    rounded = next((ms for below, ms in _LADDER_MS if raw_ms < below), 604_800_000)
    return int(max(rounded / 1000, min_s))


def interval(from_ms: int, to_ms: int, max_points: int = 1000, min_s: float = 10.0) -> str:
    """Grafana's rounded interval for a range, as an InfluxQL duration."""
    return f"{interval_s(from_ms, to_ms, max_points, min_s)}s"


def render(
    query: str,
    from_ms: int,
    to_ms: int,
    variables: Mapping[str, Sequence[str]],
    *,
    max_points: int = 1000,
    min_s: float = 10.0,
) -> str:
    iv = interval(from_ms, to_ms, max_points, min_s)
    out = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$__interval_ms", str(int(iv[:-1]) * 1000)).replace("$__interval", iv)
    for name in sorted(variables, key=len, reverse=True):  # $site before $s...
        out = out.replace(f"${name}", regex_value(variables[name]))
    leftover = re.search(r"\$\w+", out)
    if leftover:
        raise ValueError(f"unrendered variable {leftover.group(0)} in {query!r}")
    return out
