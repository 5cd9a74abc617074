"""HTTP routes of alerting: list and filter alerts, acknowledge, silence, maintenance windows,
a live summary per commune, and availability per device.

Who acknowledges, silences or plans maintenance is the logged-in user (never a name in the
request), and each of these actions is a row of the audit trail. A technician scoped to
communes sees and acts on their communes' alerts and windows only (others answer 404, as if
they did not exist; the audit trail tells which). The web console (``cloud/web/console``)
calls the same functions as these routes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from cloud.alerting.maintenance import DEFAULT_TZ, Window, target_commune
from cloud.alerting.outages import availability
from cloud.alerting.runner import AlertRunner
from cloud.api.params import RowId
from cloud.auth.deps import audit, note_refusal, require, services
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.inventory import Inventory
from cloud.storage.alerts_sql import AlertRow, AlertStore

Technician = Annotated[Principal, Depends(require(Perm.DEVICES))]

#: Device problems that make a device unavailable (the others are warnings).
DOWN_PROBLEMS = frozenset({"stream_down", "frozen", "unreachable"})


class AlertOut(BaseModel):
    id: int
    key: str = Field(description="node:<id>, commune:<id> or device:<id>:<problem>.")
    scope: Literal["node", "commune", "device"]
    subject: str
    commune: str
    cause: str = Field(description="will, silent, shutdown, flapping, uplink or device.")
    severity: str
    problem: str = Field("", description="Device alerts: stream_down, frozen, fps_low, unreachable, ...")
    detail: str = Field("", description="Device alerts: the figures behind the problem.")
    state: Literal["open", "acknowledged", "resolved"]
    started_at: datetime = Field(
        description="When the outage began: just after the last message heard from the node "
        "(device alerts: the first point reporting the problem)."
    )
    opened_at: datetime = Field(description="When the alert opened (started_at + detection delay).")
    ended_at: datetime | None = Field(
        description="When the outage ended: the first message after it (device alerts: the point "
        "that cleared the problem). Null while it lasts."
    )
    resolved_at: datetime | None = Field(
        description="When the alert resolved: after the recovery check (recovery_s of the node "
        "staying up), so later than ended_at."
    )
    duration_s: float | None = Field(
        description="The outage itself, ended_at - started_at: what availability counts."
    )
    detection_delay_s: float = Field(description="opened_at - started_at: how long noticing it took.")
    recovery_delay_s: float | None = Field(
        description="resolved_at - ended_at: how long confirming the recovery took (null while open)."
    )
    flaps: int = Field(description="Returns shorter than the recovery time, then down again.")
    down: int = Field(description="Commune alerts: nodes silent.")
    total: int = Field(description="Commune alerts: nodes monitored.")
    members: list[str] = Field(description="Commune alerts: the silent nodes.")
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str | None
    silenced_until: datetime | None
    suppressed: bool = Field(description="Opened during maintenance or silence: recorded, not sent.")
    notified_at: datetime | None
    reminders: int
    snapshot_sha256: str | None = Field(
        None,
        description="Device alerts: the picture that shows the problem (a tampered camera's, taken "
        "when it began), SHA-256. Null when the board sent none (older agents).",
    )
    snapshot_url: str | None = Field(
        None,
        description="Where to fetch that picture (technicians only; 404 until it has arrived).",
    )


class AckIn(BaseModel):
    comment: str = Field("", max_length=2000, description="E.g. who goes and when; the acknowledger is you.")


class SilenceIn(BaseModel):
    for_s: float = Field(gt=0, le=30 * 86400, description="No reminders for this long.")


class WindowIn(BaseModel):
    target_kind: Literal["device", "node", "site", "commune"]
    target: str = Field(min_length=1, max_length=64)
    starts_at: datetime
    ends_at: datetime | None = Field(None, description="One-off: end. Recurring: last day it applies.")
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=list, max_length=7, description="Recurring: 0=Monday ... 6=Sunday."
    )
    local_start: str = Field("", pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^$", description="Recurring: HH:MM.")
    duration_s: float = Field(0.0, ge=0, description="Recurring: length of each occurrence.")
    tz: str = Field(DEFAULT_TZ, max_length=64)
    comment: str = Field("", max_length=2000)


class WindowOut(WindowIn):
    id: int


class CommuneSummary(BaseModel):
    commune: str
    name: str
    nodes_up: int
    nodes_down: int
    nodes_unknown: int = Field(description="Never heard since the cloud started.")
    devices_up: int
    devices_down: int
    devices_unknown: int = Field(description="Behind a down or never-heard node.")
    active_alerts: int
    judging: bool = Field(description="False while the cloud itself has lost the broker.")


class AvailabilityOut(BaseModel):
    device: str
    start: datetime
    end: datetime
    availability: float = Field(
        description="Share of the period the device was not in an outage (each outage from just after "
        "the last message heard to the first message after it; docs/reports.md)."
    )
    down_s: float = Field(description="Seconds of the period in outages (overlaps counted once).")
    outages: int


def _dt(v: float | None) -> datetime | None:
    return datetime.fromtimestamp(v, UTC) if v is not None else None


def _alert(r: AlertRow) -> AlertOut:
    return AlertOut(
        id=r.id,
        key=r.key,
        scope=r.scope,
        subject=r.subject,
        commune=r.commune,
        cause=r.cause,
        severity=r.severity,
        problem=r.problem,
        detail=r.detail,
        state=r.state,
        started_at=datetime.fromtimestamp(r.started_at, UTC),
        opened_at=datetime.fromtimestamp(r.opened_at, UTC),
        ended_at=_dt(r.end),
        resolved_at=_dt(r.resolved_at),
        duration_s=r.duration_s,
        detection_delay_s=max(0.0, r.opened_at - r.started_at),
        recovery_delay_s=(
            max(0.0, r.resolved_at - r.end) if r.resolved_at is not None and r.end is not None else None
        ),
        flaps=r.flaps,
        down=r.down,
        total=r.total,
        members=list(r.members),
        acked_by=r.acked_by,
        acked_at=_dt(r.acked_at),
        ack_comment=r.ack_comment,
        silenced_until=_dt(r.silenced_until),
        suppressed=r.suppressed,
        notified_at=_dt(r.notified_at),
        reminders=r.reminders,
        snapshot_sha256=r.snapshot_sha256,
        snapshot_url=snapshot_path(r.id) if r.snapshot_sha256 else None,
    )


def snapshot_path(alert_id: int) -> str:
    """The alert's picture (technicians only), relative to the cloud's public URL."""
    return f"/api/v1/alerts/{alert_id}/snapshot"


def _window_out(w: Window) -> WindowOut:
    return WindowOut(
        id=w.id,
        target_kind=w.target_kind,
        target=w.target,
        starts_at=datetime.fromtimestamp(w.starts_at, UTC),
        ends_at=_dt(w.ends_at),
        weekdays=sorted(w.weekdays),
        local_start=w.local_start,
        duration_s=w.duration_s,
        tz=w.tz,
        comment=w.comment,
    )


async def alert_or_404(request: Request, p: Principal, store: AlertStore, alert_id: int) -> AlertRow:
    """The alert if the caller manages its commune; 404 otherwise (audited as a refusal)."""
    row = await asyncio.to_thread(store.get, alert_id)
    if row is None or not p.manages(row.commune):
        note_refusal(request, f"alert:{alert_id}", row.commune if row is not None else None)
        raise HTTPException(404, f"no alert #{alert_id} in your communes")
    return row


async def acknowledge(
    request: Request, p: Principal, store: AlertStore, alert_id: int, comment: str
) -> AlertRow:
    """Acknowledge in the caller's name (reminders stop); 409 when someone else already did."""
    await alert_or_404(request, p, store, alert_id)
    row = await asyncio.to_thread(store.acknowledge, alert_id, p.username, time.time(), comment)
    if row is None:
        raise HTTPException(404, f"no alert #{alert_id}")
    if row.acked_by != p.username:
        raise HTTPException(409, f"alert #{alert_id} is {row.state}, acknowledged by {row.acked_by}")
    audit(
        request,
        p,
        "alert_ack",
        f"alert:{alert_id}",
        commune=row.commune,
        detail={"key": row.key, "comment": comment},
    )
    return row


