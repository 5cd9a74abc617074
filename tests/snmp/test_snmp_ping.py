"""The ICMP second opinion with the system ping, as the agent's user runs it."""

from __future__ import annotations

from edge.ping import ping


async def test_loopback_answers() -> None:
    assert await ping("127.0.0.1", 1.0) is True


async def test_an_address_nobody_holds_does_not() -> None:
    # TEST-NET-2 (RFC 5737) is never assigned: no echo reply, or no route at all.
    assert await ping("198.51.100.7", 1.0) is False


async def test_without_a_ping_program_the_answer_is_unknown() -> None:
    assert await ping("127.0.0.1", 1.0, binary="ciot-no-such-ping") is None
