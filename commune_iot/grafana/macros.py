"""Grafana's rendering of an InfluxQL panel query, so tests can run it against InfluxDB.

What Grafana's InfluxDB data source does before sending a raw query: ``$timeFilter``
becomes ``time >= <from>ms and time <= <to>ms``; ``$__interval`` the panel's interval
(range / max data points, never below the data source's ``timeInterval``); template
variables their values, a multi-value or "All" selection as a regex alternation
``(a|b)`` with regex metacharacters escaped (the queries use them as ``/^$var$/``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_REGEX_META = re.compile(r"([\\^$.|?*+()\[\]{}/-])")


def regex_value(values: Sequence[str]) -> str:
    escaped = [_REGEX_META.sub(r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interval(from_ms: int, to_ms: int, max_points: int = 1000, min_s: float = 10.0) -> str:
    """Grafana's rounded interval for a range, as an InfluxQL duration."""
    raw_s = max(min_s, (to_ms - from_ms) / 1000 / max_points)
    for step in (10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 21600, 43200, 86400):
        if raw_s <= step:
            return f"{step}s"
    return "86400s"


def render(query: str, from_ms: int, to_ms: int, variables: Mapping[str, Sequence[str]]) -> str:
    iv = interval(from_ms, to_ms)
    out = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$__interval_ms", str(int(iv[:-1]) * 1000)).replace("$__interval", iv)
    for name in sorted(variables, key=len, reverse=True):  # $site before $s...
        out = out.replace(f"${name}", regex_value(variables[name]))
    leftover = re.search(r"\$\w+", out)
    if leftover:
        raise ValueError(f"unrendered variable {leftover.group(0)} in {query!r}")
    return out
