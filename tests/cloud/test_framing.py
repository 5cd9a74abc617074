"""Batch frames between the MQTT receiver and the committing worker survive any bytes."""

from __future__ import annotations

import random

import pytest

from cloud.ingest import framing


def test_batch_round_trip_keeps_order_and_bytes() -> None:
    rnd = random.Random(7)
    topics = [f"ciot/v1/c{i}/n{i}/health".encode() for i in range(300)]
    payloads = [rnd.randbytes(rnd.choice([0, 1, 17, 4096, 70_000])) for _ in topics]
    frame = framing.encode_batch(42, 1234.5, topics, list(payloads))
    assert frame[0] == framing.BATCH
    b = framing.decode_batch(frame)
    assert (b.seq, b.at, b.topics, b.payloads) == (42, 1234.5, topics, payloads)


def test_empty_batch_and_bytearray_payloads() -> None:
    assert framing.decode_batch(framing.encode_batch(1, 0.0, [], [])).topics == []
    b = framing.decode_batch(framing.encode_batch(2, 0.0, [b"t"], [bytearray(b"\x00{}")]))
    assert b.payloads == [b"\x00{}"]


def test_truncated_batch_is_refused() -> None:
    frame = framing.encode_batch(3, 0.0, [b"a/b"], [b"xyz"])
    with pytest.raises(ValueError):
        framing.decode_batch(frame + b"junk")


def test_control_frames() -> None:
    assert framing.decode_seq(framing.encode_seq(framing.DURABLE, 2**40)) == 2**40
    frame = framing.encode_state(False, "disconnected: é")
    assert frame[0] == framing.STATE
    assert framing.decode_state(frame) == (False, "disconnected: é")
