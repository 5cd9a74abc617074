"""Packed JSON (wire/compression.py): what a 3G board saves, and what the cloud refuses."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime

import pytest

from wire import Channel, Health, Metrics, Point, WireError, decode, encode
from wire.compression import DEFLATE_1, DICTIONARY_1, pack, unpack
from wire.messages import MAX_JSON_BYTES

NOW = datetime(2026, 12, 2, 19, 39, 7, 415613, tzinfo=UTC)
ENVELOPE = {"node": "tt-ap-03", "session": "5c2afafcae6b53a8", "seq": 4812, "ts": NOW, "replay": False}


def health() -> Health:
    return Health(
        **ENVELOPE,
        cpu_pct=40.8,
        load1=0.72,
        load5=0.78,
        load15=1.08,
        mem_used_pct=41.2,
        mem_avail_mb=512.3,
        disk_used_pct=28.8,
        disk_free_mb=11970.2,
        temp_c=51.6,
        agent_uptime_s=86313.012,
        board_uptime_s=1209600.6,
        outbox_depth=0,
        agent_version="0.1.0",
        config_version=3,
    )


def ap_reading() -> Metrics:
    dev = "tt-ap-03"
    return Metrics(
        **ENVELOPE,
        points=[
            Point(
                measurement="ap",
                device=dev,
                fields={"reachable": True, "uptime_s": 2315612.0, "clients": 7},
                ts=NOW,
            ),
            Point(measurement="ap_radio", device=dev, tags={"band": "2.4GHz"}, fields={"clients": 5}, ts=NOW),
            Point(measurement="ap_radio", device=dev, tags={"band": "5GHz"}, fields={"clients": 2}, ts=NOW),
            Point(
                measurement="ap_ssid",
                device=dev,
                tags={"ssid": "WiFi-Xa-Mien-Phi"},
                fields={"clients": 7},
                ts=NOW,
            ),
            Point(
                measurement="ap_if",
                device=dev,
                tags={"ifname": "eth0"},
                fields={"in_octets": 1753242508, "out_octets": 4260660294},
                ts=NOW,
            ),
        ],
    )


def test_the_dictionary_is_frozen() -> None:
    """Boards in the field pack with this dictionary: changing it breaks every one of them
    (add DICTIONARY_2 under a new marker instead)."""
    assert DEFLATE_1 == 0x01
    assert hashlib.sha256(DICTIONARY_1).hexdigest() == (
        "41f7b2d1942f79675ea73be3ebeb5177e1d5af79f9376dcb3beffa9df356b997"
    )


@pytest.mark.parametrize(("message", "at_most"), [(health, 0.35), (ap_reading, 0.25)])
def test_a_board_message_packs_to_a_fraction_and_the_cloud_reads_it_back(
    message: object, at_most: float
) -> None:
    msg = message()  # type: ignore[operator]
    plain = encode(msg)
    packed = pack(plain)
    assert packed[0] == DEFLATE_1
    assert len(packed) <= at_most * len(plain), (len(plain), len(packed))
    plain_deflate = zlib.compress(plain, 9)
    assert len(packed) < 0.6 * len(plain_deflate), "the dictionary is what makes it worth it"
    channel = Channel.HEALTH if isinstance(msg, Health) else Channel.METRICS
    assert decode(channel, packed) == decode(channel, plain) == msg


def test_what_does_not_shrink_goes_as_it_is() -> None:
    tiny = b'{"a":1}'
    assert pack(tiny) == tiny
    assert unpack(tiny, MAX_JSON_BYTES) == tiny


def test_the_cloud_refuses_what_it_cannot_unpack_with_a_reason() -> None:
    plain = encode(health())
    packed = pack(plain)
    with pytest.raises(WireError, match="payload encoding 0x02 is unknown here: upgrade the cloud"):
        decode(Channel.HEALTH, b"\x02" + packed[1:])
    with pytest.raises(WireError, match="truncated"):
        decode(Channel.HEALTH, packed[: len(packed) // 2])
    with pytest.raises(WireError, match="not valid deflate"):
        decode(Channel.HEALTH, b"\x01\xff\xff\xff\xff")
    # a few hundred packed bytes must not unpack into memory without bound
    z = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=DICTIONARY_1)
    bomb = bytes((DEFLATE_1,)) + z.compress(b"{" + b" " * (MAX_JSON_BYTES * 4)) + z.flush()
    assert len(bomb) < 2000
    with pytest.raises(WireError, match=f"more than {MAX_JSON_BYTES} bytes"):
        decode(Channel.HEALTH, bomb)
