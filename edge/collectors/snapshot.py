"""Snapshot JPEGs for the simulated camera.

With OpenCV importable the snapshot is a rendered frame (a few KB) with the event's boxes;
without it, a tiny valid baseline JPEG (8x8 grey) whose COM segment carries the event id,
so that every snapshot still has its own SHA-256 as real ones do.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Sequence
from typing import Any

from wire import Box


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">HH", marker, len(body) + 2) + body


def tiny_jpeg(comment: str) -> bytes:
    """8x8 mid-grey baseline JPEG with ``comment`` in a COM segment (about 200 bytes)."""
    dqt = _segment(0xFFDB, b"\x00" + b"\x01" * 64)
    sof0 = _segment(0xFFC0, bytes([8, 0, 8, 0, 8, 1, 1, 0x11, 0]))
    one_code = bytes([1] + [0] * 15)  # a single Huffman code of length 1
    dht_dc = _segment(0xFFC4, b"\x00" + one_code + b"\x00")  # DC: category 0 only
    dht_ac = _segment(0xFFC4, b"\x10" + one_code + b"\x00")  # AC: EOB only
    sos = _segment(0xFFDA, bytes([1, 1, 0x00, 0, 63, 0]))
    scan = b"\x3f"  # DC diff 0 ('0'), EOB ('0'), padded with 1 bits
    jfif = _segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    com = _segment(0xFFFE, comment.encode()[:60000])
    return b"\xff\xd8" + jfif + com + dqt + sof0 + dht_dc + dht_ac + sos + scan + b"\xff\xd9"


def render(event_id: str, boxes: Sequence[Box], width: int = 320, height: int = 180) -> bytes:
    """A small frame with the motion boxes drawn, or :func:`tiny_jpeg` without OpenCV."""
    try:  # optional: the 'camera' extra; imported by name so mypy needs no stubs
        cv2: Any = importlib.import_module("cv2")
        np: Any = importlib.import_module("numpy")
    except ImportError:
        return tiny_jpeg(f"commune-iot sim snapshot {event_id}")
    frame: Any = np.full((height, width, 3), 90, dtype=np.uint8)
    for b in boxes:
        p1 = (int(b.x * width), int(b.y * height))
        p2 = (int((b.x + b.w) * width), int((b.y + b.h) * height))
        cv2.rectangle(frame, p1, p2, (0, 0, 255), 2)
    cv2.putText(frame, event_id[:40], (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
    ok, buf = cv2.imencode(".jpg", frame, [int(cv2.IMWRITE_JPEG_QUALITY), 60])
    if not ok:
        return tiny_jpeg(f"commune-iot sim snapshot {event_id}")
    return bytes(buf.tobytes())
