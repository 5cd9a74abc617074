"""Page 3, alerts: open and recent ones, one alert with its history, acknowledge, silence.

Notifications link straight to ``/alerts/<id>`` (``web.public_url``). Acknowledging and
silencing call the JSON API's own functions: the same checks, the same audit rows.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from cloud.alerting.alerter import notice_of
from cloud.api import alerts as alert_api
from cloud.api.params import RowId
from cloud.auth.deps import services
from cloud.notify.messages import Language, summary
from cloud.storage.alerts_sql import AlertRow
from cloud.web.console.common import Technician, form_of
from cloud.web.console.fleetpages import fleet_rows
from cloud.web.console.services import Console
from cloud.web.pages import lang_of, render

PAGE_SIZE: Final = 50
#: Silence choices offered on the page, in hours.
SILENCE_HOURS: Final = (1, 4, 12, 24, 72)
STATES: Final = ("active", "resolved", "all")


def router(c: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    def words(request: Request, p: Any) -> Any:
        lang: Language = "en" if lang_of(request, p) == "en" else "vi"

        def what(a: AlertRow) -> tuple[str, str]:
            return summary(notice_of(a, "open", a.opened_at), c.inventory, lang)

        return what

    @r.get("/alerts")
    async def alerts_page(
        request: Request,
        p: Technician,
        state: str = "active",
        commune: str = "",
        subject: str = "",
        page: int = Query(1, ge=1, le=10_000),
    ) -> Response:
        store = c.runner().store
        if state not in STATES:
            state = "active"
        rows = await asyncio.to_thread(
            store.query,
            state=None if state == "all" else state,
            commune=commune or None,
            subject=subject or None,
            limit=page * PAGE_SIZE + 1,
            communes=p.device_scope(),
        )
        more = len(rows) > page * PAGE_SIZE
        rows = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        scope = p.device_scope()
        params = {k: v for k, v in (("state", state), ("commune", commune), ("subject", subject)) if v}
        return render(
            request,
            "console/alerts.html",
            p,
            rows=rows,
            what=words(request, p),
            f={"state": state, "commune": commune, "subject": subject},
            communes=[x for x in c.inventory.communes if scope is None or x.id in scope],
            page=page,
            next_url=f"/alerts?{urlencode({**params, 'page': page + 1})}" if more else None,
            prev_url=f"/alerts?{urlencode({**params, 'page': page - 1})}" if page > 1 else None,
            now=time.time(),
        )

    @r.get("/alerts/{alert_id}")
    async def alert_page(request: Request, p: Technician, alert_id: RowId) -> Response:
        runner = c.runner()
        a = await alert_api.alert_or_404(request, p, runner.store, alert_id)
        inv = c.inventory
        # The devices behind it: a commune alert's silent boards, a board's devices, the device.
        if a.scope == "commune":
            devices = [d for node in a.members for d in inv.devices_of(node)]
        elif a.scope == "node":
            devices = inv.devices_of(a.subject)
        else:
            devices = [d for d in (inv.device(a.subject),) if d is not None]
        rows, _ = await fleet_rows(c, p, devices) if devices else ([], True)
        earlier = await asyncio.to_thread(runner.store.query, scope=a.scope, subject=a.subject, limit=20)
        sha = a.snapshot_sha256 or ""
        picture = bool(sha) and services(request).snapshots.path_for(sha).exists()
        now = time.time()
        # resolved before the retention period: retention deleted the picture (the row keeps its hash)
        expired = bool(a.resolved_at) and (a.resolved_at or 0.0) < now - c.cfg.events.retention_days * 86400
        return render(
            request,
            "console/alert.html",
            p,
            a=a,
            what=words(request, p),
            rows=rows,
            earlier=[x for x in earlier if x.id != a.id],
            silence_hours=SILENCE_HOURS,
            now=now,
            picture=picture,
            picture_expired=expired,
        )

    @r.post("/alerts/{alert_id}/ack")
    async def ack_post(request: Request, p: Technician, alert_id: RowId) -> Response:
        form = await form_of(request)
        comment = form.get("comment", "").strip()
        if len(comment) > 2000:
            raise HTTPException(422, "comment: at most 2000 characters")
        await alert_api.acknowledge(request, p, c.runner().store, alert_id, comment)
        return RedirectResponse(f"/alerts/{alert_id}", status_code=303)

    @r.post("/alerts/{alert_id}/silence")
    async def silence_post(request: Request, p: Technician, alert_id: RowId) -> Response:
        form = await form_of(request)
        try:
            hours = float(form.get("hours", ""))
        except ValueError:
            raise HTTPException(422, "hours: a number") from None
        if not 0 < hours <= 30 * 24:
            raise HTTPException(422, "hours: more than 0, at most 720")
        await alert_api.silence(request, p, c.runner().store, alert_id, hours * 3600)
        return RedirectResponse(f"/alerts/{alert_id}", status_code=303)

    return r