async def silence(request: Request, p: Principal, store: AlertStore, alert_id: int, for_s: float) -> AlertRow:
    """No reminders for ``for_s`` seconds."""
    await alert_or_404(request, p, store, alert_id)
    row = await asyncio.to_thread(store.silence, alert_id, time.time() + for_s)
    if row is None:
        raise HTTPException(404, f"no alert #{alert_id}")
    audit(
        request,
        p,
        "alert_silence",
        f"alert:{alert_id}",
        commune=row.commune,
        detail={"key": row.key, "for_s": for_s},
    )
    return row


def window_of(body: WindowIn, window_id: int = 0) -> Window:
    """The window a request describes; 422 when it is incomplete."""
    if body.weekdays and (not body.local_start or body.duration_s <= 0):
        raise HTTPException(422, "a recurring window needs local_start and duration_s")
    if not body.weekdays and body.ends_at is None:
        raise HTTPException(422, "a one-off window needs ends_at")
    if body.ends_at is not None and body.ends_at <= body.starts_at:
        raise HTTPException(422, "ends_at must be after starts_at")
    return Window(
        target_kind=body.target_kind,
        target=body.target,
        starts_at=body.starts_at.timestamp(),
        ends_at=body.ends_at.timestamp() if body.ends_at is not None else None,
        weekdays=frozenset(body.weekdays),
        local_start=body.local_start,
        duration_s=body.duration_s,
        tz=body.tz,
        comment=body.comment,
        id=window_id,
    )


