"""Every device's state as a time series, for Grafana's fleet overview.

Measurement ``device_state``, one point per inventory device every ``states_s``, written
by the evaluator (the lease holder): tags device, node, commune, site, kind; fields
``state`` (``up``, ``down``, ``unknown``: behind an offline board or never heard),
``state_code`` (0, 1, 2, for colour mappings), ``available`` (1.0 when up: its mean over
a range is the sampled availability), ``open_alerts`` (alerts about the device,
its board or its commune) and ``last_seen_ms`` (its board's last message, cloud time).
InfluxQL alone cannot derive "unknown behind an offline board" from raw telemetry; the
engine already knows it, so it says it.
"""

from __future__ import annotations

from collections import Counter

from cloud.alerting.engine import State
from cloud.inventory import Inventory
from cloud.storage.alerts_sql import AlertRow
from cloud.storage.lineproto import line

MEASUREMENT = "device_state"
CODES: dict[State, int] = {"up": 0, "down": 1, "unknown": 2}


def state_lines(
    states: list[tuple[str, State, float | None]],
    active: list[AlertRow],
    inventory: Inventory,
    now: float,
) -> list[str]:
    per_device: Counter[str] = Counter()
    for a in active:
        if a.scope == "device":
            per_device[a.subject] += 1
        elif a.scope == "node":
            per_device.update(d.id for d in inventory.devices_of(a.subject))
        else:
            per_device.update(d.id for d in inventory.devices if d.commune == a.subject)
    out = []
    ts = int(now * 1000)
    for device, state, seen in states:
        d = inventory.device(device)
        if d is None:
            continue
        tags = {"device": d.id, "node": d.node, "commune": d.commune, "site": d.site, "kind": d.kind}
        fields: dict[str, bool | int | float | str | None] = {
            "state": state,
            "state_code": float(CODES[state]),
            "available": 1.0 if state == "up" else 0.0,  # mean() over a range: availability
            "open_alerts": float(per_device[device]),
            "last_seen_ms": float(int(seen * 1000)) if seen is not None else None,
        }
        out.append(line(MEASUREMENT, tags, fields, ts))
    return out
