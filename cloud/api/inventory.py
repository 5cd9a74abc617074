"""The inventory over HTTP: list, add (with the board's one-time bundle), rename, move,
decommission, and download a bundle once.

Technicians and admins only (police and MIC get 403); a technician scoped to communes sees
and changes only devices of those communes (others answer 404, like a device that does not
exist) and cannot add or move one into another commune (403). Every change and every bundle
issued or downloaded goes to the audit trail, never a password or community.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from cloud.api.fleet import scope
from cloud.auth.deps import audit, note_refusal, require
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.onboarding.bundles import BundleError, Collector, bundle_id, public_camera_url
from cloud.onboarding.service import Gone, Onboarding, Outcome
from cloud.onboarding.store import Conflict, DeviceRecord, InventoryError, NewDevice, NotFound
from wire.topics import ID_PATTERN

if TYPE_CHECKING:
    from cloud.runtime import Runtime

Technician = Annotated[Principal, Depends(require(Perm.DEVICES))]
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="Device id, e.g. dr-cam-13.")]
Id = Annotated[str, Field(pattern=ID_PATTERN)]
State = Literal["never_seen", "up", "down", "unknown", "decommissioned"]


class DeviceIn(BaseModel):
    id: Id = Field(description="The new device's id (never reused, never changed), e.g. dr-cam-13.")
    kind: Literal["camera", "ap"]
    commune: Id
    site: Id = Field(description="A site of the commune; created when site_name is given.")
    site_name: str = Field("", max_length=200, description="Name of a new site (e.g. Nhà văn hóa thôn 13).")
    node: Id | None = Field(
        None, description="The board serving it; default: a new board with the device's id (one per board)."
    )
    name: str = Field("", max_length=200, description="Display name.")
    address: str = Field("", max_length=500, description="Where it is, in words.")
    camera_url: str = Field(
        "", max_length=500, description="Cameras: rtsp://HOST/PATH (credentials go into the bundle only)."
    )
    camera_password: str = Field("", max_length=200, description="Cameras: put in the bundle, never stored.")
    ap_host: str = Field("", max_length=253, description="APs: the AP's address the board polls.")
    ap_profile: str = Field("auto", max_length=64, description="APs: vendor profile (auto to detect).")
    snmp_community: str = Field("", max_length=200, description="APs: put in the bundle, never stored.")

    def collector(self) -> Collector:
        return Collector(
            kind=self.kind,
            device=self.id,
            camera_url=self.camera_url,
            camera_password=self.camera_password,
            ap_host=self.ap_host,
            ap_profile=self.ap_profile,
            snmp_community=self.snmp_community,
        )


class RenameIn(BaseModel):
    name: str | None = Field(None, max_length=200)
    address: str | None = Field(None, max_length=500)


class MoveIn(BaseModel):
    commune: Id
    site: Id
    site_name: str = Field("", max_length=200, description="Name of a new site.")


class BundleIn(BaseModel):
    """Optional: the collector to put in the new bundle (as when adding)."""

    camera_url: str = Field("", max_length=500)
    camera_password: str = Field("", max_length=200)
    ap_host: str = Field("", max_length=253)
    ap_profile: str = Field("auto", max_length=64)
    snmp_community: str = Field("", max_length=200)


class BundleOut(BaseModel):
    url: str = Field(description="Download it here once (GET, same login); then it is gone (410).")
    filename: str
    size: int
    sha256: str = Field(description="Of the ZIP: check the download.")
    expires_at: datetime


class InventoryDeviceOut(BaseModel):
    id: str
    kind: str
    node: str
    commune: str
    site: str
    name: str
    address: str
    camera_url: str = ""
    ap_host: str = ""
    ap_profile: str = ""
    added_at: datetime | None
    added_by: str | None
    decommissioned_at: datetime | None
    decommissioned_by: str | None
    state: State = Field(
        description="never_seen until its board's first message, then the alerter's judgement "
        "(up, down, unknown behind a board that is not up); decommissioned."
    )
    last_seen: datetime | None


class BundleInfo(BaseModel):
    filename: str
    sha256: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    downloaded_at: datetime | None
    downloaded_by: str | None


class DeviceDetailOut(InventoryDeviceOut):
    bundles: list[BundleInfo] = Field(description="Bundles issued for its board, newest first.")


class OutcomeOut(BaseModel):
    device: InventoryDeviceOut
    new_board: bool = Field(description="A new board: credentials and a bundle were issued.")
    board_retired: bool = Field(description="Decommissioned with its board (it served nothing else).")
    revoked: bool = Field(description="The board's broker credentials were revoked.")
    bundle: BundleOut | None
    warnings: list[str] = Field(description="What did not happen and what to do about it.")


class InventoryOut(BaseModel):
    version: int
    communes: list[dict[str, str]]
    sites: list[dict[str, str]]
    devices: list[InventoryDeviceOut]


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


Presence = Callable[[list[DeviceRecord]], dict[str, tuple[State, float | None]]]


def presence(runtime: Runtime) -> Presence:
    """Device -> (state, its board's last message): never seen, else what the alerter judges."""

    def states(records: list[DeviceRecord]) -> dict[str, tuple[State, float | None]]:
        nodes = runtime.sql.node_states()
        alerting = runtime.alerting
        judged = alerting.alerter.judgement(r.id for r in records) if alerting is not None else {}
        out: dict[str, tuple[State, float | None]] = {}
        for r in records:
            st = nodes.get(r.node) or {}
            seen = st.get("last_seen")
            state: State
            if r.decommissioned_at is not None:
                state = "decommissioned"
            elif not seen and not st.get("status"):
                state = "never_seen"
            elif r.id in judged:
                board, own = judged[r.id]
                state = own if board == "up" else board
            else:
                state = "up" if st.get("status") == "online" else "down"
            out[r.id] = (state, seen)
        return out

    return states


def device_out(r: DeviceRecord, state: tuple[State, float | None]) -> InventoryDeviceOut:
    return InventoryDeviceOut(
        id=r.id,
        kind=r.kind,
        node=r.node,
        commune=r.commune,
        site=r.site,
        name=r.name,
        address=r.address,
        camera_url=str(r.extra.get("camera_url", "")),
        ap_host=str(r.extra.get("ap_host", "")),
        ap_profile=str(r.extra.get("ap_profile", "")),
        added_at=_dt(r.added_at),
        added_by=r.added_by,
        decommissioned_at=_dt(r.decommissioned_at),
        decommissioned_by=r.decommissioned_by,
        state=state[0],
        last_seen=_dt(state[1]),
    )


def outcome_out(o: Outcome, state: tuple[State, float | None]) -> OutcomeOut:
    b = o.bundle
    return OutcomeOut(
        device=device_out(o.device, state),
        new_board=o.new_board,
        board_retired=o.board_retired,
        revoked=o.revoked,
        bundle=BundleOut(
            url=b.path, filename=b.filename, size=b.size, sha256=b.sha256, expires_at=_at(b.expires_at)
        )
        if b is not None
        else None,
        warnings=list(o.warnings),
    )


def refused(exc: Exception) -> HTTPException:
    """The HTTP answer to a refused change."""
    if isinstance(exc, Conflict):
        return HTTPException(409, str(exc))
    if isinstance(exc, NotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, Gone):
        return HTTPException(410, str(exc))
    return HTTPException(422, str(exc))


REFUSED = (InventoryError, NotFound, BundleError, Gone)


def new_device(body: DeviceIn) -> NewDevice:
    """The store's record of a device to add: the camera URL without its credentials."""
    extra: dict[str, Any] = {}
    if body.kind == "camera" and body.camera_url:
        try:
            extra["camera_url"] = public_camera_url(body.camera_url)[0]
        except BundleError as exc:
            raise HTTPException(422, str(exc)) from None
    if body.kind == "ap" and body.ap_host:
        extra |= {"ap_host": body.ap_host, "ap_profile": body.ap_profile or "auto"}
    return NewDevice(
        id=body.id,
        kind=body.kind,
        commune=body.commune,
        site=body.site,
        node=body.node or "",
        name=body.name,
        address=body.address,
        site_name=body.site_name,
        extra=extra,
    )


class Access:
    """Scope checks shared by the API and the pages."""

    def __init__(self, onboarding: Onboarding) -> None:
        self.onboarding = onboarding

    def may_use(self, p: Principal, commune: str) -> None:
        allowed = scope(p)
        if allowed is not None and commune not in allowed:
            raise HTTPException(403, f"commune {commune} is not one of yours")

    async def device(self, request: Request, p: Principal, device_id: str) -> DeviceRecord:
        rec = await asyncio.to_thread(self.onboarding.store.record, device_id)
        allowed = scope(p)
        if rec is None or (allowed is not None and rec.commune not in allowed):
            note_refusal(request, f"device:{device_id}", rec.commune if rec is not None else None)
            raise HTTPException(404, f"no device {device_id} in your communes")
        return rec


def inventory_router(onboarding: Onboarding, states: Presence) -> APIRouter:
    r = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])
    access = Access(onboarding)

    async def state_of(rec: DeviceRecord) -> tuple[State, float | None]:
        return (await asyncio.to_thread(states, [rec]))[rec.id]

    @r.get("", response_model=InventoryOut, summary="Communes, sites and devices (yours), with their state")
    async def inventory(
        p: Technician,
        decommissioned: bool = Query(False, description="Also the decommissioned devices."),
    ) -> InventoryOut:
        inv = onboarding.live.inventory
        allowed = scope(p)
        recs = await asyncio.to_thread(onboarding.store.records, decommissioned=decommissioned)
        recs = [d for d in recs if allowed is None or d.commune in allowed]
        st = await asyncio.to_thread(states, recs)
        return InventoryOut(
            version=inv.version,
            communes=[
                {"id": c.id, "name": c.name} for c in inv.communes if allowed is None or c.id in allowed
            ],
            sites=[
                {"id": s.id, "commune": s.commune, "name": s.name}
                for s in inv.sites
                if allowed is None or s.commune in allowed
            ],
            devices=[device_out(d, st[d.id]) for d in recs],
        )

    @r.get("/devices/{device}", response_model=DeviceDetailOut, summary="One device, its state and bundles")
    async def one(request: Request, p: Technician, device: DeviceId) -> DeviceDetailOut:
        rec = await access.device(request, p, device)
        issued = await asyncio.to_thread(onboarding.store.bundles_of, rec.node)
        return DeviceDetailOut(
            **device_out(rec, await state_of(rec)).model_dump(),
            bundles=[
                BundleInfo(
                    filename=b.filename,
                    sha256=b.sha256,
                    created_at=_at(b.created_at),
                    created_by=b.created_by,
                    expires_at=_at(b.expires_at),
                    downloaded_at=_dt(b.downloaded_at),
                    downloaded_by=b.downloaded_by,
                )
                for b in issued
            ],
        )

    @r.post(
        "/devices",
        response_model=OutcomeOut,
        status_code=201,
        summary="Add a device; a new board gets credentials and a one-time bundle",
        responses={409: {"description": "The id is taken (ids are never reused)."}},
    )
    async def add(request: Request, p: Technician, body: DeviceIn) -> OutcomeOut:
        access.may_use(p, body.commune)
        new = new_device(body)
        try:
            done = await asyncio.to_thread(onboarding.add, new, body.collector(), p.username)
        except REFUSED as exc:
            raise refused(exc) from None
        audit_add(request, p, done)
        return outcome_out(done, await state_of(done.device))

    @r.patch("/devices/{device}", response_model=OutcomeOut, summary="Rename a device (its id stays)")
    async def rename(request: Request, p: Technician, device: DeviceId, body: RenameIn) -> OutcomeOut:
        rec = await access.device(request, p, device)
        try:
            done = await asyncio.to_thread(
                lambda: onboarding.rename(device, p.username, name=body.name, address=body.address)
            )
        except REFUSED as exc:
            raise refused(exc) from None
        audit_rename(request, p, rec, done.device)
        return outcome_out(done, await state_of(done.device))

    @r.post(
        "/devices/{device}/move",
        response_model=OutcomeOut,
        summary="Move the device's board (with its devices) to another site or commune",
    )
    async def move(request: Request, p: Technician, device: DeviceId, body: MoveIn) -> OutcomeOut:
        rec = await access.device(request, p, device)
        access.may_use(p, body.commune)
        try:
            done, moved = await asyncio.to_thread(
                lambda: onboarding.move(device, body.commune, body.site, p.username, site_name=body.site_name)
            )
        except REFUSED as exc:
            raise refused(exc) from None
        audit_move(request, p, rec, done, moved.devices)
        return outcome_out(done, await state_of(done.device))

    @r.post(
        "/devices/{device}/decommission",
        response_model=OutcomeOut,
        summary="Take a device out of service; its board's credentials are revoked with the last device",
    )
    async def decommission(request: Request, p: Technician, device: DeviceId) -> OutcomeOut:
        await access.device(request, p, device)
        try:
            done = await asyncio.to_thread(onboarding.decommission, device, p.username)
        except REFUSED as exc:
            raise refused(exc) from None
        audit_decommission(request, p, done)
        return outcome_out(done, await state_of(done.device))

    @r.post(
        "/devices/{device}/bundle",
        response_model=OutcomeOut,
        status_code=201,
        summary="A new bundle for the device's board (a new password: the old one stops working)",
    )
    async def reissue(
        request: Request, p: Technician, device: DeviceId, body: BundleIn | None = None
    ) -> OutcomeOut:
        rec = await access.device(request, p, device)
        collector = None
        if body is not None:
            collector = Collector(kind=rec.kind, device=rec.id, **body.model_dump())
        try:
            done = await asyncio.to_thread(onboarding.reissue, device, p.username, collector)
        except REFUSED as exc:
            raise refused(exc) from None
        audit_bundle(request, p, done)
        return outcome_out(done, await state_of(done.device))

    @r.get(
        "/bundles/{token}",
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}}, 410: {"description": "Downloaded or expired."}},
        summary="Download a board's bundle, once",
    )
    async def download(
        request: Request, p: Technician, token: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{43}$")]
    ) -> Response:
        return await download_bundle(request, p, onboarding, token)

    return r


