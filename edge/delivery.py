"""Moves outbox rows onto the MQTT link in order, a bounded window at a time.

The replay flag is decided here, at publish time: a row is a replay when it waited in
the outbox across a disconnection or an agent restart, i.e. it was produced by another
session, produced while offline, or produced under an earlier link generation than the
one it is now sent on (see :meth:`edge.link.Link.stamp`). The stored payload is left as
produced; only the copy on the wire gets ``"replay": true`` and, with ``broker.compress``, is
packed (wire/compression.py). Snapshots (raw JPEG) go out unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from edge.outbox import Outbox, Row
from wire.compression import pack

if TYPE_CHECKING:
    from edge.link import Link

log = logging.getLogger(__name__)


class Courier:
    """Implements :class:`edge.link.LinkListener`; owns the mid -> row mapping."""

    def __init__(self, outbox: Outbox, *, session: str, window: int, compress: bool = False) -> None:
        self.outbox = outbox
        self.compress = compress
        self.session = session
        self.window = window
        self.link: Link | None = None
        #: mid -> row id of messages handed to paho and not yet acknowledged. Kept across
        #: reconnects: paho re-sends those itself.
        self.inflight: dict[int, int] = {}
        #: Highest row id handed to paho by this process; rows above it are still ours to send.
        self.handed_upto = 0
        self._acked: list[int] = []
        self._flush_scheduled = False
        self._changed = asyncio.Event()
        self.published = 0
        self.replayed = 0

    # -- LinkListener --------------------------------------------------------------------

    def link_up(self, epoch: int) -> None:
        # Called from paho's CONNACK handling, which re-sends the messages it still holds
        # (handed over before the disconnection) right after this callback: pump later so
        # those go out first and the broker sees the outbox in order.
        asyncio.get_running_loop().call_soon(self.pump)

    def link_down(self) -> None:
        self._changed.set()

    def link_ack(self, mid: int, ok: bool, reason: str) -> None:
        row_id = self.inflight.pop(mid, None)
        if row_id is None:
            return  # a status message, not an outbox row
        if not ok:
            log.warning(
                "broker rejected outbox message %d: %s; dropping it (a retry would be rejected too)",
                row_id,
                reason,
                extra={"row": row_id},
            )
        self._acked.append(row_id)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        self.pump()

    def waiting(self) -> int:
        return len(self.outbox)

    # -- sending ---------------------------------------------------------------------------

    def is_replay(self, row: Row, generation: int) -> bool:
        return row.session != self.session or row.link_gen != generation

    def wire_payload(self, row: Row, generation: int) -> bytes:
        if not row.is_json:
            return row.payload
        payload = row.payload
        if self.is_replay(row, generation):
            doc = json.loads(payload)
            doc["replay"] = True
            payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        return pack(payload) if self.compress else payload

    def pump(self) -> None:
        """Hand rows to paho while the link is up and the window has room."""
        link = self.link
        while link is not None and link.deliverable and len(self.inflight) < self.window:
            rows = self.outbox.after(self.handed_upto, self.window - len(self.inflight))
            if not rows:
                return
            for row in rows:
                if row.held:
                    return  # stamped by an unsynchronised clock: in order, so all after it wait too
                replay = self.is_replay(row, link.generation)
                mid = link.publish(row.topic, self.wire_payload(row, link.generation), retain=row.retain)
                self.inflight[mid] = row.id
                self.handed_upto = row.id
                self.published += 1
                self.replayed += replay

    def _flush(self) -> None:
        self._flush_scheduled = False
        acked, self._acked = self._acked, []
        self.outbox.delete(acked)
        self._changed.set()

    async def drain(self, within_s: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` passes or the link drops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while len(self.outbox) > 0 or self._acked:
            if self.link is None or not self.link.deliverable:
                return False
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            self.pump()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return True
