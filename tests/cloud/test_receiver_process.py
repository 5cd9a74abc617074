"""The split worker's lifecycle: nothing is acknowledged unless the worker said it is durable.

The MQTT receiver runs as a child process of the worker (``cloud.ingest.receiver``).
These tests kill one side or the other and check that the broker redelivers whatever was
not made durable, and that the worker replaces a receiver that died.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection

from cloud_helpers import MakeConfig, count, encoded, eventually, health, publish, topic
from test_resilience import health_traffic

from cloud.ingest import framing
from cloud.runtime import Runtime
from commune_iot.localsvc import InfluxDB, Mosquitto
from wire import Channel

NODE = ("da-ron", "dr-ap-01")


def _start_receiver(cfg_json: Mapping[str, object]) -> tuple[subprocess.Popen[bytes], Connection]:
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud.ingest.receiver", str(theirs.fileno())],
        stdin=subprocess.PIPE,
        pass_fds=(theirs.fileno(),),
    )
    theirs.close()
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(cfg_json).encode())
    proc.stdin.close()
    return proc, Connection(ours.detach())


def _wait_connected(conn: Connection) -> None:
    assert conn.poll(10)
    frame = conn.recv_bytes()
    assert frame[0] == framing.STATE and framing.decode_state(frame)[0], frame


def _frames_until(conn: Connection, n: int, timeout: float = 10.0) -> list[framing.DecodedBatch]:
    """Read frames until ``n`` messages arrived in batches (state frames skipped)."""
    out: list[framing.DecodedBatch] = []
    deadline = time.monotonic() + timeout
    while sum(len(b.topics) for b in out) < n:
        assert conn.poll(max(0.0, deadline - time.monotonic())), f"only {out} arrived"
        frame = conn.recv_bytes()
        if frame[0] == framing.BATCH:
            out.append(framing.decode_batch(frame))
    return out


def test_worker_gone_before_durable_means_redelivery(mosquitto: Mosquitto) -> None:
    """A receiver whose worker dies acknowledges nothing more and exits; the broker redelivers."""
    settings = {"mqtt": {"url": mosquitto.url, "commit_interval_ms": 5}, "client_id": "split-1"}
    proc, conn = _start_receiver(settings)
    _wait_connected(conn)
    time.sleep(0.5)  # subscribed
    msgs = [(topic(*NODE, Channel.HEALTH), encoded(health(NODE[1], seq))) for seq in range(1, 6)]
    publish(mosquitto, msgs)
    batches = _frames_until(conn, 5)
    conn.close()  # the worker died without reporting anything durable
    assert proc.wait(10) != 0

    proc, conn = _start_receiver(settings)  # same client id: the same broker session
    again = _frames_until(conn, 5)
    assert sorted(p for b in again for p in b.payloads) == sorted(p for b in batches for p in b.payloads)
    conn.send_bytes(framing.encode_seq(framing.DURABLE, again[-1].seq))
    conn.send_bytes(framing.encode_seq(framing.STOP, 0))
    while True:  # orderly stop: END carries the last batch
        frame = conn.recv_bytes()
        if frame[0] == framing.END:
            break
    conn.send_bytes(framing.encode_seq(framing.DURABLE, framing.decode_seq(frame)))
    assert proc.wait(10) == 0

    proc, conn = _start_receiver(settings)  # acknowledged: nothing comes back
    time.sleep(1.5)
    assert not any(conn.recv_bytes()[0] == framing.BATCH for _ in iter(lambda: conn.poll(0), False))
    conn.close()
    proc.wait(10)


async def test_receiver_killed_is_replaced_and_nothing_lost(
    make_config: MakeConfig, influx_server: InfluxDB, mosquitto: Mosquitto, influx_db: str
) -> None:
    rt = Runtime(make_config(influx_server, client_id="kill-receiver"))
    await rt.start()
    try:
        assert rt.worker.wait_connected(10)
        publish(mosquitto, health_traffic(1, 10))
        await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 30, what="30")
        proc = rt.worker._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        publish(mosquitto, health_traffic(11, 50))  # queued by the broker meanwhile
        await eventually(lambda: rt.worker._proc is not proc and rt.worker.connected, bool, what="respawn")
        await eventually(lambda: count(influx_server, influx_db, "health"), lambda n: n == 180, what="180")
    finally:
        await rt.stop()
    assert rt.worker._proc is not None and rt.worker._proc.returncode == 0  # orderly stop of the new one


def _next_state(conn: Connection, timeout: float) -> tuple[bool, str]:
    """The next connected/disconnected report (batches skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        assert conn.poll(max(0.0, deadline - time.monotonic())), f"no state report within {timeout:.0f} s"
        frame = conn.recv_bytes()
        if frame[0] == framing.STATE:
            return framing.decode_state(frame)


def test_a_broker_delivering_nothing_is_reported_as_a_stall_until_it_delivers(mosquitto: Mosquitto) -> None:
    """A wedged broker keeps our TCP connection open for a keepalive and a half (45 s here):
    the receiver's own probes tell within ``stall_s`` that it delivers nothing, so the worker
    counts as disconnected and alerting does not take the broker's silence for the boards'."""
    settings = {"mqtt": {"url": mosquitto.url, "stall_s": 2}, "client_id": "stall-1"}
    proc, conn = _start_receiver(settings)
    try:
        assert _next_state(conn, 10) == (True, "")  # connected
        assert _next_state(conn, 10) == (True, "")  # subscribed: the probes start
        mosquitto.pause()
        paused_at = time.monotonic()
        connected, why = _next_state(conn, 10)
        assert not connected and "delivering nothing" in why
        assert time.monotonic() - paused_at < 2 + 1.5  # stall_s, plus a probe period
        mosquitto.resume()
        assert _next_state(conn, 10) == (True, "")
    finally:
        mosquitto.resume()
        conn.close()
        proc.wait(10)