async def download_bundle(request: Request, p: Principal, onboarding: Onboarding, token: str) -> Response:
    """The ZIP, once; its commune must be the caller's (checked before it is taken)."""
    row = await asyncio.to_thread(onboarding.store.bundle, bundle_id(token))
    allowed = scope(p)
    if row is None or (allowed is not None and row.commune not in allowed):
        note_refusal(request, "bundle", row.commune if row is not None else None)
        raise HTTPException(404, "no such bundle in your communes")
    try:
        got, data = await asyncio.to_thread(onboarding.download, token, p.username)
    except REFUSED as exc:
        raise refused(exc) from None
    audit(
        request,
        p,
        "inventory_bundle_download",
        f"node:{got.node}",
        commune=got.commune,
        detail={"node": got.node, "sha256": got.sha256, "issued_by": got.created_by},
    )
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{got.filename}"',
            "Cache-Control": "no-store",
        },
    )


# -- the audit trail (shared with the pages) -----------------------------------------------------


def _bundle_detail(o: Outcome) -> dict[str, Any]:
    b = o.bundle
    return {"sha256": b.sha256, "expires_at": b.expires_at} if b is not None else {}


def audit_add(request: Request, p: Principal, o: Outcome) -> None:
    d = o.device
    audit(
        request,
        p,
        "inventory_add",
        f"device:{d.id}",
        commune=d.commune,
        detail={
            "device": d.id,
            "kind": d.kind,
            "node": d.node,
            "site": d.site,
            "name": d.name,
            "new_board": o.new_board,
            "extra": d.extra,
            "bundle": _bundle_detail(o),
            "warnings": list(o.warnings),
        },
    )


