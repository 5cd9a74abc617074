"""Simulated village Wi-Fi access point: the telemetry the SNMP collector will produce.

Each AP gets its own size (clients at the evening peak), band split and WAN traffic per
client from a generator seeded with its device id, so a demo looks the same every run
while APs differ from each other. WAN octet counters are raw Counter32 values that wrap
at 2**32, as a real ifInOctets does, and the rates are computed here with wrap handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import Field

from edge.collectors.base import Collector, CollectorOptions, Sink
from edge.collectors.village_day import activity, seeded_rng
from wire import Point

COUNTER32: Final = 2**32


def counter_delta(previous: int, current: int, modulus: int = COUNTER32) -> int:
    """Increase of a wrapping counter between two readings (assumes at most one wrap)."""
    return (current - previous) % modulus


class SimAPOptions(CollectorOptions):
    interval_s: float = Field(default=30.0, gt=0, le=3600, description="Seconds between readings.")
    ssids: list[str] = Field(
        default_factory=lambda: ["WiFi-Xa-Mien-Phi"], min_length=1, max_length=8, description="SSIDs served."
    )
    wan_ifname: str = Field(default="eth0", min_length=1, max_length=32, description="WAN interface name.")
    peak_clients: int | None = Field(
        default=None, ge=1, le=500, description="Clients at the evening peak; drawn from the seed when unset."
    )


class SimAccessPoint(Collector):
    Options = SimAPOptions

    def __init__(self, options: CollectorOptions, *, node: str) -> None:
        super().__init__(options, node=node)
        assert isinstance(options, SimAPOptions)
        self.opts: SimAPOptions = options
        rng = seeded_rng("sim_ap", self.device)
        self._rng = rng
        self.peak_clients = options.peak_clients or rng.randint(15, 45)
        self.share_5ghz = rng.uniform(0.25, 0.5)
        self.kbps_per_client = rng.uniform(120.0, 400.0)
        self.in_octets = rng.randrange(COUNTER32)  # anywhere, so wraps show up in demos
        self.out_octets = rng.randrange(COUNTER32)
        self.boot_monotonic = time.monotonic() - rng.uniform(3600, 30 * 86400)
        self._last: tuple[float, int, int] | None = None
        self._changed = asyncio.Event()

    def reconfigure(self, options: CollectorOptions) -> bool:
        if not isinstance(options, SimAPOptions) or options.device != self.options.device:
            return False
        self.options = self.opts = options
        if options.peak_clients:
            self.peak_clients = options.peak_clients
        self._changed.set()  # a new interval starts now, not after the old one ran out
        return True

    async def poll_now(self, device: str, sink: Sink) -> dict[str, Any]:
        points = self.sample(datetime.now(UTC), time.monotonic())
        sink.emit_metrics(points)
        return {"device": self.device, "reachable": True, "clients": points[0].fields["clients"]}

    def sample(self, now: datetime, mono: float) -> list[Point]:
        """One reading at wall time ``now`` / monotonic ``mono`` (advances the counters)."""
        rng = self._rng
        busy = activity(now)
        clients = max(0, round(self.peak_clients * busy * rng.gauss(1.0, 0.12)))
        c5 = round(clients * self.share_5ghz)
        bands = {"2.4GHz": clients - c5, "5GHz": c5}
        points = [
            Point(
                measurement="ap",
                device=self.device,
                fields={
                    "reachable": True,
                    "uptime_s": round(mono - self.boot_monotonic, 1),
                    "clients": clients,
                },
                ts=now,
            )
        ]
        points += [
            Point(measurement="ap_radio", device=self.device, tags={"band": b}, fields={"clients": n}, ts=now)
            for b, n in bands.items()
        ]
        left = clients
        for i, ssid in enumerate(self.opts.ssids):
            n = left if i == len(self.opts.ssids) - 1 else round(clients / len(self.opts.ssids))
            n = min(n, left)
            left -= n
            points.append(
                Point(
                    measurement="ap_ssid",
                    device=self.device,
                    tags={"ssid": ssid},
                    fields={"clients": n},
                    ts=now,
                )
            )
        # Traffic: per-client rate plus a trickle of management traffic; download-heavy.
        elapsed = mono - self._last[0] if self._last else self.opts.interval_s
        down_bps = (clients * self.kbps_per_client * 1000 + 2000) * rng.uniform(0.7, 1.3)
        up_bps = down_bps * rng.uniform(0.08, 0.2)
        self.in_octets = (self.in_octets + int(down_bps * elapsed / 8)) % COUNTER32
        self.out_octets = (self.out_octets + int(up_bps * elapsed / 8)) % COUNTER32
        fields: dict[str, bool | int | float | str] = {
            "in_octets": self.in_octets,
            "out_octets": self.out_octets,
        }
        if self._last is not None and elapsed > 0:
            _, last_in, last_out = self._last
            fields["in_bps"] = round(counter_delta(last_in, self.in_octets) * 8 / elapsed, 1)
            fields["out_bps"] = round(counter_delta(last_out, self.out_octets) * 8 / elapsed, 1)
        self._last = (mono, self.in_octets, self.out_octets)
        points.append(
            Point(
                measurement="ap_if",
                device=self.device,
                tags={"ifname": self.opts.wan_ifname},
                fields=fields,
                ts=now,
            )
        )
        return points

    async def run(self, sink: Sink) -> None:
        while True:
            sink.emit_metrics(self.sample(datetime.now(UTC), time.monotonic()))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.opts.interval_s)
