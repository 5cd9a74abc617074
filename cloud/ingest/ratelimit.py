"""Per-node rate limits of the ingest worker: a flooding board is throttled and reported.

Two token buckets per node (the node is the fourth topic level, so this costs a string
split and some arithmetic, and runs **before** any JSON is parsed):

* the live bucket: ``rate_per_s`` sustained, ``burst`` at once (an hour of normal traffic);
* the replay bucket: drawn on only when the live bucket is empty and the message says
  ``"replay":true`` (a byte search, no parsing), or is a snapshot of a node that sent a
  replay recently (snapshots are raw JPEG and carry no flag). It is sized for days of a
  board's outbox, so the replay after an outage is stored whole.

A message neither bucket admits is *throttled*: the caller acknowledges it (else the
broker would redeliver it forever) and counts it, without storing it. Once per
``report_interval_s`` per node, the first throttled message is kept as a sample dead
letter and ``reports()`` says who floods, at what rate; a node that went one interval
without being throttled is reported as having stopped.

Trusting the replay flag is deliberate: a board that lies about it gains the replay
allowance (``replay_rate_per_s`` sustained), which is bounded and far below what one
ingest worker handles; nothing a board sends can make another board's messages wait.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Final

from cloud.config import RateLimitConfig
from wire.compression import CompressionError, unpack
from wire.messages import MAX_JSON_BYTES

log = logging.getLogger(__name__)

_REPLAY_FLAGS: Final = (b'"replay":true', b'"replay": true')
#: A snapshot counts as part of a replay this long after the node's last replayed message.
_REPLAY_WINDOW_S: Final = 60.0
#: Forget idle nodes beyond this many (a stranger's topics cannot grow memory without bound).
_MAX_NODES: Final = 10_000
#: Shortest time between two scans for reports.
_SCAN_S: Final = 0.5


@dataclass(slots=True)
class _Bucket:
    tokens: float
    replay_tokens: float
    at: float
    replay_seen: float = -1e18
    # throttling of the current report interval
    dropped: int = 0  # throttled since the last report
    dropped_total: int = 0  # throttled since the node began flooding
    received: int = 0  # every message since the last report (for the rate)
    window_start: float = 0.0
    last_dropped: float = -1e18
    flooding: bool = False
    sampled: bool = False  # a sample dead letter was taken this interval


@dataclass(frozen=True, slots=True)
class FloodReport:
    """A node started, goes on, or stopped flooding."""

    node: str
    active: bool
    rate_per_s: float  # messages/s the node sent over the interval (all of them, admitted or not)
    dropped: int  # throttled over the interval
    dropped_total: int  # throttled since it began flooding
    interval_s: float


class RateLimiter:
    def __init__(self, cfg: RateLimitConfig) -> None:
        self.cfg = cfg
        self.enabled = cfg.enabled
        self._buckets: dict[str, _Bucket] = {}
        self._scanned_at = -1e18

    def _bucket(self, node: str, now: float) -> _Bucket:
        b = self._buckets.get(node)
        if b is None:
            if len(self._buckets) >= _MAX_NODES:
                self._forget(now)
            b = self._buckets[node] = _Bucket(
                float(self.cfg.burst), float(self.cfg.replay_burst), now, window_start=now
            )
        return b

    def _forget(self, now: float) -> None:
        idle = [n for n, b in self._buckets.items() if not b.flooding and now - b.at > 600]
        for n in idle or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[n]

    def admit(self, node: str, payload: bytes, snapshot: bool, now: float) -> bool:
        """True: process the message. False: throttled (acknowledge, count, do not store)."""
        b = self._bucket(node, now)
        b.received += 1
        cfg = self.cfg
        elapsed = now - b.at
        if elapsed > 0:
            b.at = now
            b.tokens = min(float(cfg.burst), b.tokens + elapsed * cfg.rate_per_s)
            b.replay_tokens = min(float(cfg.replay_burst), b.replay_tokens + elapsed * cfg.replay_rate_per_s)
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        if snapshot:
            replay = now - b.replay_seen <= _REPLAY_WINDOW_S
        else:
            with contextlib.suppress(CompressionError):  # a board on 3G packs its JSON
                payload = unpack(payload, MAX_JSON_BYTES)
            head = payload[:4096]  # the flag is a top-level field; encoders put it early or late
            replay = any(f in head or f in payload[-256:] for f in _REPLAY_FLAGS)
            if replay:
                b.replay_seen = now
        if replay and b.replay_tokens >= 1.0:
            b.replay_tokens -= 1.0
            return True
        b.dropped += 1
        b.dropped_total += 1
        b.last_dropped = now
        return False

    def take_sample(self, node: str) -> bool:
        """True for the first throttled message of a node in each report interval."""
        b = self._buckets.get(node)
        if b is None or b.sampled:
            return False
        b.sampled = True
        return True

    def reports(self, now: float) -> list[FloodReport]:
        """Nodes that started or go on flooding (once per interval each), or stopped.

        Scans every node, so it does so at most every half second (the caller may ask after
        each commit)."""
        out: list[FloodReport] = []
        if now - self._scanned_at < _SCAN_S:
            return out
        self._scanned_at = now
        interval = self.cfg.report_interval_s
        for node, b in self._buckets.items():
            span = now - b.window_start
            if b.dropped and (not b.flooding or span >= interval):
                rate = b.received / max(span, 1.0)
                out.append(FloodReport(node, True, rate, b.dropped, b.dropped_total, max(span, 0.0)))
                if b.flooding:  # a new interval: a new sample (the start was sampled already)
                    b.sampled = False
                b.flooding = True
                b.dropped = b.received = 0
                b.window_start = now
            elif b.flooding and now - b.last_dropped >= interval:
                rate = b.received / max(span, 1.0)
                out.append(FloodReport(node, False, rate, 0, b.dropped_total, max(span, 0.0)))
                b.flooding = False
                b.dropped_total = b.received = 0
                b.window_start = now
            elif not b.flooding and span >= interval:
                b.received = 0
                b.window_start = now
                b.sampled = False
        return out

    def flooding(self) -> list[str]:
        return sorted(n for n, b in self._buckets.items() if b.flooding)


def node_of(topic: str) -> str:
    """The sender a topic names (fourth level of ``ciot/v1/<commune>/<node>/...``), else ``""``."""
    parts = topic.split("/", 4)
    if len(parts) >= 4 and parts[0] == "ciot":
        return parts[3][:64]
    return ""
