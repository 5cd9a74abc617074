"""Every device as the fleet page shows it: one state a technician acts on, and why.

The state is, in this order: ``maintenance`` (an active window covers it: alerts are recorded,
nobody is woken), ``never_seen`` (its board never sent anything), ``unknown`` (its board is
down or unheard since the cloud started: the device cannot be judged), ``down`` (a problem of
its own: stream down, AP unreachable, ...) or ``up``. The judgement is the alert evaluator's
(the same as ``/api/v1/devices``); the versions are the fleet twin's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlencode

from cloud.alerting.engine import State
from cloud.alerting.maintenance import Window, in_maintenance
from cloud.api.fleet import Sync, sync_of
from cloud.fleet.store import Twin
from cloud.inventory import Device, Inventory
from cloud.storage.alerts_sql import AlertRow

Shown = Literal["up", "down", "unknown", "never_seen", "maintenance"]
#: The evaluator's look at a device: its board's state, its own, its problems, its board's last message.
Judged = tuple[State, State, dict[str, str], float | None]
STATES: Final[tuple[Shown, ...]] = ("up", "down", "unknown", "never_seen", "maintenance")


@dataclass(frozen=True, slots=True)
class Row:
    device: Device
    state: Shown
    board: State | Literal["never_seen"]
    problems: dict[str, str]  # the device's own problems now, with their figures
    last_seen: float | None  # its board's newest message, cloud time
    agent_version: str | None
    running_version: int | None
    desired_version: int
    sync: Sync
    open_alerts: int


@dataclass(frozen=True, slots=True)
class Filters:
    commune: str = ""
    state: str = ""
    kind: str = ""
    q: str = ""  # part of a device id, site name or address

    def keep(self, r: Row, names: dict[str, str]) -> bool:
        d = r.device
        if self.commune and d.commune != self.commune:
            return False
        if self.state and r.state != self.state:
            return False
        if self.kind and d.kind != self.kind:
            return False
        if self.q:
            q = self.q.lower()
            hay = (d.id, d.node, d.address, names.get(d.site, d.site))
            return any(q in x.lower() for x in hay)
        return True

    def query(self) -> dict[str, str]:
        pairs = (("commune", self.commune), ("state", self.state), ("kind", self.kind), ("q", self.q))
        return {k: v for k, v in pairs if v}

    def url(self, **change: str) -> str:
        """These filters with some changed, as a query string (``?state=down``)."""
        q = {k: v for k, v in {**self.query(), **change}.items() if v}
        return "?" + urlencode(q) if q else "?"


@dataclass(frozen=True, slots=True)
class FleetView:
    rows: list[Row]  # after the filters
    counts: dict[str, int]  # per state, before the state filter (the other filters applied)
    total: int  # devices in the caller's communes
    judging: bool  # False while the cloud has lost the broker (states are stale)
    kinds: list[str] = field(default_factory=list)


def alert_counts(active: Iterable[AlertRow], inventory: Inventory) -> Counter[str]:
    """Open alerts per device: its own, its board's and its commune's."""
    out: Counter[str] = Counter()
    for a in active:
        if a.scope == "device":
            out[a.subject] += 1
        elif a.scope == "node":
            out.update(d.id for d in inventory.devices_of(a.subject))
        else:
            out.update(d.id for d in inventory.devices if d.commune == a.subject)
    return out


def rows(
    inventory: Inventory,
    devices: Iterable[Device],
    *,
    judged: dict[str, Judged],
    node_states: dict[str, dict[str, Any]],
    twins: dict[str, Twin],
    active: list[AlertRow],
    windows: list[Window],
    now: float,
) -> list[Row]:
    counts = alert_counts(active, inventory)
    out = []
    for d in devices:
        st = node_states.get(d.node) or {}
        board: State | Literal["never_seen"]
        problems: dict[str, str] = {}
        if d.id in judged:  # the evaluator's judgement, and its newer last-seen
            board, own, problems, heard = judged[d.id]
            seen = heard or st.get("last_seen")
        else:  # alerting off: raw presence only
            seen = st.get("last_seen")
            board = "down" if st.get("status") == "offline" else ("up" if seen else "unknown")
            own = "up" if board == "up" else "unknown"
        if not seen:
            board = "never_seen"
        state: Shown
        if in_maintenance(windows, "device", d.id, inventory, now):
            state = "maintenance"
        elif board == "never_seen":
            state = "never_seen"
        elif board != "up":
            state = "unknown"
        else:
            state = "down" if own == "down" else "up"
        t = twins.get(d.node)
        out.append(
            Row(
                device=d,
                state=state,
                board=board,
                problems=problems,
                last_seen=float(seen) if seen else None,
                agent_version=(t.agent_version if t else None) or st.get("agent_version"),
                running_version=t.running_version if t else None,
                desired_version=t.desired_version if t else 0,
                sync=sync_of(t),
                open_alerts=counts[d.id],
            )
        )
    return out


def view(all_rows: list[Row], f: Filters, names: dict[str, str], judging: bool) -> FleetView:
    unfiltered = Filters(commune=f.commune, kind=f.kind, q=f.q)
    base = [r for r in all_rows if unfiltered.keep(r, names)]
    counts = Counter(r.state for r in base)
    return FleetView(
        rows=[r for r in base if not f.state or r.state == f.state],
        counts={s: counts.get(s, 0) for s in STATES},
        total=len(base),
        judging=judging,
        kinds=sorted({r.device.kind for r in all_rows}),
    )
