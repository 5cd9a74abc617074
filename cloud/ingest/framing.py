"""Frames between the MQTT receiver process and the committing process.

One frame per ``send_bytes`` on a ``multiprocessing.connection.Connection`` (which does
the length prefix). A batch of messages is one frame: no pickle and no per-message
header object, just two arrays of lengths and the concatenated topics and payloads, so
the receiver spends a few hundred nanoseconds per message on it.

Receiver -> committer: ``BATCH`` (seq, receive time, messages), ``STATE`` (connected or
not, and why), ``END`` (stop requested: nothing more will follow).
Committer -> receiver: ``DURABLE`` (every batch up to seq is durable: ack it), ``STOP``.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from typing import Final

BATCH: Final = 0x42  # b"B"
STATE: Final = 0x53  # b"S"
END: Final = 0x45  # b"E"
DURABLE: Final = 0x44  # b"D"
STOP: Final = 0x58  # b"X"

_BATCH_HEAD = struct.Struct("<BQdI")  # kind, seq, received at (epoch s), count
_SEQ = struct.Struct("<BQ")
_STATE_HEAD = struct.Struct("<BB")


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    seq: int
    at: float
    topics: list[bytes]
    payloads: list[bytes]


def encode_batch(seq: int, at: float, topics: list[bytes], payloads: list[bytes | bytearray]) -> bytes:
    n = len(topics)
    t_len = array("I", map(len, topics))
    p_len = array("I", map(len, payloads))
    return b"".join(
        (_BATCH_HEAD.pack(BATCH, seq, at, n), t_len.tobytes(), p_len.tobytes(), *topics, *payloads)
    )


def batch_at(frame: bytes) -> float:
    """When the receiver framed a batch (its messages' receive time), without decoding it."""
    return float(_BATCH_HEAD.unpack_from(frame)[2])


def decode_batch(frame: bytes) -> DecodedBatch:
    _, seq, at, n = _BATCH_HEAD.unpack_from(frame)
    pos = _BATCH_HEAD.size
    t_len = array("I")
    t_len.frombytes(frame[pos : pos + 4 * n])
    pos += 4 * n
    p_len = array("I")
    p_len.frombytes(frame[pos : pos + 4 * n])
    pos += 4 * n
    topics = []
    for ln in t_len:
        topics.append(frame[pos : pos + ln])
        pos += ln
    payloads = []
    for ln in p_len:
        payloads.append(frame[pos : pos + ln])
        pos += ln
    if pos != len(frame):
        raise ValueError(f"batch frame of {len(frame)} bytes holds {pos} bytes of messages")
    return DecodedBatch(seq, at, topics, payloads)


def encode_seq(kind: int, seq: int) -> bytes:
    return _SEQ.pack(kind, seq)


def decode_seq(frame: bytes) -> int:
    return int(_SEQ.unpack(frame)[1])


def encode_state(connected: bool, text: str) -> bytes:
    return _STATE_HEAD.pack(STATE, connected) + text.encode()


def decode_state(frame: bytes) -> tuple[bool, str]:
    _, connected = _STATE_HEAD.unpack_from(frame)
    return bool(connected), frame[_STATE_HEAD.size :].decode(errors="replace")
