"""A hung agent must not look alive: a thread that ends the process when the loop stops.

Everything of the agent (paho's keepalive included) runs on one asyncio loop. If a call blocks
that loop (a wedged SD card under SQLite, a blocking library call in a collector), the board
stops working but the process lives on: systemd sees nothing to restart. With health every
300 s (the shipped 3G profile) the cloud would otherwise only judge a board whose keepalive
somehow kept going after 450 s. So a daemon thread watches two stamps the loop keeps fresh:
the loop's own tick (every second) and the last health message produced. When either is
overdue it drops the MQTT socket without DISCONNECT (the broker publishes the Will at once, so
the cloud alerts within its grace) and exits with :data:`EXIT_HUNG` for systemd
(``Restart=always``) or the update launcher to start the agent again.

When ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` are in the environment the loop's tick also
sends ``WATCHDOG=1``. Under the update launcher (the shipped unit) that socket is the
launcher's own: it relays the pings to systemd's watchdog and restarts an agent whose pings
stop (``firmware_config/launcher/README.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edge.watchdog")

#: Exit code of an agent ended by the watchdog (EX_SOFTWARE): a restart, not a clean stop.
EXIT_HUNG = 70


class LoopWatchdog:
    """Ends the process when the loop has not ticked for ``hang_s`` or health is overdue
    (``health_overdue_s()``: it follows the health interval the cloud may change)."""

    def __init__(
        self,
        hang_s: float,
        health_overdue_s: Callable[[], float],
        sock: Callable[[], Any],
        exit: Callable[[int], None] = os._exit,
    ) -> None:
        self.hang_s = hang_s
        self.health_overdue_s = health_overdue_s
        self._sock = sock
        self._exit = exit
        now = time.monotonic()
        self.tick_at = now
        self.health_at = now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._notify = _notify_socket()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def health_produced(self) -> None:
        self.health_at = time.monotonic()

    async def beat(self) -> None:
        """The loop's side: stamp the tick every second (and tell systemd's watchdog)."""
        while True:
            self.tick_at = time.monotonic()
            if self._notify is not None:
                # never wait: the update launcher relays these from a socket it drains, and a
                # launcher that stopped reading (10 datagrams queue) must not block this loop
                with contextlib.suppress(OSError):
                    self._notify[0].sendto(b"WATCHDOG=1", socket.MSG_DONTWAIT, self._notify[1])
            await asyncio.sleep(1.0)

    def overdue(self, now: float) -> str | None:
        if now - self.tick_at > self.hang_s:
            return f"the event loop has not run for {now - self.tick_at:.0f} s"
        if now - self.health_at > self.health_overdue_s():
            return f"no health message produced for {now - self.health_at:.0f} s"
        return None

    def _watch(self) -> None:
        period = min(1.0, self.hang_s / 4)
        last = time.monotonic()
        while not self._stop.wait(period):
            now = time.monotonic()
            if now - last > 2 * period + 1.0:  # this thread was stopped too (SIGSTOP, suspend):
                self.tick_at = self.health_at = now  # the loop gets its full time from now
            last = now
            why = self.overdue(now)
            if why is None:
                continue
            # the logging lock may be held by the hung thread: write to stderr directly
            with contextlib.suppress(OSError):
                os.write(
                    sys.stderr.fileno(),
                    f"edge agent hung ({why}): dropping the MQTT connection so the broker sends the "
                    f"Will, exiting with {EXIT_HUNG} to be restarted\n".encode(),
                )
            sock = None
            with contextlib.suppress(Exception):
                sock = self._sock()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the broker publishes the Will
            self._exit(EXIT_HUNG)
            return


def _notify_socket() -> tuple[socket.socket, str | bytes] | None:
    """systemd's notification socket, when its watchdog is on for this service."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path or not os.environ.get("WATCHDOG_USEC"):
        return None
    addr: str | bytes = "\0" + path[1:] if path.startswith("@") else path
    try:
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), addr
    except OSError:
        return None
