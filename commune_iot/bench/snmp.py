"""``commune-iot bench snmp``: how long one poll cycle of 35 and of 1,000 APs takes, and the
poller's CPU per AP poll.

The APs are one net-snmp ``snmpd`` listening on as many loopback ports (its C agent answers
in well under a millisecond, so the figures are the poller's, not the simulator's; snmpsim
is single-threaded Python and would be the bottleneck). Each AP gets a full poll as the
collector does it: system and uptime GET, profile detection on the first cycle, the client
extends and the interface table. The first (cold) cycle is not timed: it pays pysnmp's
lazy start-up and profile detection. The machine may be shared: CPU figures are upper bounds.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from commune_iot.localsvc import ServiceError
from commune_iot.snmplab import Snmpd

#: snmpd listens on at most 128 addresses; 100 per daemon leaves room.
PORTS_PER_DAEMON = 100


async def _cycles(
    ports: list[int], community: str, cycles: int, concurrency: int
) -> tuple[float, float, int]:
    from pydantic import SecretStr

    from edge.collectors.snmp.client import Credentials, SnmpClient, Target
    from edge.collectors.snmp.poller import ApPoller

    client = SnmpClient()
    auth = Credentials(community=SecretStr(community)).auth_data()
    pollers = [ApPoller(Target("127.0.0.1", p, 2.0, 1), auth, "auto", device=f"ap-{p}") for p in ports]
    sem = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(p: ApPoller) -> None:
        nonlocal failures
        async with sem:
            try:
                reading = await asyncio.wait_for(p.poll(client), 20)
                if reading.clients is None:
                    failures += 1
            except Exception:
                failures += 1

    try:
        await asyncio.gather(*(one(p) for p in pollers))  # cold: start-up and profile detection
        walls: list[float] = []
        cpu0 = time.process_time()
        for _ in range(cycles):
            t0 = time.perf_counter()
            await asyncio.gather(*(one(p) for p in pollers))
            walls.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0
    finally:
        client.close()
    return statistics.median(walls), cpu * 1000 / (cycles * len(pollers)), failures


def main(aps: int = 35, many: int = 1000, cycles: int = 3, run_dir: Path | None = None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-snmp-"))
    results: dict[str, float] = {}
    cpu_per_poll: list[float] = []

    def _start(run_dir: Path, size: int) -> Snmpd:
        """A port picked free can be taken before snmpd binds it (100 ports at a time): pick again."""
        for attempt in range(3):
            try:
                return Snmpd.create(run_dir / str(attempt), n_ports=size).start()
            except ServiceError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    for n, concurrency in ((aps, 20), (many, 50)):
        label = f"cycle_s_{n}"  # cycle_s_35 and cycle_s_1000 with the defaults
        daemons = -(-n // PORTS_PER_DAEMON)
        print(f"starting {daemons} snmpd on {n} loopback ports", flush=True)
        servers: list[Snmpd] = []
        try:
            for i in range(daemons):
                size = min(PORTS_PER_DAEMON, n - i * PORTS_PER_DAEMON)
                servers.append(_start(base / f"snmpd-{n}-{i}", size))
            ports = [p for s in servers for p in s.ports]
            wall, cpu_ms, failures = asyncio.run(_cycles(ports, servers[0].community, cycles, concurrency))
        finally:
            for s in servers:
                s.stop()
        if failures:
            print(f"  warning: {failures} poll(s) failed or found no clients", flush=True)
        print(
            f"  {n} APs (concurrency {concurrency}): median cycle {wall:.3f} s, "
            f"{cpu_ms:.2f} ms CPU per AP poll over {cycles} cycles",
            flush=True,
        )
        results[label] = round(wall, 3)
        cpu_per_poll.append(cpu_ms)
    results["cpu_ms_per_poll"] = round(max(cpu_per_poll), 2)
    print(json.dumps(results))
    return 0
