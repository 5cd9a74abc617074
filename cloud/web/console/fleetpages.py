"""Page 1, the fleet, and page 2, one device: its state, history, figures and picture."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from cloud.alerting.alerter import notice_of
from cloud.alerting.maintenance import Window, covered_devices
from cloud.api.alerts import covers
from cloud.api.fleet import issue_command
from cloud.auth.deps import audit, services
from cloud.auth.principal import Principal
from cloud.events.store import EventFilter
from cloud.fleet.store import Twin
from cloud.inventory import Device
from cloud.notify.messages import Language, summary
from cloud.storage.alerts_sql import AlertRow
from cloud.web.console import figures, fleetview, history
from cloud.web.console.common import Technician, form_of, grafana_links, timed
from cloud.web.console.fleetview import Filters, Row
from cloud.web.console.services import Console
from cloud.web.i18n import Translator
from cloud.web.pages import lang_of, render
from wire import WireError

#: How long the fleet page waits between refreshes (its script; the page works without it).
REFRESH_S = 5


async def fleet_rows(c: Console, p: Principal, devices: list[Device] | None = None) -> tuple[list[Row], bool]:
    """Every device of the caller's communes (or ``devices``), as the fleet page shows it."""
    scope = p.device_scope()
    devs = (
        devices
        if devices is not None
        else [d for d in c.inventory.devices if scope is None or d.commune in scope]
    )
    now = time.time()
    judging = True
    judged: dict[str, fleetview.Judged] = {}
    active: list[AlertRow] = []
    windows: list[Window] = []
    if c.alerting is not None:
        a = c.alerting
        judged = a.alerter.details(d.id for d in devs)
        judging = a.alerter.engine.judging
        active, windows = await asyncio.gather(
            asyncio.to_thread(a.store.query, state="active", limit=10_000, communes=scope),
            asyncio.to_thread(a.store.windows, now),
        )

    def twins() -> list[Twin]:
        return c.fleet.store.twins() if c.fleet is not None else []

    node_states, twin_rows = await asyncio.gather(
        asyncio.to_thread(c.sql.node_states), asyncio.to_thread(twins)
    )
    rows = fleetview.rows(
        c.inventory,
        devs,
        judged=judged,
        node_states=node_states,
        twins={t.node: t for t in twin_rows},
        active=active,
        windows=windows,
        now=now,
    )
    return rows, judging


@dataclass(frozen=True, slots=True)
class Picture:
    sha256: str
    at: float
    source: Literal["event", "command"]


async def latest_picture(request: Request, c: Console, d: Device) -> Picture | None:
    """The camera's newest picture the cloud holds: an event's snapshot or a snapshot command's."""
    svc = services(request)
    found: list[Picture] = []
    page = await asyncio.to_thread(svc.events.search, EventFilter(device=d.id), limit=10)
    ev = next((e for e in page.events if e.snapshot_sha256), None)
    if ev is not None and ev.snapshot_sha256:
        found.append(Picture(ev.snapshot_sha256, ev.end or ev.start, "event"))
    if c.fleet is not None:
        for cmd in await asyncio.to_thread(c.fleet.store.commands, d.node, limit=50):
            sha = (cmd.result or {}).get("snapshot_sha256")
            mine = cmd.name == "snapshot" and cmd.args.get("device", d.id) == d.id
            if mine and cmd.state == "done" and isinstance(sha, str) and len(sha) == 64:
                found.append(Picture(sha, cmd.finished_at or cmd.issued_at, "command"))
                break
    found = [x for x in found if svc.snapshots.path_for(x.sha256).exists()]
    return max(found, key=lambda x: x.at) if found else None


async def recent_boxes(request: Request, d: Device, minutes: float) -> list[dict[str, float]]:
    """Motion boxes of the camera's events that started in the last ``minutes``."""
    since = time.time() - minutes * 60
    page = await asyncio.to_thread(
        services(request).events.search, EventFilter(device=d.id, since=since), limit=100
    )
    return [b for e in page.events for b in e.boxes]


