"""Is a cloud ingest worker live and subscribed? (Sparkplug's primary-host STATE.)

The agent holds its data in the outbox until one is: after a broker restart Mosquitto
2.0 restores persistent sessions but not their shared subscriptions, so data published
before the ingest worker re-subscribes would be acknowledged to the board and delivered
to nobody. See ``wire.HostState`` and docs/protocol.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from wire import WireError, decode_host_state

log = logging.getLogger(__name__)

#: A worker is live for this many of its heartbeats after its last live announcement.
MISSED_HEARTBEATS = 3


class Presence:
    def __init__(self, *, enabled: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self._clock = clock
        #: worker -> monotonic deadline of its liveness
        self._live: dict[str, float] = {}

    def online(self) -> bool:
        if not self.enabled:
            return True
        now = self._clock()
        return any(deadline > now for deadline in self._live.values())

    def workers(self) -> list[str]:
        now = self._clock()
        return sorted(w for w, deadline in self._live.items() if deadline > now)

    def reset(self) -> None:
        """Forget everything (a new connection must hear a fresh, live announcement)."""
        self._live.clear()

    def update(self, payload: bytes, *, retained: bool) -> None:
        """Take one host-state message. A retained ``online`` is ignored: it may be stale
        (kept by the broker across its own restart); a retained ``offline`` is believed."""
        try:
            state = decode_host_state(payload)
        except WireError as exc:
            log.warning("ignoring a malformed cloud host-state message: %s", exc)
            return
        if not state.online:
            self._live.pop(state.worker, None)
        elif not retained:
            self._live[state.worker] = self._clock() + MISSED_HEARTBEATS * state.heartbeat_s
