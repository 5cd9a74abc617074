"""``commune-iot bench uplink``: bytes per day one board costs on its 3G/4G or DSL uplink.

Measured on the wire, not computed: an agent with the shipped defaults (health every
10 s, MQTT keepalive 10 s) talks to a real Mosquitto through a TCP proxy that counts the
bytes each way and the reads that carried them. Two boards are measured: a heartbeat-only
board (what the keepalive/heartbeat choice costs, the outage issue's question) and a
simulated camera board with its stream health and motion events (snapshots included).

The proxy sees TCP payload (MQTT bytes). Mobile operators bill IP packets, so the figure
adds 40 bytes of IPv4+TCP headers per read as an estimate of the packets (a read is at
least one segment; loopback may coalesce two small ones, so this errs low by little).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commune_iot.fleet import AgentProcess, edge_config, load_devices
from commune_iot.localsvc import Mosquitto, free_port

HEADERS_PER_SEGMENT = 40  # IPv4 (20) + TCP (20), no options


@dataclass
class Counted:
    up_bytes: int = 0  # board -> broker
    down_bytes: int = 0
    up_reads: int = 0
    down_reads: int = 0


class CountingProxy:
    """A TCP proxy on loopback counting what passes each way (one thread, its own loop)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.counted = Counted()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def reset(self) -> None:
        self.counted = Counted()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_w, up=True), self._pipe(up_r, writer, up=False))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, up: bool) -> None:
        try:
            while data := await src.read(65536):
                c = self.counted
                if up:
                    c.up_bytes += len(data)
                    c.up_reads += 1
                else:
                    c.down_bytes += len(data)
                    c.down_reads += 1
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            dst.close()


def _measure(
    run_dir: Path, proxy: CountingProxy, device: dict[str, Any], seconds: float, camera: bool
) -> Counted:
    cfg = edge_config(device, f"mqtt://127.0.0.1:{proxy.port}", run_dir / device["node"])
    cfg["hold_until_cloud"] = False
    if not camera:
        cfg["collectors"] = []
    agent = AgentProcess.write(run_dir, cfg).start()
    try:
        time.sleep(5)  # connect, birth, first messages: a one-off, not the daily cost
        proxy.reset()
        time.sleep(seconds)
        return proxy.counted
    finally:
        agent.terminate()
        agent.wait(15)


def _per_day(c: Counted, seconds: float) -> dict[str, float]:
    scale = 86400 / seconds
    mqtt = (c.up_bytes + c.down_bytes) * scale
    packets = (c.up_reads + c.down_reads) * scale
    return {
        "mqtt_mb_per_day": round(mqtt / 1e6, 2),
        "wire_mb_per_day": round((mqtt + packets * HEADERS_PER_SEGMENT) / 1e6, 2),
    }


def main(seconds: float = 120.0, run_dir: Path | None = None) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-uplink-"))
    devices = {d["node"]: d for d in load_devices()}
    broker = Mosquitto(base / "mosquitto").start()
    proxy = CountingProxy(broker.port).start()
    result: dict[str, float] = {"seconds": seconds}
    try:
        for name, node, camera in (("heartbeat", "tt-ap-03", False), ("camera", "dr-cam-01", True)):
            print(f"{name} board ({node}): counting its uplink for {seconds:.0f} s ...", flush=True)
            c = _measure(base, proxy, devices[node], seconds, camera)
            day = _per_day(c, seconds)
            print(
                f"  up {c.up_bytes:,} B in {c.up_reads} reads, "
                f"down {c.down_bytes:,} B in {c.down_reads} reads: "
                f"{day['mqtt_mb_per_day']} MB/day of MQTT, about {day['wire_mb_per_day']} MB/day on the wire",
                flush=True,
            )
            result.update({f"{name}_{k}": v for k, v in day.items()})
    finally:
        proxy.stop()
        broker.stop()
    print(json.dumps(result))
    return 0
