"""Deflate with a preset dictionary, for the JSON messages a board sends over 3G.

Why: a board's health and readings are small JSON documents (350-900 bytes) whose keys
repeat in every message. Plain deflate gains little on one small message (a health message:
418 to 256 bytes); deflate primed with a dictionary of those keys gains four times (418 to
about 104), which is a quarter of a megabyte a day for an AP board on the shipped profile
(docs/field.md).

The format is one marker byte, then raw deflate (RFC 1951) primed with that marker's
dictionary. JSON text starts with ``{``, so a receiver tells the two apart by the first
byte and old JSON senders keep working. A marker this side does not know is refused with a
reason saying to upgrade the cloud (the cloud must be upgraded before its boards).

The dictionaries are part of the wire contract: never edit one; add a new one with a new
marker (tests/wire/test_wire_compression.py pins their digests).
"""

from __future__ import annotations

import zlib
from typing import Final

#: Deflate primed with :data:`DICTIONARY_1`.
DEFLATE_1: Final = 0x01
#: Markers 0x01-0x1f are reserved for encodings; JSON never starts with a control byte.
_RESERVED: Final = range(0x01, 0x20)

#: What a board's messages keep repeating: the envelope, the health fields, the AP and camera
#: points and a motion event's fields, the most frequent last (deflate reaches back 32 KiB and
#: codes near matches cheaper). Built once from the agent's messages of December 2026; frozen.
DICTIONARY_1: Final = (
    b'"snapshot_source":"http","snapshot_width_px":1920,"snapshot_height_px":1080,'
    b'"snapshot_fallback":"","snapshot_wanted":"main","snapshot_boxes":[],"labels":[{"label":"person",'
    b'"confidence":0.,"box":[]}],"frames":,"snapshot_sha256":"","snapshot_bytes":,"score":0.,'
    b'"zones":[],"boxes":[[0.,0.,0.,0.]],"peak_area_pct":,"phase":"start","start":"","end":"",'
    b'"event_id":"","ping":true,"profile":"","temp_c":,"detect_fps":,"reconnects":0,"motion":false,'
    b'"tampering":false,"camera_moving":false,'
    b'{"measurement":"camera","device":"","tags":{},"fields":{"up":true,"fps":15.,"nominal_fps":15.0,'
    b'"width":1920,"height":1080,"frozen":false,"decode_errors":0,"last_frame_age_s":0.0}'
    b'"tags":{"ssid":"WiFi-Xa-Mien-Phi"},"fields":{"clients":},{"measurement":"ap_if","device":"",'
    b'"tags":{"ifname":"eth0"},"fields":{"in_octets":,"out_octets":},'
    b'{"measurement":"ap_radio","tags":{"band":"5GHz"},"fields":{"clients":0},'
    b'{"measurement":"ap_radio","tags":{"band":"2.4GHz"},"fields":{"clients":},{"measurement":"ap_ssid",'
    b'"fields":{"reachable":true,"uptime_s":.0,"clients":},"points":[{"measurement":"ap","device":"",'
    b'"state":"online","reason":"birth","devices":[],"health_interval_s":300.0,"agent_version":"0.1.0",'
    b'"cpu_pct":,"load1":0.,"load5":0.,"load15":0.,"mem_used_pct":,"mem_avail_mb":,"disk_used_pct":,'
    b'"disk_free_mb":,"agent_uptime_s":,"board_uptime_s":,"outbox_depth":0,"outbox_bytes":0,'
    b'"outbox_oldest_s":0.0,"outbox_dropped":0,"agent_version":"0.1.0","config_version":0'
    b'{"v":1,"node":"","session":"","seq":,"ts":"2026-12-01T00:00:00.000000Z","replay":false,'
)

_DICTIONARIES: Final = {DEFLATE_1: DICTIONARY_1}


class CompressionError(ValueError):
    """A payload that cannot be unpacked; the message says why, in one line."""


def pack(payload: bytes) -> bytes:
    """``payload`` deflated with the dictionary, or unchanged when that is not smaller."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY_1)
    packed = bytes((DEFLATE_1,)) + z.compress(payload) + z.flush()
    return packed if len(packed) < len(payload) else payload


def is_packed(payload: bytes) -> bool:
    return bool(payload) and payload[0] in _RESERVED


def unpack(payload: bytes, limit: int) -> bytes:
    """The JSON of a packed payload (others unchanged); at most ``limit`` bytes, so a small
    packed message cannot expand into a memory bomb."""
    if not is_packed(payload):
        return payload
    dictionary = _DICTIONARIES.get(payload[0])
    if dictionary is None:
        raise CompressionError(
            f"payload encoding 0x{payload[0]:02x} is unknown here: upgrade the cloud before its boards"
        )
    z = zlib.decompressobj(-15, zdict=dictionary)
    try:
        out = z.decompress(payload[1:], limit + 1)
    except zlib.error as exc:
        raise CompressionError(f"payload is not valid deflate: {exc}") from None
    if len(out) > limit or z.unconsumed_tail:
        raise CompressionError(f"payload unpacks to more than {limit} bytes")
    if not z.eof:
        raise CompressionError("payload is truncated (deflate stream not finished)")
    return out
