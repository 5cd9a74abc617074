"""What every console page shares: the technician dependency, form reading, time and links."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request, Response

from cloud.auth.deps import require
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.config import CloudConfig
from cloud.inventory import Device

Technician = Annotated[Principal, Depends(require(Perm.DEVICES))]


async def form_of(request: Request) -> dict[str, str]:
    """A posted form as plain strings (the last value of a repeated name)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def form_list(request: Request, name: str) -> list[str]:
    form = await request.form()
    return [v for v in form.getlist(name) if isinstance(v, str)]


def timed(resp: Response, started: float) -> Response:
    """``Server-Timing: app;dur=<ms>``: the page's time in the server (the bench reads it)."""
    resp.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return resp


def grafana_links(cfg: CloudConfig, d: Device) -> list[tuple[str, str]]:
    """(dashboard key, URL) into Grafana with the device preselected (web.grafana_url)."""
    base = cfg.web.grafana_url.rstrip("/")
    if not base:
        return []
    where = {"var-commune": d.commune, "var-site": d.site}
    links: list[tuple[str, str, dict[str, str]]] = [("grafana_fleet", "ciot-fleet", {"var-device": d.id})]
    if d.kind == "camera":
        links.append(("grafana_camera", "ciot-cameras", {"var-camera": d.id}))
    elif d.kind == "ap":
        links.append(("grafana_ap", "ciot-aps", {"var-ap": d.id}))
    links.append(("grafana_board", "ciot-boards", {"var-node": d.node}))
    return [(key, f"{base}/d/{uid}/?{urlencode({**where, **extra})}") for key, uid, extra in links]