def window_commune(p: Principal, inventory: Inventory, w: Window) -> str:
    """The commune of the window's target ('' when the inventory does not know it); 422 when
    a caller scoped to communes names a target outside them (or one nobody knows)."""
    commune = target_commune(w.target_kind, w.target, inventory)
    if p.device_scope() is not None and (commune is None or not p.manages(commune)):
        raise HTTPException(422, f"target: no {w.target_kind} {w.target} in your communes")
    return commune or ""


async def window_or_404(
    request: Request, p: Principal, runner: AlertRunner, window_id: int
) -> tuple[Window, str]:
    """A window not over yet, and its commune, if the caller manages it; else 404."""
    w = next((x for x in await asyncio.to_thread(runner.store.windows) if x.id == window_id), None)
    commune = target_commune(w.target_kind, w.target, runner.alerter.inventory) if w is not None else None
    if w is None or (p.device_scope() is not None and (commune is None or not p.manages(commune))):
        note_refusal(request, f"maintenance:{window_id}", commune)
        raise HTTPException(404, f"no maintenance window #{window_id} in your communes")
    return w, commune or ""


async def add_window(request: Request, p: Principal, runner: AlertRunner, w: Window) -> Window:
    commune = window_commune(p, runner.alerter.inventory, w)
    saved = await asyncio.to_thread(runner.store.add_window, w)
    runner.alerter.refresh_windows()
    what = _window_out(saved).model_dump(mode="json")
    audit(request, p, "maintenance_add", f"maintenance:{saved.id}", commune=commune, detail=what)
    return saved


async def update_window(request: Request, p: Principal, runner: AlertRunner, w: Window) -> Window:
    before, _ = await window_or_404(request, p, runner, w.id)
    commune = window_commune(p, runner.alerter.inventory, w)
    if not await asyncio.to_thread(runner.store.update_window, w):
        raise HTTPException(404, f"no maintenance window #{w.id}")
    runner.alerter.refresh_windows()
    detail = {"before": _window_out(before).model_dump(mode="json"), **_window_out(w).model_dump(mode="json")}
    audit(request, p, "maintenance_edit", f"maintenance:{w.id}", commune=commune, detail=detail)
    return w


