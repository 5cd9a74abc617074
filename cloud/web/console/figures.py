"""The newest figures of a device and its board, read from InfluxDB for the device page.

Best effort: InfluxDB down or slow leaves the figures out (the page says so) instead of
failing the page a technician opens precisely when something is wrong.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from cloud.storage.influx import InfluxClient, InfluxError

log = logging.getLogger(__name__)

#: How far back the newest point may be (a board silent for longer shows no figures).
LOOKBACK = "7d"
TIMEOUT_S = 3.0


@dataclass
class Figures:
    health: dict[str, Any] | None = None  # the board's newest health point (time: ms)
    camera: dict[str, Any] | None = None  # the camera's newest stream point
    ap: dict[str, Any] | None = None  # the access point's newest poll
    traffic_bps: tuple[float, float] | None = None  # (in, out) summed over its interfaces, last 15 min
    errors: list[str] = field(default_factory=list)


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _first_row(series: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not series or not series[0].get("values"):
        return None
    cols, row = series[0]["columns"], series[0]["values"][0]
    return {c: v for c, v in zip(cols, row, strict=True) if v is not None}


async def _newest(
    influx: InfluxClient, db: str, measurement: str, tag: str, value: str
) -> dict[str, Any] | None:
    q = (
        f'SELECT * FROM "{measurement}" WHERE "{tag}" = {_lit(value)} AND time > now() - {LOOKBACK} '
        "ORDER BY time DESC LIMIT 1"
    )
    return _first_row(await influx.query(q, db=db))


async def _traffic(influx: InfluxClient, db: str, device: str) -> tuple[float, float] | None:
    q = (
        'SELECT last("in_bps") AS "in", last("out_bps") AS "out" FROM "ap_if" '
        f'WHERE "device" = {_lit(device)} AND time > now() - 15m GROUP BY "ifname"'
    )
    series = await influx.query(q, db=db)
    if not series:
        return None
    total_in = total_out = 0.0
    for s in series:
        row = _first_row([s]) or {}
        total_in += float(row.get("in") or 0.0)
        total_out += float(row.get("out") or 0.0)
    return total_in, total_out


async def read(influx: InfluxClient, db: str, node: str, device: str, kind: str) -> Figures:
    out = Figures()

    async def one(what: str, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, TIMEOUT_S)
        except (InfluxError, TimeoutError) as exc:
            out.errors.append(f"{what}: {exc}" if str(exc) else what)
            log.info("device page: %s not read from InfluxDB: %s", what, exc)
            return None

    out.health = await one("health", _newest(influx, db, "health", "node", node))
    if kind == "camera":
        out.camera = await one("camera", _newest(influx, db, "camera", "device", device))
    elif kind == "ap":
        out.ap = await one("ap", _newest(influx, db, "ap", "device", device))
        out.traffic_bps = await one("ap_if", _traffic(influx, db, device))
    return out
