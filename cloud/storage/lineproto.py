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
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        f = float(value)
        if not math.isfinite(f):
            raise LineError(f"non-finite number {value!r}")
        return repr(f)
    return '"' + value.translate(_STR_TABLE) + '"'


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, bool | int | float | str | None],
    ts_ms: int,
) -> str:
    """One point. Tags are sorted (InfluxDB's preferred order); ``None`` fields are skipped."""
    parts = [escape_measurement(measurement)]
    for k in sorted(tags):
        v = tags[k]
        if v == "":
            continue  # InfluxDB rejects empty tag values; an absent tag reads the same in InfluxQL
        parts.append(escape_key(k) + "=" + escape_key(v))
    fs = [escape_key(k) + "=" + format_field(v) for k, v in fields.items() if v is not None]
    if not fs:
        raise LineError(f"point of {measurement!r} has no fields")
    return ",".join(parts) + " " + ",".join(fs) + " " + str(int(ts_ms))


def join(lines: Iterable[str]) -> bytes:
    """The body of one /write request."""
    return ("\n".join(lines) + "\n").encode()