async def end_window(request: Request, p: Principal, runner: AlertRunner, window_id: int) -> Window | None:
    """End a window now: one not started yet is deleted (None), one under way or weekly stops now."""
    w, commune = await window_or_404(request, p, runner, window_id)
    now = time.time()
    what = _window_out(w).model_dump(mode="json")
    if w.starts_at > now:
        await asyncio.to_thread(runner.store.delete_window, window_id)
        ended = None
    else:
        ended = replace(w, ends_at=now)
        await asyncio.to_thread(runner.store.update_window, ended)
    runner.alerter.refresh_windows()
    audit(request, p, "maintenance_end", f"maintenance:{window_id}", commune=commune, detail=what)
    return ended


async def delete_window(request: Request, p: Principal, runner: AlertRunner, window_id: int) -> None:
    w, commune = await window_or_404(request, p, runner, window_id)
    if not await asyncio.to_thread(runner.store.delete_window, window_id):
        raise HTTPException(404, f"no maintenance window #{window_id}")
    runner.alerter.refresh_windows()
    what = _window_out(w).model_dump(mode="json")
    audit(request, p, "maintenance_delete", f"maintenance:{window_id}", commune=commune, detail=what)


def alerts_router(runner: AlertRunner) -> APIRouter:
    store = runner.store
    inventory = runner.alerter.inventory
    r = APIRouter(prefix="/api/v1", tags=["alerts"])

    @r.get("/alerts", response_model=list[AlertOut], summary="Alerts, newest first")
    async def list_alerts(
        p: Technician,
        state: Literal["active", "open", "acknowledged", "resolved"] | None = Query(
            None, description="active = open or acknowledged."
        ),
        commune: str | None = Query(None),
        scope: Literal["node", "commune", "device"] | None = Query(None),
        subject: str | None = Query(None, description="A node, commune or device id."),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[AlertOut]:
        rows = await asyncio.to_thread(
            store.query,
            state=state,
            commune=commune,
            scope=scope,
            subject=subject,
            limit=limit,
            communes=p.device_scope(),
        )
        return [_alert(x) for x in rows]

    @r.get("/alerts/{alert_id}", response_model=AlertOut)
    async def get_alert(request: Request, p: Technician, alert_id: RowId) -> AlertOut:
        return _alert(await alert_or_404(request, p, store, alert_id))

    @r.get(
        "/alerts/{alert_id}/snapshot",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No alert or no picture"}},
        summary="The picture that shows the problem (a tampered camera's)",
    )
    async def alert_snapshot(request: Request, p: Technician, alert_id: RowId) -> Response:
        a = await alert_or_404(request, p, store, alert_id)
        sha = a.snapshot_sha256 or ""
        path = services(request).snapshots.path_for(sha) if sha else None
        if path is None or not path.exists():
            raise HTTPException(
                404, "this alert has no picture (none sent, not arrived yet, or deleted by retention)"
            )
        audit(request, p, "alert_snapshot_view", f"alert:{a.id}", commune=a.commune, detail={"sha256": sha})
        return FileResponse(
            path, media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Snapshot-SHA256": sha}
        )

    @r.post("/alerts/{alert_id}/ack", response_model=AlertOut, summary="Acknowledge: reminders stop")
    async def ack(request: Request, p: Technician, alert_id: RowId, body: AckIn) -> AlertOut:
        return _alert(await acknowledge(request, p, store, alert_id, body.comment))

    @r.post("/alerts/{alert_id}/silence", response_model=AlertOut, summary="No reminders for a while")
    async def silence_route(request: Request, p: Technician, alert_id: RowId, body: SilenceIn) -> AlertOut:
        return _alert(await silence(request, p, store, alert_id, body.for_s))

    @r.get("/communes/summary", response_model=list[CommuneSummary], summary="Live status per commune")
    async def summary(p: Technician) -> list[CommuneSummary]:
        counts = runner.alerter.summary()
        active = await asyncio.to_thread(store.query, state="active", limit=1000)
        judging = runner.alerter.engine.judging
        return [
            CommuneSummary(
                commune=c.id,
                name=c.name or c.id,
                active_alerts=sum(1 for a in active if a.commune == c.id),
                judging=judging,
                **counts[c.id],
            )
            for c in inventory.communes
            if p.manages(c.id)
        ]

    @r.get("/maintenance", response_model=list[WindowOut], summary="Maintenance windows not yet over")
    async def list_windows(p: Technician) -> list[WindowOut]:
        rows = await asyncio.to_thread(store.windows, time.time())
        if p.device_scope() is not None:
            rows = [w for w in rows if p.manages(target_commune(w.target_kind, w.target, inventory) or "")]
        return [_window_out(w) for w in rows]

    @r.post("/maintenance", response_model=WindowOut, status_code=201, summary="Add a maintenance window")
    async def add_window_route(request: Request, p: Technician, body: WindowIn) -> WindowOut:
        return _window_out(await add_window(request, p, runner, window_of(body)))

    @r.put("/maintenance/{window_id}", response_model=WindowOut, summary="Change a maintenance window")
    async def update_window_route(
        request: Request, p: Technician, window_id: RowId, body: WindowIn
    ) -> WindowOut:
        return _window_out(await update_window(request, p, runner, window_of(body, window_id)))

    @r.post(
        "/maintenance/{window_id}/end",
        response_model=WindowOut | None,
        summary="End a window now (one not started yet is deleted: null)",
    )
    async def end_window_route(request: Request, p: Technician, window_id: RowId) -> WindowOut | None:
        ended = await end_window(request, p, runner, window_id)
        return _window_out(ended) if ended is not None else None

    @r.delete("/maintenance/{window_id}", status_code=204)
    async def delete_window_route(request: Request, p: Technician, window_id: RowId) -> None:
        await delete_window(request, p, runner, window_id)

    @r.get("/availability", response_model=AvailabilityOut, summary="Availability of one device")
    async def device_availability(
        request: Request,
        p: Technician,
        device: Annotated[str, Query(description="Device id.")],
        start: Annotated[datetime, Query(description="Period start (ISO 8601).")],
        end: Annotated[datetime | None, Query(description="Period end; default now.")] = None,
    ) -> AvailabilityOut:
        d = inventory.device(device)
        node = d.node if d is not None else device
        commune = d.commune if d is not None else None
        if commune is not None and not p.manages(commune):
            note_refusal(request, f"device:{device}", commune)
            raise HTTPException(404, f"no device {device} in your communes")
        t0, t1 = start.timestamp(), (end.timestamp() if end is not None else time.time())
        if t1 <= t0:
            raise HTTPException(422, "end must be after start")
        rows = await asyncio.to_thread(store.query, commune=commune, since=t0, limit=100_000)
        spans = outage_spans(rows, device, node, t1)
        share = availability(spans, t0, t1)
        return AvailabilityOut(
            device=device,
            start=start,
            end=datetime.fromtimestamp(t1, UTC),
            availability=share,
            down_s=round((1.0 - share) * (t1 - t0), 3),
            outages=len(spans),
        )

    return r


def covers(x: AlertRow, device: str, node: str) -> bool:
    """The alert stands for the device: its board's, its commune's (with the board among the
    silent ones), or its own."""
    return (
        (x.scope == "node" and x.subject == node)
        or (x.scope == "commune" and node in x.members)
        or (x.scope == "device" and x.subject == device)
    )


def outage_spans(
    rows: list[AlertRow], device: str, node: str, before: float
) -> list[tuple[float, float | None]]:
    """(start, end or None while it lasts) of the outages that made the device unavailable."""
    return [
        (x.started_at, x.end)
        for x in rows
        if x.started_at < before
        and covers(x, device, node)
        and (x.scope != "device" or x.problem in DOWN_PROBLEMS)
    ]
