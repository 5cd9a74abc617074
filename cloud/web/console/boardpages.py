"""Page 6: a board's configuration and commands, and a camera's masks and zones drawn on its picture.

The configuration form is generated from the schema (:mod:`configform`); "preview" shows what
would change against the configuration now in force and the schema's verdict without storing
anything, "apply" stores a new desired version and sends it (``cloud.api.fleet.set_desired``:
validated, versioned, audited). The page then follows the board's answer (pending, on trial,
applied, rejected or reverted) and the commands' states as they change.

Masks and zones are the camera collector's ``masks`` / ``zones`` / ``only_in_zones``: corners
as fractions of the frame (0..1), what ``edge/collectors/camera/masks.py`` turns into pixels at
whatever size the detector works at. The editor draws them over the camera's newest picture,
with the motion boxes of its last minutes' events.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from cloud.api.fleet import issue_command, set_desired, sync_of
from cloud.auth.principal import Principal
from cloud.fleet import schema
from cloud.fleet.store import Twin
from cloud.inventory import Device, Node
from cloud.web.console import configform
from cloud.web.console.common import Technician, form_of
from cloud.web.console.fleetpages import latest_picture, recent_boxes
from cloud.web.console.services import Console
from cloud.web.pages import render
from wire import COMMANDS, WireError

#: Minutes of motion boxes drawn over the picture in the mask editor.
BOX_MINUTES: Final = 15
#: Commands that need a second thought on the page.
CONFIRM: Final = frozenset({"restart"})


def base_doc(t: Twin | None) -> dict[str, Any] | None:
    """What a new version starts from: the desired configuration, else what the board runs."""
    if t is None:
        return None
    return t.desired if t.desired is not None else t.reported


def _rejected(exc: schema.ConfigRejected) -> dict[str, str]:
    return {".".join(map(str, path)) or "(top level)": configform.vi(msg) for path, msg in exc.errors}


def commands_for(devices: list[Device]) -> list[str]:
    kinds = {d.kind for d in devices}
    return [
        name
        for name in COMMANDS
        if not (name == "snapshot" and "camera" not in kinds) and not (name == "poll" and "ap" not in kinds)
    ]


def camera_collector(doc: dict[str, Any] | None, d: Device) -> int | None:
    """Index of the ``camera`` collector watching ``d`` in a board's configuration."""
    specs = (doc or {}).get("collectors") or []
    cams = [i for i, s in enumerate(specs) if isinstance(s, dict) and s.get("type") == "camera"]
    mine = [i for i in cams if specs[i].get("device", d.node) == d.id]
    return mine[0] if mine else None


