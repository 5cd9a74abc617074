"""``commune-iot wire decode``: read boards' MQTT traffic as a technician, packed or not.

Boards on the 3G profile pack their JSON (``broker.compress``, docs/protocol.md), so plain
``mosquitto_sub -v`` shows their data as bytes. mosquitto_sub can print each payload as hex
(``-F '%t %x'``: topic, space, hex), one message per line whatever bytes it holds; this
command reads those lines and prints every payload as JSON, so one pipe shows a whole
commune's traffic as it is on the wire::

    mosquitto_sub -h BROKER -p 8883 ... -t 'ciot/v1/#' -F '%t %x' | commune-iot wire decode
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from wire.compression import CompressionError, is_packed, unpack
from wire.messages import MAX_JSON_BYTES


def describe(payload: bytes) -> str:
    """One line for a payload: its JSON (unpacked when packed), or what kind of bytes it is."""
    if not payload:
        return "(empty: a beat, or a retained message being cleared)"
    packed = is_packed(payload)
    text = unpack(payload, MAX_JSON_BYTES) if packed else payload
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        kind = "JPEG" if payload.startswith(b"\xff\xd8") else "binary, not JSON"
        return f"({kind}, {len(payload)} bytes)"
    shown = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return f"{shown}  (packed, {len(payload)} of {len(text)} bytes)" if packed else shown


def decode_line(line: str) -> str:
    """``topic hex`` (or a bare ``hex``) as ``topic payload``; ValueError says what is wrong."""
    topic, _, hexed = line.rpartition(" ")
    if not topic and not _is_hex(hexed):
        topic, hexed = hexed, ""  # a topic whose payload is empty: mosquitto_sub prints no hex
    try:
        payload = bytes.fromhex(hexed)
    except ValueError:
        raise ValueError(
            f"payload is not hex: {hexed[:40]!r} (did mosquitto_sub run with -F '%t %x'?)"
        ) from None
    try:
        shown = describe(payload)
    except CompressionError as exc:
        raise ValueError(str(exc)) from None
    return f"{topic} {shown}" if topic else shown


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)  # "" too


def decode_stream(lines: TextIO, out: TextIO, err: TextIO) -> int:
    """Every line decoded in order; a bad one is reported on ``err`` (with its number) and the
    rest still shown. 1 when any line was bad."""
    bad = 0
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        try:
            print(decode_line(line), file=out, flush=True)
        except ValueError as exc:
            bad += 1
            print(f"wire decode: line {n}: {exc}", file=err, flush=True)
    return 1 if bad else 0


def _decode(args: argparse.Namespace) -> int:
    try:
        return decode_stream(sys.stdin, sys.stdout, sys.stderr)
    except BrokenPipeError:  # piped into head
        return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = sub.add_parser("wire", help="the wire contract's tools (docs/protocol.md)")
    s = w.add_subparsers(dest="wire_cmd", required=True)
    d = s.add_parser(
        "decode",
        help="read `mosquitto_sub -t 'ciot/v1/#' -F '%%t %%x'` lines on stdin, print payloads as JSON",
    )
    d.set_defaults(func=_decode)
