"""Outages as data: InfluxDB points for Grafana annotations, and availability per device.

Measurement ``outage``, one point per device and outage, at the outage's start:
tags ``device``, ``node``, ``commune``, ``scope`` (node/commune/device), ``cause``, and for
device alerts ``problem`` (``unreachable``, ``snmp_unreachable``, ...);
fields ``end_ms`` (0 while ongoing), ``duration_s``, ``ongoing``, ``alert_id``, ``text``.

An outage covers the time the device was really unheard (docs/reports.md): it starts just
after the last message before it and ends at the first message after it; the delays of
detection (the alert opened later) and of the recovery check (it resolved later) are not
part of it. They are in the alert rows (``/api/v1/alerts``).

The open writes the point and the resolve overwrites the same series and time, so a
Grafana annotation query (``SELECT text, end_ms FROM "rollups"."outage" WHERE $timeFilter``, with
``end_ms`` as the region end) shows ongoing outages too, and a retry never duplicates.

A node alert stands for the node's devices, a commune alert for the devices of every node
it counted, so availability per device is computable for any period from these points or
from the SQL alerts (``availability``).
"""

from __future__ import annotations

from collections.abc import Iterable

from cloud.inventory import Inventory
from cloud.notify.base import Notifier, SendError
from cloud.notify.messages import Message, Notice
from cloud.notify.settings import RetryConfig
from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.lineproto import join, line
from cloud.storage.retention import ROLLUP_DAYS, ROLLUP_POLICY, ensure_retention

MEASUREMENT = "outage"


def devices_of(
    scope: str, subject: str, members: Iterable[str], inventory: Inventory
) -> list[tuple[str, str]]:
    """(device, node) pairs an alert stands for; a node missing from the inventory is its own device."""
    if scope == "device":
        d = inventory.device(subject)
        return [(subject, d.node if d is not None else subject)]
    nodes = list(members) if scope == "commune" else [subject]
    out: list[tuple[str, str]] = []
    for node in nodes:
        devs = inventory.devices_of(node)
        out += [(d.id, node) for d in devs] if devs else [(node, node)]
    return out


def outage_lines(notice: Notice, inventory: Inventory, text: str) -> list[str]:
    ongoing = notice.kind != "resolve"
    end = notice.ended_at if notice.ended_at is not None else notice.at
    end_ms = 0 if ongoing else int(end * 1000)
    duration = (notice.at - notice.started_at) if ongoing else notice.duration_s
    return [
        line(
            MEASUREMENT,
            {
                "device": device,
                "node": node,
                "commune": notice.commune,
                "scope": notice.scope,
                "cause": notice.cause,
                "problem": notice.problem,  # device alerts: which (reports skip snmp_unreachable)
            },
            {
                "end_ms": float(end_ms),
                "duration_s": float(round(duration, 3)),
                "ongoing": ongoing,
                "alert_id": float(notice.alert_id),
                "text": text[:250],
            },
            int(notice.started_at * 1000),
        )
        for device, node in devices_of(notice.scope, notice.subject, notice.members, inventory)
    ]


class OutageRecorder(Notifier):
    """Writes outages to InfluxDB; runs on the dispatcher for its queue and retries, ignores reminders."""

    kind = "influx"

    def __init__(
        self,
        influx: InfluxClient,
        database: str,
        inventory: Inventory,
        *,
        rollup_days: float = ROLLUP_DAYS,
    ) -> None:
        super().__init__("influx-outages", RetryConfig(initial_s=0.5, max_s=30.0, attempts=1000))
        self.influx = influx
        self.database = database
        self.inventory = inventory
        self.rollup_days = rollup_days

    async def send(self, notice: Notice, message: Message) -> None:
        if notice.kind == "reminder":
            return
        body = join(outage_lines(notice, self.inventory, message.title))
        # kept with the rollups, for years: reports and availability read them over long periods
        result = await self.influx.write(self.database, body, rp=ROLLUP_POLICY)
        if result.outcome is WriteOutcome.NO_DATABASE or "retention policy not found" in result.error:
            await ensure_retention(self.influx, self.database, raw_days=None, rollup_days=self.rollup_days)
            result = await self.influx.write(self.database, body, rp=ROLLUP_POLICY)
        if result.outcome is not WriteOutcome.OK:
            raise SendError(
                f"InfluxDB write of outage failed: {result.error}",
                permanent=result.outcome is WriteOutcome.BAD_DATA,
            )


def availability(outages: Iterable[tuple[float, float | None]], start: float, end: float) -> float:
    """Share of [start, end) not covered by any outage (overlaps counted once); 1.0 = always up."""
    if end <= start:
        raise ValueError("empty period")
    spans = sorted((max(s, start), min(e if e is not None else end, end)) for s, e in outages)
    down = 0.0
    cur_s, cur_e = start, start
    for s, e in spans:
        if e <= s:
            continue
        if s > cur_e:
            down += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    down += cur_e - cur_s
    return 1.0 - down / (end - start)