def router(c: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    async def board_page(
        request: Request,
        p: Principal,
        n: Node,
        *,
        fields: list[configform.FormField] | None = None,
        proposed: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        raw_json: str | None = None,
        status: int = 200,
    ) -> Response:
        fleet = c.fleet_service()
        t, history, commands = await asyncio.gather(
            asyncio.to_thread(fleet.store.twin, n.id),
            asyncio.to_thread(fleet.store.history, n.id, 10),
            asyncio.to_thread(lambda: fleet.store.commands(n.id, limit=15)),
        )
        base = base_doc(t)
        if fields is None and base is not None:
            fields = configform.form_of(base)
        left = configform.attach(fields or [], errors or {})
        desired = schema.normalized(t.desired) if t is not None and t.desired is not None else None
        drift = schema.diff(desired, t.reported) if t is not None and desired is not None else []
        change = None
        if proposed is not None and base is not None:
            change = schema.diff(schema.normalized(proposed), schema.normalized(base))
        devices = c.inventory.devices_of(n.id)
        return render(
            request,
            "console/board.html",
            p,
            status=status,
            n=n,
            devices=devices,
            twin=t,
            sync=sync_of(t),
            online=fleet.online.get(n.id),
            fields=fields or [],
            errors=left,
            has_errors=bool(errors),
            drift=drift,
            change=change,
            history=history,
            commands=commands,
            command_names=commands_for(devices),
            confirm=CONFIRM,
            doc_json=raw_json
            if raw_json is not None
            else json.dumps(base or {}, ensure_ascii=False, indent=2),
            now=time.time(),
        )

    async def submit(
        request: Request, p: Principal, n: Node, doc: dict[str, Any], secrets: dict[str, str], action: str
    ) -> tuple[int | None, dict[str, str]]:
        """Check (and with ``apply`` store and send) a document: (version, errors)."""
        fleet = c.fleet_service()
        if action == "apply":
            try:
                done = await set_desired(request, p, fleet, n.id, n.commune, doc, secrets)
            except schema.ConfigRejected as exc:
                return None, _rejected(exc)
            return done.version, {}
        t = await asyncio.to_thread(fleet.store.twin, n.id)
        trial = json.loads(json.dumps(doc))
        try:
            schema.seal_into(trial, secrets, t.board_key if t else None)
            schema.check(trial)
        except schema.ConfigRejected as exc:
            return None, _rejected(exc)
        return None, {}

    @r.get("/boards/{node}")
    async def board(request: Request, p: Technician, node: str) -> Response:
        return await board_page(request, p, c.node_or_404(request, p, node))

    @r.post("/boards/{node}/config")
    async def config_post(request: Request, p: Technician, node: str) -> Response:
        n = c.node_or_404(request, p, node)
        form = await form_of(request)
        t = await asyncio.to_thread(c.fleet_service().store.twin, n.id)
        base = base_doc(t)
        if base is None:
            raise HTTPException(409, f"{n.id} has not reported its configuration yet: nothing to start from")
        fields = configform.form_of(base)
        ans = configform.read_form(fields, form, base)
        action = form.get("action", "preview")
        errors = dict(ans.errors)
        if not errors:
            version, errors = await submit(request, p, n, ans.doc, ans.secrets, action)
            if version is not None:
                return RedirectResponse(f"/boards/{n.id}?saved={version}#state", status_code=303)
        shown = configform.form_of(ans.doc)  # the form as typed (secrets are typed again), with its errors
        return await board_page(
            request, p, n, fields=shown, proposed=ans.doc, errors=errors, status=422 if errors else 200
        )

    @r.post("/boards/{node}/config.json")
    async def config_json_post(request: Request, p: Technician, node: str) -> Response:
        """The whole document as JSON (collectors added or removed, anything the form lacks)."""
        n = c.node_or_404(request, p, node)
        form = await form_of(request)
        raw = form.get("doc", "")
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            return await board_page(
                request, p, n, errors={"(json)": f"JSON không hợp lệ: {exc}"}, raw_json=raw, status=422
            )
        if not isinstance(doc, dict):
            return await board_page(
                request, p, n, errors={"(json)": "Cần một đối tượng JSON { ... }."}, raw_json=raw, status=422
            )
        version, errors = await submit(request, p, n, doc, {}, form.get("action", "preview"))
        if version is not None:
            return RedirectResponse(f"/boards/{n.id}?saved={version}#state", status_code=303)
        return await board_page(
            request, p, n, proposed=doc, errors=errors, raw_json=raw, status=422 if errors else 200
        )

    @r.post("/boards/{node}/commands")
    async def command_post(request: Request, p: Technician, node: str) -> Response:
        n = c.node_or_404(request, p, node)
        form = await form_of(request)
        name = form.get("name", "")
        if name in CONFIRM and form.get("confirm") != "yes":
            raise HTTPException(422, f"{name}: tick the confirmation first")
        args: dict[str, Any] = {}
        for key in ("device", "host"):
            if form.get(key):
                args[key] = form[key]
        for key in ("count", "lines"):
            if form.get(key, "").isdigit():
                args[key] = int(form[key])
        try:
            row, _ = await issue_command(request, p, c.fleet_service(), n.id, n.commune, name, args)
        except WireError as exc:
            raise HTTPException(422, str(exc)) from None
        return RedirectResponse(f"/boards/{n.id}?cmd={row.id}#commands", status_code=303)

    # -- masks and zones ---------------------------------------------------------------------

    async def masks_page(
        request: Request, p: Principal, d: Device, *, errors: list[str] | None = None, status: int = 200
    ) -> Response:
        fleet = c.fleet_service()
        t = await asyncio.to_thread(fleet.store.twin, d.node)
        base = base_doc(t)
        idx = camera_collector(base, d)
        spec = (base or {}).get("collectors", [])[idx] if idx is not None else {}
        picture, boxes = await asyncio.gather(
            latest_picture(request, c, d), recent_boxes(request, d, BOX_MINUTES)
        )
        shapes = {"masks": spec.get("masks", []), "zones": spec.get("zones", [])}
        return render(
            request,
            "console/masks.html",
            p,
            status=status,
            d=d,
            twin=t,
            sync=sync_of(t),
            editable=idx is not None,
            shapes_json=json.dumps(shapes),
            only_in_zones=bool(spec.get("only_in_zones")),
            picture=picture,
            boxes=boxes,
            box_minutes=BOX_MINUTES,
            errors=errors or [],
            now=time.time(),
        )

    @r.get("/devices/{device}/masks")
    async def masks(request: Request, p: Technician, device: str) -> Response:
        d = c.device_or_404(request, p, device)
        if d.kind != "camera":
            raise HTTPException(404, f"{device} is not a camera")
        return await masks_page(request, p, d)

    @r.post("/devices/{device}/masks")
    async def masks_post(request: Request, p: Technician, device: str) -> Response:
        d = c.device_or_404(request, p, device)
        if d.kind != "camera":
            raise HTTPException(404, f"{device} is not a camera")
        form = await form_of(request)
        t = await asyncio.to_thread(c.fleet_service().store.twin, d.node)
        base = base_doc(t)
        idx = camera_collector(base, d)
        if base is None or idx is None:
            raise HTTPException(
                409, f"{d.node} runs no camera collector for {d.id} (or has not reported yet)"
            )
        try:
            shapes = json.loads(form.get("shapes", ""))
            masks = [_polygon(poly) for poly in shapes.get("masks", [])]
            zones = [
                {"name": str(z["name"]), "polygon": _polygon(z["polygon"])} for z in shapes.get("zones", [])
            ]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return await masks_page(request, p, d, errors=[f"Hình vẽ không hợp lệ: {exc}"], status=422)
        doc = json.loads(json.dumps(base))
        spec = doc["collectors"][idx]
        for key, value in (("masks", masks), ("zones", zones)):
            if value or key in spec:
                spec[key] = value
        if form.get("only_in_zones") == "on" or "only_in_zones" in spec:
            spec["only_in_zones"] = form.get("only_in_zones") == "on"
        try:
            done = await set_desired(request, p, c.fleet_service(), d.node, d.commune, doc, {})
        except schema.ConfigRejected as exc:
            msgs = [f"{path}: {msg}" for path, msg in _rejected(exc).items()]
            return await masks_page(request, p, d, errors=msgs, status=422)
        return RedirectResponse(f"/devices/{d.id}/masks?saved={done.version}", status_code=303)

    return r


def _polygon(points: Any) -> list[list[float]]:
    """Corners as [x, y] fractions rounded to 1/10,000 of the frame (a fraction of a pixel)."""
    return [[round(float(x), 4), round(float(y), 4)] for x, y in points]
