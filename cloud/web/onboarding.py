"""The onboarding pages: add a device and download its board's bundle once, watch it turn from
"never seen" to up, rename, move, issue a new bundle, decommission with a typed confirmation.

Technicians and admins only, scoped to their communes, through the same service, checks and
audit calls as the JSON API (``cloud.api.inventory``). A form that issues a bundle answers
with the page itself, not a redirect: the one-time link must not land in a URL the browser
keeps. Other forms post/redirect/get. The state on the page follows the API's
``/api/v1/inventory/devices/<id>`` (static/onboarding.js), so it updates without a reload.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from cloud.api.fleet import scope
from cloud.api.inventory import (
    REFUSED,
    Access,
    DeviceIn,
    Presence,
    audit_add,
    audit_bundle,
    audit_decommission,
    audit_move,
    audit_rename,
    new_device,
    refused,
)
from cloud.auth.deps import require
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.fleet.schema import snmp_profiles
from cloud.onboarding.service import Onboarding, Outcome
from cloud.onboarding.store import DeviceRecord
from cloud.web.pages import render

Technician = Annotated[Principal, Depends(require(Perm.DEVICES))]
Text = Annotated[str, Form(max_length=500)]


def _svc(request: Request) -> tuple[Onboarding, Presence, Access]:
    onboarding: Onboarding = request.app.state.onboarding
    return onboarding, request.app.state.presence, Access(onboarding)


def _places(onboarding: Onboarding, p: Principal) -> dict[str, Any]:
    allowed = scope(p)
    inv = onboarding.live.inventory
    return {
        "communes": [c for c in inv.communes if allowed is None or c.id in allowed],
        "sites": [s for s in inv.sites if allowed is None or s.commune in allowed],
    }


async def _device_page(
    request: Request,
    p: Principal,
    rec: DeviceRecord,
    *,
    outcome: Outcome | None = None,
    done: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    onboarding, states, _ = _svc(request)
    state = (await asyncio.to_thread(states, [rec]))[rec.id]
    issued = await asyncio.to_thread(onboarding.store.bundles_of, rec.node)
    return render(
        request,
        "onboarding_device.html",
        p,
        status=status,
        d=rec,
        state=state[0],
        last_seen=state[1],
        issued=issued,
        now=time.time(),
        outcome=outcome,
        done=done,
        error=error,
        **_places(onboarding, p),
    )


def onboarding_router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/onboarding")
    async def list_page(
        request: Request, p: Technician, decommissioned: Annotated[bool, Query()] = False
    ) -> Response:
        return await _list(request, p, decommissioned=decommissioned)

    async def _list(
        request: Request,
        p: Principal,
        *,
        decommissioned: bool = False,
        form: dict[str, str] | None = None,
        error: str = "",
        status: int = 200,
    ) -> Response:
        onboarding, states, _ = _svc(request)
        allowed = scope(p)
        recs = await asyncio.to_thread(onboarding.store.records, decommissioned=decommissioned)
        recs = [d for d in recs if allowed is None or d.commune in allowed]
        st = await asyncio.to_thread(states, recs)
        return render(
            request,
            "onboarding.html",
            p,
            status=status,
            devices=[(d, st[d.id][0]) for d in recs],
            decommissioned=decommissioned,
            profiles=snmp_profiles(),
            form=form or {},
            error=error,
            issues_bundles=onboarding.issues_bundles,
            **_places(onboarding, p),
        )

    @r.post("/onboarding/devices")
    async def add_post(
        request: Request,
        p: Technician,
        kind: Annotated[str, Form()],
        id: Annotated[str, Form(max_length=64)],
        commune: Annotated[str, Form(max_length=64)],
        site: Annotated[str, Form(max_length=64)] = "",
        new_site_id: Annotated[str, Form(max_length=64)] = "",
        new_site_name: Annotated[str, Form(max_length=200)] = "",
        node: Annotated[str, Form(max_length=64)] = "",
        name: Annotated[str, Form(max_length=200)] = "",
        address: Text = "",
        camera_url: Text = "",
        camera_password: Annotated[str, Form(max_length=200)] = "",
        ap_host: Annotated[str, Form(max_length=253)] = "",
        ap_profile: Annotated[str, Form(max_length=64)] = "auto",
        snmp_community: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        onboarding, _, access = _svc(request)
        form = {  # shown again after a refusal; never the secrets
            "kind": kind,
            "id": id,
            "commune": commune,
            "site": site,
            "new_site_id": new_site_id,
            "new_site_name": new_site_name,
            "node": node,
            "name": name,
            "address": address,
            "camera_url": camera_url,
            "ap_host": ap_host,
            "ap_profile": ap_profile,
        }
        try:
            body = DeviceIn.model_validate(
                {
                    "id": id.strip(),
                    "kind": kind,
                    "commune": commune,
                    "site": new_site_id.strip() or site,
                    "site_name": new_site_name.strip() if new_site_id.strip() else "",
                    "node": node.strip() or None,
                    "name": name.strip(),
                    "address": address.strip(),
                    "camera_url": camera_url.strip(),
                    "camera_password": camera_password,
                    "ap_host": ap_host.strip(),
                    "ap_profile": ap_profile or "auto",
                    "snmp_community": snmp_community,
                }
            )
        except ValueError as exc:
            return await _list(request, p, form=form, error=_first_error(exc), status=422)
        access.may_use(p, body.commune)
        try:
            new = new_device(body)
            done = await asyncio.to_thread(onboarding.add, new, body.collector(), p.username)
        except HTTPException as exc:
            return await _list(request, p, form=form, error=str(exc.detail), status=exc.status_code)
        except REFUSED as exc:
            http = refused(exc)
            return await _list(request, p, form=form, error=str(http.detail), status=http.status_code)
        audit_add(request, p, done)
        return await _device_page(request, p, done.device, outcome=done, done="add")

    @r.get("/onboarding/devices/{device}")
    async def device_page(request: Request, p: Technician, device: str, done: str = "") -> Response:
        _, _, access = _svc(request)
        rec = await access.device(request, p, device)
        return await _device_page(request, p, rec, done=done if done in ("rename",) else "")

    @r.post("/onboarding/devices/{device}/rename")
    async def rename_post(
        request: Request,
        p: Technician,
        device: str,
        name: Annotated[str, Form(max_length=200)] = "",
        address: Text = "",
    ) -> Response:
        onboarding, _, access = _svc(request)
        before = await access.device(request, p, device)
        try:
            done = await asyncio.to_thread(
                lambda: onboarding.rename(device, p.username, name=name.strip(), address=address.strip())
            )
        except REFUSED as exc:
            return await _device_page(request, p, before, error=str(refused(exc).detail), status=422)
        audit_rename(request, p, before, done.device)
        return RedirectResponse(f"/onboarding/devices/{quote(device)}?done=rename", status_code=303)

    @r.post("/onboarding/devices/{device}/move")
    async def move_post(
        request: Request,
        p: Technician,
        device: str,
        commune: Annotated[str, Form(max_length=64)],
        site: Annotated[str, Form(max_length=64)] = "",
        new_site_id: Annotated[str, Form(max_length=64)] = "",
        new_site_name: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        onboarding, _, access = _svc(request)
        before = await access.device(request, p, device)
        access.may_use(p, commune)
        target = new_site_id.strip() or site
        try:
            done, moved = await asyncio.to_thread(
                lambda: onboarding.move(
                    device,
                    commune,
                    target,
                    p.username,
                    site_name=new_site_name.strip() if new_site_id else "",
                )
            )
        except REFUSED as exc:
            return await _device_page(request, p, before, error=str(refused(exc).detail), status=422)
        audit_move(request, p, before, done, moved.devices)
        return await _device_page(request, p, done.device, outcome=done, done="move")

    @r.post("/onboarding/devices/{device}/bundle")
    async def bundle_post(request: Request, p: Technician, device: str) -> Response:
        onboarding, _, access = _svc(request)
        rec = await access.device(request, p, device)
        try:
            done = await asyncio.to_thread(onboarding.reissue, device, p.username)
        except REFUSED as exc:
            return await _device_page(request, p, rec, error=str(refused(exc).detail), status=422)
        audit_bundle(request, p, done)
        return await _device_page(request, p, done.device, outcome=done, done="bundle")

    @r.post("/onboarding/devices/{device}/decommission")
    async def decommission_post(
        request: Request, p: Technician, device: str, confirm: Annotated[str, Form(max_length=64)] = ""
    ) -> Response:
        onboarding, _, access = _svc(request)
        rec = await access.device(request, p, device)
        if confirm.strip() != rec.id:
            return await _device_page(request, p, rec, error="ob_confirm_mismatch", status=422)
        try:
            done = await asyncio.to_thread(onboarding.decommission, device, p.username)
        except REFUSED as exc:
            return await _device_page(request, p, rec, error=str(refused(exc).detail), status=422)
        audit_decommission(request, p, done)
        return await _device_page(request, p, done.device, outcome=done, done="decommission")

    return r


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return f"{where}: {first.get('msg', '')}"
    return str(exc)
