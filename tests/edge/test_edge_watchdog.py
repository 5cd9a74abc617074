"""A hung agent: its event loop blocked, the process alive. With health every 300 s (the shipped
3G profile) nothing else would end it; the watchdog drops the MQTT connection (the broker sends
the Will at once) and exits 70 for systemd to restart it."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import yaml
from edge_helpers import AgentProcess, Recorder, agent_config, has_status

from commune_iot.localsvc import Mosquitto
from edge.watchdog import EXIT_HUNG, LoopWatchdog


def test_a_hung_agent_sends_its_will_at_once_and_exits_for_a_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    path = agent_config(
        tmp_path, mosquitto.url, health_interval_s=300, collectors=[{"type": "tests.edge.hang_plugin:Hang"}]
    )
    cfg = yaml.safe_load(path.read_text())
    # keepalive 60: without the watchdog the Will would take 90 s; the watchdog gives up after 3 s
    cfg["broker"]["keepalive_s"] = 60
    cfg["watchdog_s"] = 3
    path.write_text(yaml.safe_dump(cfg))
    # systemd's watchdog socket (WatchdogSec): the agent says WATCHDOG=1 while its loop runs
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.2)
    pings: list[float] = []

    def listen() -> None:
        while notify.fileno() != -1:
            try:
                if notify.recv(64) == b"WATCHDOG=1":
                    pings.append(time.monotonic())
            except (TimeoutError, OSError):
                continue

    threading.Thread(target=listen, daemon=True).start()
    rec = Recorder(mosquitto.port)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "30000000"}
    agent = AgentProcess(path, tmp_path / "agent.log", env=env)
    try:
        rec.wait_for(has_status("online", "birth"), 15, "birth")
        born = time.monotonic()
        # the plug-in blocks the loop 2 s after it started; the Will within 3 s + 1 s after that
        rec.wait_for(has_status("offline", "will"), 10, "the Will")
        assert time.monotonic() - born <= 2.0 + 3.0 + 1.5
        assert agent.proc.wait(10) == EXIT_HUNG  # non-zero: systemd (Restart=always) starts it again
    finally:
        agent.close()
        rec.close()
        notify.close()
    assert "edge agent hung (the event loop has not run for" in agent.log()
    assert pings and pings[0] <= born + 1.0  # the loop's tick told systemd it was alive
    assert max(pings) <= born + 2.0 + 1.5  # and stopped telling once it hung


def test_health_overdue_while_the_loop_runs_also_ends_the_agent() -> None:
    """The loop ticks (so paho would keep pinging) but no health message is produced: the
    watchdog drops the connection without DISCONNECT and exits all the same."""
    board, broker = socket.socketpair()
    exits: list[int] = []
    done = threading.Event()

    def exit_(code: int) -> None:
        exits.append(code)
        done.set()

    t0 = time.monotonic()  # before the watchdog takes its own start as the last health
    dog = LoopWatchdog(hang_s=60, health_overdue_s=lambda: 1.0, sock=lambda: board, exit=exit_)
    dog.start()
    try:
        while not done.is_set() and time.monotonic() - t0 < 10:
            dog.tick_at = time.monotonic()  # the loop is alive
            done.wait(0.1)
        assert exits == [EXIT_HUNG]
        assert 1.0 <= time.monotonic() - t0 <= 3.0
        broker.settimeout(2)
        assert broker.recv(16) == b""  # the broker's side sees the connection end (no DISCONNECT)
    finally:
        dog.stop()
        board.close()
        broker.close()
