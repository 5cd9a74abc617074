"""InfluxDB line protocol encoder (https://docs.influxdata.com/influxdb/v1/write_protocols/).

Hand-written rather than a library because it is the ingest hot path and the rules are
few: measurement escapes ``,`` and space; tag keys/values and field keys escape ``,``,
``=`` and space; string field values are double-quoted with ``"`` and ``\\`` escaped.
Every number is written as a float (``1.0``, never ``1i``) so a field never changes type
between points, which InfluxDB would reject as a conflict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

_MEAS_TABLE: Final = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_KEY_TABLE: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_STR_TABLE: Final = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n"})


class LineError(ValueError):
    """A point that cannot be written (no fields, empty tag value, non-finite number)."""


def escape_measurement(name: str) -> str:
    return name.translate(_MEAS_TABLE)


def escape_key(key: str) -> str:
    """Tag keys, tag values and field keys share these rules."""
    return key.translate(_KEY_TABLE)


def format_field(value: bool | int | float | str) -> str:
    t = type(value)
    if t is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise LineError(f"non-finite number {value!r}")
        return repr(value)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return repr(float(value))
    if isinstance(value, str):
        return '"' + value.translate(_STR_TABLE) + '"'
    return format_field(float(value) if isinstance(value, int | float) else str(value))


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,k=v,...`` with sorted, escaped tags; empty tag values are left out
    (InfluxDB rejects them, and an absent tag reads the same in InfluxQL)."""
    parts = [escape_measurement(measurement)]
    parts.extend(escape_key(k) + "=" + escape_key(tags[k]) for k in sorted(tags) if tags[k] != "")
    return ",".join(parts)


_FIELD_KEYS: dict[str, str] = {}  # field key -> "escaped=" (keys repeat endlessly on the hot path)


def _field_key(key: str) -> str:
    esc = _FIELD_KEYS.get(key)
    if esc is None:
        if len(_FIELD_KEYS) > 10_000:
            _FIELD_KEYS.clear()
        esc = _FIELD_KEYS[key] = escape_key(key) + "="
    return esc


def format_fields(fields: Mapping[str, bool | int | float | str | None]) -> str:
    """``k=v,...`` skipping ``None``; raises LineError when nothing is left.

    The ingest hot path: the common cases (float, bool, int) are inlined here because
    a function call per field was a measurable share of ingest CPU."""
    parts = []
    keys = _FIELD_KEYS
    isfinite = math.isfinite
    for k, v in fields.items():
        if v is None:
            continue
        key = keys.get(k) or _field_key(k)
        t = type(v)
        if t is float:
            if not isfinite(v):  # type: ignore[arg-type]
                raise LineError(f"non-finite number {v!r} in field {k!r}")
            parts.append(f"{key}{v!r}")
        elif t is bool:
            parts.append(key + ("true" if v else "false"))
        elif t is int:
            parts.append(f"{key}{float(v)!r}")
        else:
            parts.append(key + format_field(v))
    if not parts:
        raise LineError("point has no fields")
    return ",".join(parts)


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, bool | int | float | str | None],
    ts_ms: int,
) -> str:
    """One point. Tags are sorted (InfluxDB's preferred order); ``None`` fields are skipped."""
    try:
        fs = format_fields(fields)
    except LineError:
        raise LineError(f"point of {measurement!r} has no fields") from None
    return f"{series_key(measurement, tags)} {fs} {int(ts_ms)}"


def join(lines: Iterable[str]) -> bytes:
    """The body of one /write request."""
    return ("\n".join(lines) + "\n").encode()
