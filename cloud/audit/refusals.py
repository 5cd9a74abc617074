"""Refused requests in the audit trail, without letting the trail become a flood vector.

Every 403, and every 404 on a protected object, asked by a logged-in user is one row
(action ``access_denied``): who, from where, the route, the object, the status and why
(``out_of_scope``: the object exists in another commune; ``missing``; ``role``; ``csrf``).
A 404 answers "missing" and "not yours" alike on purpose; only the audit tells them apart.

Identical refusals (same user, address, method, route, object and status) within
``window_s`` of the first are counted in memory, not written; when the window closes one
``access_denied_repeat`` row carries the count and the first row's id. A user's distinct
refusals beyond ``max_rows`` in a window are counted likewise into one
``access_denied_more`` row. A burst of any size thus writes a bounded number of rows, and
counts go into new rows, never into old ones, so the trail stays append-only and its hash
chain intact. Pending counts are written by :meth:`RefusalLog.flush` (called on every
refusal and periodically by the app) and :meth:`RefusalLog.close` (at shutdown).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cloud.audit.trail import AuditTrail


@dataclass(frozen=True, slots=True)
class Refusal:
    actor: str
    ip: str
    user_agent: str
    method: str
    route: str  # the route's template, e.g. /api/v1/events/{event_pk}
    path: str
    target: str  # the object, e.g. event:7, export:3, camera:tt-cam-01
    status: int
    outcome: str
    commune: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str, str, str, int]:
        return (self.actor, self.ip, self.method, self.route, self.target, self.status)


@dataclass(slots=True)
class _Open:
    refusal: Refusal
    first_id: int
    first_at: float
    last_at: float
    repeats: int = 0


@dataclass(slots=True)
class _Budget:
    start: float
    rows: int = 0
    more: int = 0
    last_at: float = 0.0
    sample: list[str] = field(default_factory=list)


class RefusalLog:
    def __init__(
        self,
        trail: AuditTrail,
        *,
        window_s: float = 600.0,
        max_rows: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.trail = trail
        self.window_s = window_s
        self.max_rows = max_rows
        self.clock = clock
        self._open: dict[tuple[str, str, str, str, str, int], _Open] = {}
        self._budgets: dict[str, _Budget] = {}
        self._lock = threading.Lock()

    def record(self, r: Refusal) -> None:
        now = self.clock()
        with self._lock:
            self._flush(now)
            o = self._open.get(r.key())
            if o is not None:
                o.repeats += 1
                o.last_at = now
                return
            b = self._budgets.setdefault(r.actor, _Budget(now))
            if b.rows >= self.max_rows:
                b.more += 1
                b.last_at = now
                if len(b.sample) < 10 and r.target not in b.sample:
                    b.sample.append(r.target)
                return
            b.rows += 1
            detail: dict[str, Any] = {
                "method": r.method,
                "route": r.route,
                "path": r.path[:300],
                "status": r.status,
                "outcome": r.outcome,
            }
            if r.query:
                detail["query"] = {k[:40]: v[:100] for k, v in list(r.query.items())[:10]}
            e = self.trail.record(
                r.actor,
                "access_denied",
                r.target,
                commune=r.commune,
                detail=detail,
                ip=r.ip,
                user_agent=r.user_agent,
            )
            self._open[r.key()] = _Open(r, e.id, now, now)

    def flush(self) -> None:
        """Write the counts of windows that have closed."""
        with self._lock:
            self._flush(self.clock())

    def close(self) -> None:
        """Write every pending count now (at shutdown)."""
        with self._lock:
            self._flush(float("inf"))

    def _flush(self, now: float) -> None:
        for key, o in list(self._open.items()):
            if now < o.first_at + self.window_s:
                continue
            del self._open[key]
            if o.repeats:
                r = o.refusal
                self.trail.record(
                    r.actor,
                    "access_denied_repeat",
                    r.target,
                    commune=r.commune,
                    detail={
                        "first": o.first_id,
                        "repeats": o.repeats,
                        "route": r.route,
                        "status": r.status,
                        "last_at": round(o.last_at, 3),
                    },
                    ip=r.ip,
                    user_agent=r.user_agent,
                )
        for actor, b in list(self._budgets.items()):
            if now < b.start + self.window_s:
                continue
            del self._budgets[actor]
            if b.more:
                self.trail.record(
                    actor,
                    "access_denied_more",
                    detail={
                        "refusals": b.more,
                        "since": round(b.start, 3),
                        "last_at": round(b.last_at, 3),
                        "targets_sample": b.sample,
                        "rows_written": b.rows,
                    },
                )
