"""Agent updates over HTTP: bundles for the boards, releases and rollouts for technicians.

``GET /api/v1/releases/{version}/{file}`` is what a board downloads from, with HTTP Basic
(its broker username and password; ``cloud.fleet.boardauth``), or a technician with a token.
It answers ``Range`` requests (206, resumable over 3G) and sends nothing a manifest does not
list. Everything else needs the devices permission (technicians, admins) and is audited.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from cloud.auth.deps import audit, optional_principal, require
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.fleet.rollout import RolloutError
from cloud.fleet.updates import Updates
from wire.release import MANIFEST, VERSION_PATTERN
from wire.topics import ID_PATTERN

log = logging.getLogger(__name__)

VersionPath = Annotated[str, Path(pattern=VERSION_PATTERN, max_length=64, description="Release version.")]
FilePath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$", description="A file the manifest lists.")
]
RolloutId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Rollout id.")]
_BASIC = {"WWW-Authenticate": 'Basic realm="commune-iot releases"'}
#: Technicians and admins (module level: the routes' string annotations must resolve it).
_technician = require(Perm.DEVICES)


class UpdateOut(BaseModel):
    version: str
    state: str = Field(description="trial, active, rolled_back or failed (wire.UpdateReport).")
    error: str = ""
    ts: datetime | None = None


class NodeVersionOut(BaseModel):
    node: str
    commune: str
    status: str | None = Field(description="online, offline or null (never seen).")
    agent_version: str | None = Field(description="What the board's last birth reported.")
    update: UpdateOut | None = Field(description="Its last update's outcome, from the same birth.")


class ReleaseOut(BaseModel):
    version: str
    created: datetime
    total_bytes: int
    files: list[str]
    key_ids: list[str] = Field(description="Release keys that signed its manifest.")
    manifest_sha256: str
    min_previous_version: str | None
    nodes: list[str] = Field(description="Boards running this version now.")


class ReleasesOut(BaseModel):
    releases: list[ReleaseOut]
    nodes: list[NodeVersionOut] = Field(description="Who runs what.")


class RolloutIn(BaseModel):
    version: str = Field(pattern=VERSION_PATTERN, max_length=64)
    canary: str | None = Field(None, pattern=ID_PATTERN, description="Board updated alone first.")
    communes: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        None, max_length=64, description="Communes in order, one stage each (default: all)."
    )
    timeout_s: float | None = Field(
        None,
        gt=0,
        le=30 * 86400,
        description="Seconds a board has to finish its update command (done); default: "
        "releases.board_timeout_s.",
    )


class ResumeIn(BaseModel):
    skip_failed: bool = Field(False, description="Leave failed boards behind instead of retrying them.")


class RolloutNodeOut(BaseModel):
    node: str
    commune: str
    stage: int
    state: str = Field(description="pending, sent, updated, failed or skipped.")
    from_version: str | None
    sent_at: float | None
    done_at: float | None
    detail: str
    command: str | None = Field(
        description="Its update command's id: state, progress and the board's answer at "
        "/api/v1/fleet/commands/{id}."
    )


class RolloutOut(BaseModel):
    id: int
    version: str
    state: str = Field(description="running, paused, done or aborted.")
    stage: int
    stages: int
    canary: str | None
    timeout_s: float
    reason: str = Field(description="Why it paused (the first failed board and its report).")
    created_by: str
    created_at: float
    updated_at: float
    counts: dict[str, int]
    nodes: list[RolloutNodeOut]


def _board(request: Request, updates: Updates) -> str | None:
    """The board presenting HTTP Basic credentials, or None when it presents none."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise HTTPException(401, "malformed Basic credentials", _BASIC) from None
    if not sep or not updates.boards.check(user, password):
        log.warning("release download refused: bad board credentials for %r", user[:64])
        raise HTTPException(401, "unknown board or wrong password", _BASIC)
    return user