def router(c: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    def filters(commune: str, state: str, kind: str, q: str) -> Filters:
        return Filters(commune=commune, state=state if state in fleetview.STATES else "", kind=kind, q=q[:64])

    async def fleet_view(request: Request, p: Principal, f: Filters) -> fleetview.FleetView:
        rows, judging = await fleet_rows(c, p)
        return fleetview.view(rows, f, services(request).names(), judging)

    @r.get("/fleet")
    async def fleet_page(
        request: Request, p: Technician, commune: str = "", state: str = "", kind: str = "", q: str = ""
    ) -> Response:
        started = time.perf_counter()
        f = filters(commune, state, kind, q)
        v = await fleet_view(request, p, f)
        scope = p.device_scope()
        communes = [x for x in c.inventory.communes if scope is None or x.id in scope]
        resp = render(
            request,
            "console/fleet.html",
            p,
            v=v,
            f=f,
            communes=communes,
            now=time.time(),
            refresh_s=REFRESH_S,
        )
        return timed(resp, started)

    @r.get("/fleet/table")
    async def fleet_table(
        request: Request, p: Technician, commune: str = "", state: str = "", kind: str = "", q: str = ""
    ) -> Response:
        """The counts and the table alone: what the fleet page's script swaps in every few seconds."""
        started = time.perf_counter()
        f = filters(commune, state, kind, q)
        v = await fleet_view(request, p, f)
        return timed(render(request, "console/_fleet_live.html", p, v=v, f=f, now=time.time()), started)

    @r.get("/devices/{device}")
    async def device_page(request: Request, p: Technician, device: str, range: str = "24h") -> Response:
        d = c.device_or_404(request, p, device)
        span = history.RANGES.get(range)
        if span is None:
            raise HTTPException(422, "range: 24h or 7d")
        now = time.time()
        since = now - span
        (row,), _ = await fleet_rows(c, p, [d])
        t = Translator(lang_of(request, p))
        alerts: list[Any] = []
        windows: list[Window] = []
        if c.alerting is not None:
            store = c.alerting.store
            alerts = await asyncio.to_thread(store.query, commune=d.commune, since=since, limit=5000)
            windows = [
                w
                for w in await asyncio.to_thread(store.windows)
                if d.id in {x.id for x in covered_devices(w.target_kind, w.target, c.inventory)}
            ]
        found = history.outages(alerts, d.id, d.node, since, now)
        open_alerts = [a for a in alerts if a.state != "resolved" and covers(a, d.id, d.node)]
        figs, picture = await asyncio.gather(
            figures.read(c.influx, c.database, d.node, d.id, d.kind),
            latest_picture(request, c, d) if d.kind == "camera" else asyncio.sleep(0, None),
        )
        lang: Language = "en" if t.lang == "en" else "vi"
        return render(
            request,
            "console/device.html",
            p,
            d=d,
            row=row,
            range=range,
            now=now,
            since=since,
            svg=history.timeline_svg(found, windows, since, now, t, never_seen=row.board == "never_seen"),
            outages=found[:30],
            uptime=None if row.board == "never_seen" else history.uptime(found, since, now),
            windows=[w for w in windows if w.ends_at is None or w.ends_at > now],
            open_alerts=open_alerts,
            fig=figs,
            picture=picture,
            grafana=grafana_links(c.cfg, d),
            what=lambda a: summary(notice_of(a, "open", a.opened_at), c.inventory, lang)[0],
        )

    @r.get("/devices/{device}/snapshot")
    async def device_snapshot(request: Request, p: Technician, device: str) -> Response:
        """The camera's newest picture (an event's or a snapshot command's); each view audited."""
        d = c.device_or_404(request, p, device)
        pic = await latest_picture(request, c, d) if d.kind == "camera" else None
        if pic is None:
            raise HTTPException(404, f"no picture of {device} yet: take one with the snapshot command")
        audit(
            request, p, "device_snapshot", f"camera:{d.id}", commune=d.commune, detail={"sha256": pic.sha256}
        )
        return FileResponse(services(request).snapshots.path_for(pic.sha256), media_type="image/jpeg")

    @r.post("/devices/{device}/snapshot")
    async def take_snapshot(request: Request, p: Technician, device: str) -> Response:
        """Ask the camera's board for a picture now (the snapshot command); back to ``next``."""
        d = c.device_or_404(request, p, device)
        fleet = c.fleet_service()
        form = await form_of(request)
        try:
            await issue_command(request, p, fleet, d.node, d.commune, "snapshot", {"device": d.id})
        except WireError as exc:
            raise HTTPException(422, str(exc)) from None
        back = form.get("next", "")
        target = back if back in (f"/devices/{d.id}", f"/devices/{d.id}/masks") else f"/devices/{d.id}"
        return RedirectResponse(target + "?asked=snapshot", status_code=303)

    return r
