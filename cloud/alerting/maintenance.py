"""Maintenance windows: when an alert is recorded but nobody is woken for it.

A window targets a device, a node, a site or a whole commune, once (``starts_at`` to
``ends_at``) or every week on given weekdays at a local time for a duration, in the
commune's time zone (technicians plan "Tuesdays 22:00 for 2 hours", not UTC instants).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from cloud.inventory import Device, Inventory

TargetKind = Literal["device", "node", "site", "commune"]
DEFAULT_TZ = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True, slots=True)
class Window:
    target_kind: TargetKind
    target: str
    starts_at: float  # one-off: start; recurring: first day it applies
    ends_at: float | None = None  # one-off: end; recurring: last day it applies (None: forever)
    weekdays: frozenset[int] = frozenset()  # recurring: 0 = Monday ... 6 = Sunday
    local_start: str = ""  # recurring: "HH:MM"
    duration_s: float = 0.0  # recurring
    tz: str = DEFAULT_TZ
    comment: str = ""
    id: int = 0

    @property
    def recurring(self) -> bool:
        return bool(self.weekdays)

    def active(self, at: float) -> bool:
        if at < self.starts_at:
            return False
        if not self.recurring:
            return self.ends_at is None or at < self.ends_at
        if self.ends_at is not None and at >= self.ends_at:
            return False
        zone = ZoneInfo(self.tz)
        local = datetime.fromtimestamp(at, zone)
        hh, mm = (int(x) for x in self.local_start.split(":"))
        # today's occurrence or yesterday's, which may run past midnight
        for days_back in (0, 1):
            day = local.date() - timedelta(days=days_back)
            if day.weekday() not in self.weekdays:
                continue
            start = datetime(day.year, day.month, day.day, hh, mm, tzinfo=zone).timestamp()
            if start <= at < start + self.duration_s:
                return True
        return False


def targets_of(scope: str, subject: str, inventory: Inventory) -> tuple[set[tuple[str, str]], set[str]]:
    """What a window may name to cover an alert: (kind, id) pairs, and the devices it stands for.

    A node alert is also covered when every device of the node is, so a technician can put
    the one camera they are replacing into maintenance without knowing its board's id.
    """
    if scope == "commune":
        return {("commune", subject)}, set()
    if scope == "device":
        d = inventory.device(subject)
        pairs = {("device", subject)}
        if d is not None:
            pairs |= {("node", d.node), ("site", d.site), ("commune", d.commune)}
        return pairs, set()
    node = inventory.node(subject)
    pairs = {("node", subject)}
    if node is not None:
        pairs |= {("site", node.site), ("commune", node.commune)}
    return pairs, {d.id for d in inventory.devices_of(subject)} or {subject}


def in_maintenance(windows: list[Window], scope: str, subject: str, inventory: Inventory, at: float) -> bool:
    pairs, devices = targets_of(scope, subject, inventory)
    live = [w for w in windows if w.active(at)]
    if any((w.target_kind, w.target) in pairs for w in live):
        return True
    covered = {w.target for w in live if w.target_kind == "device"}
    return bool(devices) and devices <= covered


def covered_devices(kind: str, target: str, inventory: Inventory) -> list[Device]:
    """The inventory devices a window on (kind, target) covers, in inventory order."""
    match kind:
        case "device":
            return [d for d in inventory.devices if d.id == target]
        case "node":
            return inventory.devices_of(target)
        case "site":
            return [d for d in inventory.devices if d.site == target]
        case "commune":
            return [d for d in inventory.devices if d.commune == target]
    return []


def target_commune(kind: str, target: str, inventory: Inventory) -> str | None:
    """The commune a window's target belongs to; None when the inventory does not know it."""
    if kind == "commune":
        return target if any(c.id == target for c in inventory.communes) else None
    if kind == "site":
        return next((s.commune for s in inventory.sites if s.id == target), None)
    if kind == "node":
        n = inventory.node(target)
        return n.commune if n is not None else None
    d = inventory.device(target)
    return d.commune if d is not None else None


def occurrences(w: Window, since: float, until: float) -> list[tuple[float, float]]:
    """The window's (start, end) spans overlapping [since, until), oldest first: for a timeline
    and for "next: Tuesday 22:00" on the maintenance page."""
    if not w.recurring:
        end = w.ends_at if w.ends_at is not None else until
        return [(w.starts_at, end)] if w.starts_at < until and end > since else []
    zone = ZoneInfo(w.tz)
    hh, mm = (int(x) for x in w.local_start.split(":"))
    out: list[tuple[float, float]] = []
    day = datetime.fromtimestamp(max(since, w.starts_at), zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(until, zone).date()
    while day <= last:
        if day.weekday() in w.weekdays:
            start = datetime(day.year, day.month, day.day, hh, mm, tzinfo=zone).timestamp()
            end = start + w.duration_s
            start = max(start, w.starts_at)  # what ``active`` says, span by span
            if w.ends_at is not None:
                end = min(end, w.ends_at)
            if start < min(end, until) and end > since:
                out.append((start, end))
        day += timedelta(days=1)
    return out