def releases_router(updates: Updates) -> APIRouter:
    router = APIRouter(tags=["updates"])

    def scope(p: Principal, communes: set[str]) -> None:
        if p.communes and not communes <= set(p.communes):
            raise HTTPException(403, "this rollout reaches communes outside your scope")

    @router.get(
        "/api/v1/releases",
        response_model=ReleasesOut,
        summary="Published releases and which board runs which version",
        dependencies=[Depends(_technician)],
    )
    async def overview() -> dict[str, Any]:
        return await asyncio.to_thread(updates.overview)

    @router.get(
        "/api/v1/releases/{version}/{name}",
        summary="A file of a release bundle (boards: HTTP Basic with their broker credentials; Range)",
        response_class=FileResponse,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            206: {"description": "Partial content"},
        },
    )
    async def download(request: Request, version: VersionPath, name: FilePath) -> Response:
        board = _board(request, updates)
        if board is None:
            p = await optional_principal(request)
            if p is None:
                raise HTTPException(
                    401, "boards: HTTP Basic with the broker credentials; users: a token", _BASIC
                )
            if not p.can(Perm.DEVICES):
                raise HTTPException(403, f"your role does not allow this ({Perm.DEVICES.value})")
        path = updates.releases.file(version, name)
        if path is None:
            raise HTTPException(404, f"no file {name} in a published release {version}")
        if board is not None and name == MANIFEST:
            log.info("board %s fetches release %s", board, version, extra={"node": board, "version": version})
        media = "application/json" if name.endswith((".json", ".sig")) else "application/octet-stream"
        return FileResponse(path, media_type=media, filename=name)

    @router.get("/api/v1/rollouts", response_model=list[RolloutOut], dependencies=[Depends(_technician)])
    async def rollout_list() -> list[dict[str, Any]]:
        return await asyncio.to_thread(updates.rollouts.recent)

    @router.post(
        "/api/v1/rollouts", response_model=RolloutOut, status_code=201, summary="Start a staged rollout"
    )
    async def rollout_start(
        request: Request, body: RolloutIn, p: Annotated[Principal, Depends(_technician)]
    ) -> dict[str, Any]:
        try:
            stages = await asyncio.to_thread(updates.rollouts.stages, body.canary, body.communes)
            scope(p, {commune for stage in stages for _, commune in stage})
            doc = await asyncio.to_thread(
                updates.rollouts.create,
                body.version,
                canary=body.canary,
                communes=body.communes,
                timeout_s=body.timeout_s,
                created_by=p.username,
            )
        except RolloutError as exc:
            raise HTTPException(409, str(exc)) from None
        audit(request, p, "rollout_start", body.version, detail=body.model_dump() | {"rollout": doc["id"]})
        return doc

    @router.get(
        "/api/v1/rollouts/{rollout_id}", response_model=RolloutOut, dependencies=[Depends(_technician)]
    )
    async def rollout_get(rollout_id: RolloutId) -> dict[str, Any]:
        doc = await asyncio.to_thread(updates.rollouts.get, rollout_id)
        if doc is None:
            raise HTTPException(404, f"no rollout {rollout_id}")
        return doc

    async def change(
        request: Request, p: Principal, rollout_id: int, action: str, skip: bool = False
    ) -> dict[str, Any]:
        doc = await asyncio.to_thread(updates.rollouts.get, rollout_id)
        if doc is None:
            raise HTTPException(404, f"no rollout {rollout_id}")
        scope(p, {n["commune"] for n in doc["nodes"]})
        try:
            if action == "resume":
                doc = await asyncio.to_thread(
                    updates.rollouts.resume, rollout_id, p.username, skip_failed=skip
                )
            else:
                doc = await asyncio.to_thread(updates.rollouts.abort, rollout_id, p.username)
        except RolloutError as exc:
            raise HTTPException(409, str(exc)) from None
        audit(
            request,
            p,
            f"rollout_{action}",
            doc["version"],
            detail={"rollout": rollout_id, "skip_failed": skip},
        )
        return doc

    @router.post(
        "/api/v1/rollouts/{rollout_id}/resume", response_model=RolloutOut, summary="Go on after a pause"
    )
    async def rollout_resume(
        request: Request, rollout_id: RolloutId, body: ResumeIn, p: Annotated[Principal, Depends(_technician)]
    ) -> dict[str, Any]:
        return await change(request, p, rollout_id, "resume", body.skip_failed)

    @router.post("/api/v1/rollouts/{rollout_id}/abort", response_model=RolloutOut, summary="Stop a rollout")
    async def rollout_abort(
        request: Request, rollout_id: RolloutId, p: Annotated[Principal, Depends(_technician)]
    ) -> dict[str, Any]:
        return await change(request, p, rollout_id, "abort")

    return router
