"""Octet counters to rates: a 32-bit wrap and a reboot between two polls give correct,
non-negative rates; a reset that cannot be told from a wrap gives no rate, never a spike."""

from __future__ import annotations

import pytest
from conftest import OwnSim
from pydantic import SecretStr
from snmp_helpers import EditableRecording

from edge.collectors.snmp.client import Credentials, SnmpClient, Target
from edge.collectors.snmp.poller import ApPoller, Interface
from edge.collectors.snmp.rates import COUNTER32, Sample, rate_bps


def test_wrap_of_a_32_bit_counter_is_the_small_step_it_really_was() -> None:
    prev = Sample(COUNTER32 - 1000, 32, at=100.0, uptime_s=5000)
    cur = Sample(3000, 32, at=130.0, uptime_s=5030)
    assert rate_bps(prev, cur) == pytest.approx(4000 * 8 / 30, abs=0.1)


def test_reboot_counts_from_zero_since_the_restart() -> None:
    prev = Sample(9_000_000_000, 64, at=100.0, uptime_s=86_400)
    cur = Sample(50_000, 64, at=130.0, uptime_s=20)  # rebooted 20 s ago
    assert rate_bps(prev, cur) == pytest.approx(50_000 * 8 / 20)
    # Uptime below the time between polls also proves a restart, even if it did not go down.
    assert rate_bps(Sample(900, 32, 0.0, 10), Sample(100, 32, 300.0, 25)) == pytest.approx(32.0)
    # Restarted but the counter did not go down (only the SNMP agent restarted?): no guess.
    assert rate_bps(Sample(900, 32, 0.0, 5000), Sample(1900, 32, 30.0, 10)) is None


def test_backwards_without_proof_of_a_reboot_is_no_rate_not_a_spike() -> None:
    # A Counter64 never wraps in practice; a 32-bit "wrap" implying > 100 Gbit/s is a reset.
    assert rate_bps(Sample(5_000_000, 64, 0.0, None), Sample(10, 64, 30.0, None)) is None
    assert rate_bps(Sample(COUNTER32 - 1, 32, 0.0, None), Sample(COUNTER32 - 2, 32, 0.0001, None)) is None
    # First sample, or the width changed (HC counters appeared): a new baseline.
    assert rate_bps(None, Sample(10, 32, 0.0, None)) is None
    assert rate_bps(Sample(10, 32, 0.0, 1), Sample(20, 64, 30.0, 31)) is None


def _ap(uptime_ticks: int, in_octets: int, out_octets: int) -> dict[str, tuple[str, str]]:
    """A small AP with one WAN port and only 32-bit counters (as older firmware has)."""
    return {
        "1.3.6.1.2.1.1.1.0": ("4", "Acme AP"),
        "1.3.6.1.2.1.1.2.0": ("6", "1.3.6.1.4.1.99999.7"),
        "1.3.6.1.2.1.1.3.0": ("67", str(uptime_ticks)),
        "1.3.6.1.2.1.2.2.1.2.1": ("4", "eth0"),
        "1.3.6.1.2.1.2.2.1.8.1": ("2", "1"),
        "1.3.6.1.2.1.2.2.1.10.1": ("65", str(in_octets)),
        "1.3.6.1.2.1.2.2.1.16.1": ("65", str(out_octets)),
    }


async def test_wrap_then_reboot_between_polls_of_a_real_agent(own_sim: OwnSim) -> None:
    rec = EditableRecording(own_sim.data, "wrapper")
    rec.write(_ap(100_000, COUNTER32 - 1_000, 5_000))
    port = own_sim.start()
    client = SnmpClient()
    auth = Credentials(community=SecretStr("wrapper")).auth_data()
    poller = ApPoller(Target("127.0.0.1", port, 2.0, 1), auth)

    async def eth0() -> tuple[Interface, int | None]:
        reading = await poller.poll(client)
        (iface,) = reading.interfaces
        return iface, reading.uptime_s

    try:
        first, uptime = await eth0()
        assert (first.name, first.bits, first.in_octets, uptime) == ("eth0", 32, COUNTER32 - 1_000, 1000)
        assert first.in_bps is None  # nothing to compare with yet

        # The in counter wrapped past 2**32 (+3,000 octets), the out counter moved +1,000.
        rec.write(_ap(100_300, 2_000, 6_000))
        second, _ = await eth0()
        assert second.in_octets == 2_000
        assert second.in_bps is not None and second.out_bps is not None
        # Same elapsed time for both directions: the wrap is 3x the plain step, not 2**32.
        assert second.in_bps == pytest.approx(3 * second.out_bps, rel=1e-6)
        assert 0 < second.in_bps < 1e9

        # The AP rebooted 20 s ago: counters restarted from 0 and went backwards.
        rec.write(_ap(2_000, 1_500, 800))
        third, uptime = await eth0()
        assert uptime == 20
        assert third.in_bps == pytest.approx(1_500 * 8 / 20)
        assert third.out_bps == pytest.approx(800 * 8 / 20)
    finally:
        client.close()