def audit_rename(request: Request, p: Principal, before: DeviceRecord, after: DeviceRecord) -> None:
    audit(
        request,
        p,
        "inventory_rename",
        f"device:{after.id}",
        commune=after.commune,
        detail={
            "name": [before.name, after.name],
            "address": [before.address, after.address],
        },
    )


def audit_move(request: Request, p: Principal, before: DeviceRecord, o: Outcome, devices: list[str]) -> None:
    audit(
        request,
        p,
        "inventory_move",
        f"device:{before.id}",
        commune=o.device.commune,
        detail={
            "node": before.node,
            "from": {"commune": before.commune, "site": before.site},
            "to": {"commune": o.device.commune, "site": o.device.site},
            "devices": devices,
            "bundle": _bundle_detail(o),
            "warnings": list(o.warnings),
        },
    )


def audit_decommission(request: Request, p: Principal, o: Outcome) -> None:
    d = o.device
    audit(
        request,
        p,
        "inventory_decommission",
        f"device:{d.id}",
        commune=d.commune,
        detail={
            "device": d.id,
            "node": d.node,
            "board_retired": o.board_retired,
            "revoked": o.revoked,
            "warnings": list(o.warnings),
        },
    )


def audit_bundle(request: Request, p: Principal, o: Outcome) -> None:
    audit(
        request,
        p,
        "inventory_bundle_issue",
        f"node:{o.device.node}",
        commune=o.device.commune,
        detail={"node": o.device.node, "bundle": _bundle_detail(o), "warnings": list(o.warnings)},
    )
