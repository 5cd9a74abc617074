"""The fleet over HTTP: each board's desired and reported configuration, and commands.

Technicians and admins only (police and MIC get 403); a user scoped to communes sees and
changes only their boards (others answer 404, like a board that does not exist). Every
configuration change (with its diff, secrets by name only) and every command (with its
arguments) goes to the audit trail. A configuration the schema refuses is answered 422
with the field's path and never leaves the cloud.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from cloud.auth.deps import audit, require, services
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.fleet import schema
from cloud.fleet.service import ConfigSet, Conflict, FleetService, UnknownNode
from cloud.fleet.store import CommandRow, Twin, Version
from wire import COMMANDS, WireError
from wire.control import MAX_TTL_S, CommandId, CommandName
from wire.topics import ID_PATTERN

Technician = Annotated[Principal, Depends(require(Perm.DEVICES))]
NodeId = Annotated[str, Path(pattern=ID_PATTERN, description="Board (node) id, e.g. dr-cam-01.")]
Sync = Literal["in_sync", "pending", "on_trial", "rejected", "reverted", "stale", "never_reported", "local"]


class FleetNodeOut(BaseModel):
    node: str
    commune: str
    online: bool | None = Field(description="From the board's last birth/death; null: not heard.")
    agent_version: str | None
    desired_version: int = Field(description="0: the cloud never set a configuration.")
    running_version: int | None = Field(description="What the board runs (0: its local file).")
    sync: Sync = Field(description="How the board stands to its desired configuration.")
    error: str | None = Field(description="Why the last version was rejected or reverted, word for word.")
    reported_at: datetime | None
    commands_open: int = Field(description="Commands queued or running on the board.")


class TwinOut(FleetNodeOut):
    desired: dict[str, Any] | None = Field(description="As set; secrets sealed or '**********'.")
    desired_by: str | None
    desired_at: datetime | None
    published_at: datetime | None = Field(description="When the broker took the retained message.")
    report_state: str | None = Field(description="applied, rejected, reverted or stale.")
    report_version: int | None = Field(description="The version the board's last report answers.")
    good: bool | None = Field(description="The running version passed its checks.")
    reported: dict[str, Any] | None = Field(description="What the board runs; every secret '**********'.")
    can_seal: bool = Field(description="The board reported its key: secrets can be set.")


class ConfigIn(BaseModel):
    config: dict[str, Any] = Field(
        description="The managed configuration (health_interval_s, log, collectors), like the "
        "`reported` one. Secret fields hold '**********' (keep the board's) or sealed values."
    )
    secrets: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,200}$")], str] = Field(
        default_factory=dict,
        max_length=32,
        description="Dotted path -> clear value (e.g. collectors.0.snmp.community); sealed for the board "
        "here and never stored, logged or shown in clear.",
    )


class ConfigSetOut(BaseModel):
    version: int
    changes: list[dict[str, Any]] = Field(description="[{path, desired, before}] against the previous one.")
    secrets: list[str] = Field(description="Paths set as sealed secrets.")


class DiffOut(BaseModel):
    desired_version: int
    running_version: int | None
    differences: list[dict[str, Any]] = Field(description="[{path, desired, reported}].")


class VersionOut(BaseModel):
    version: int
    at: datetime
    by: str
    config: dict[str, Any]
    secrets: list[str]
    outcome: str | None = Field(description="applied, on_trial, rejected, reverted, stale; null: no answer.")
    outcome_error: str | None
    outcome_at: datetime | None


class CommandIn(BaseModel):
    name: CommandName = Field(description=f"One of: {', '.join(sorted(COMMANDS))}.")
    args: dict[str, Any] = Field(default_factory=dict, description="The command's arguments.")
    ttl_s: float | None = Field(
        default=None, gt=0, le=MAX_TTL_S, description="Time to live; the service's default when unset."
    )
    id: CommandId | None = Field(
        default=None, description="Your id for it: the same id again returns the same command (run once)."
    )


class CommandOut(BaseModel):
    id: str
    node: str
    commune: str
    name: str
    args: dict[str, Any]
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    state: str = Field(description="queued, delivered, done, failed or expired.")
    sent_at: datetime | None
    sends: int
    delivered_at: datetime | None
    finished_at: datetime | None
    progress: str | None
    result: dict[str, Any] | None
    error: str | None


class KeyOut(BaseModel):
    cloud_public_key: str = Field(description="Ed25519, base64: control.cloud_public_key on boards.")


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def scope(p: Principal) -> frozenset[str] | None:
    """Communes a user may manage: all for admins and unscoped technicians."""
    return p.device_scope()


def sync_of(t: Twin | None) -> Sync:
    if t is None or t.reported_at is None:
        return "never_reported"
    failed: dict[str | None, Sync] = {"rejected": "rejected", "reverted": "reverted", "stale": "stale"}
    if t.desired_version and t.report_version == t.desired_version and t.report_state in failed:
        return failed[t.report_state]
    if t.desired_version > (t.running_version or 0):
        return "pending"
    if not t.good:
        return "on_trial"
    return "in_sync" if t.desired_version else "local"


def command_out(r: CommandRow) -> CommandOut:
    return CommandOut(
        id=r.id,
        node=r.node,
        commune=r.commune,
        name=r.name,
        args=r.args,
        issued_by=r.issued_by,
        issued_at=datetime.fromtimestamp(r.issued_at, UTC),
        expires_at=datetime.fromtimestamp(r.expires_at, UTC),
        state=r.state,
        sent_at=_dt(r.sent_at),
        sends=r.sends,
        delivered_at=_dt(r.delivered_at),
        finished_at=_dt(r.finished_at),
        progress=r.progress,
        result=r.result,
        error=r.error,
    )


async def set_desired(
    request: Request,
    p: Principal,
    fleet: FleetService,
    node: str,
    commune: str,
    config: dict[str, Any],
    secrets: dict[str, str],
) -> ConfigSet:
    """Validate, store and send a board's desired configuration in the caller's name; audited
    with its changes (secrets by name only). schema.ConfigRejected when the schema refuses it."""
    done = await asyncio.to_thread(fleet.set_config, node, config, secrets, p.username)
    audit(
        request,
        p,
        "fleet_config_set",
        f"node:{node}",
        commune=commune,
        detail={"version": done.version, "changes": done.changes[:200], "secrets": done.secrets},
    )
    return done


async def issue_command(
    request: Request,
    p: Principal,
    fleet: FleetService,
    node: str,
    commune: str,
    name: str,
    args: dict[str, Any],
    *,
    ttl_s: float | None = None,
    command_id: str | None = None,
) -> tuple[CommandRow, bool]:
    """Queue a command in the caller's name (sent at once if the board is online); audited.
    WireError: unknown command or bad arguments; Conflict: that id was another command."""
    row, created = await asyncio.to_thread(
        lambda: fleet.issue(node, name, args, ttl_s=ttl_s, by=p.username, command_id=command_id)
    )
    audit(
        request,
        p,
        "fleet_command",
        f"command:{row.id}",
        commune=commune,
        detail={"node": node, "name": row.name, "args": row.args, "ttl_s": ttl_s, "repeat": not created},
    )
    return row, created


def fleet_router(fleet: FleetService) -> APIRouter:
    r = APIRouter(prefix="/api/v1/fleet", tags=["fleet"])

    def commune_for(p: Principal, node: str) -> str:
        try:
            commune = fleet.commune_of(node)
        except UnknownNode:
            raise HTTPException(404, f"no board {node} in your communes") from None
        allowed = scope(p)
        if allowed is not None and commune not in allowed:
            raise HTTPException(404, f"no board {node} in your communes")
        return commune

    def node_out(node: str, commune: str, t: Twin | None, open_commands: int) -> dict[str, Any]:
        return {
            "node": node,
            "commune": commune,
            "online": fleet.online.get(node),
            "agent_version": t.agent_version if t else None,
            "desired_version": t.desired_version if t else 0,
            "running_version": t.running_version if t else None,
            "sync": sync_of(t),
            "error": t.report_error if t else None,
            "reported_at": _dt(t.reported_at) if t else None,
            "commands_open": open_commands,
        }

    @r.get("/key", response_model=KeyOut, summary="The public key boards check commands against")
    async def key(p: Technician) -> KeyOut:
        return KeyOut(cloud_public_key=fleet.verify_key)

    @r.get("/nodes", response_model=list[FleetNodeOut], summary="Every board: versions and sync state")
    async def nodes(
        p: Technician, commune: str | None = Query(None, pattern=ID_PATTERN)
    ) -> list[FleetNodeOut]:
        twins = {t.node: t for t in await asyncio.to_thread(fleet.store.twins)}
        counts = await asyncio.to_thread(fleet.store.open_counts)
        allowed = scope(p)
        return [
            FleetNodeOut(**node_out(n, c, twins.get(n), counts.get(n, 0)))
            for n, c in fleet.nodes()
            if (allowed is None or c in allowed) and (commune is None or c == commune)
        ]

    @r.get("/nodes/{node}/config", response_model=TwinOut, summary="Desired and reported configuration")
    async def get_config(p: Technician, node: NodeId) -> TwinOut:
        commune = commune_for(p, node)
        t = await asyncio.to_thread(fleet.store.twin, node)
        counts = await asyncio.to_thread(fleet.store.open_counts)
        return TwinOut(
            **node_out(node, commune, t, counts.get(node, 0)),
            desired=t.desired if t else None,
            desired_by=t.desired_by if t else None,
            desired_at=_dt(t.desired_at) if t else None,
            published_at=_dt(t.published_at) if t else None,
            report_state=t.report_state if t else None,
            report_version=t.report_version if t else None,
            good=t.good if t else None,
            reported=t.reported if t else None,
            can_seal=bool(t and t.board_key),
        )

    @r.put(
        "/nodes/{node}/config",
        response_model=ConfigSetOut,
        status_code=202,
        summary="Set the desired configuration (validated, versioned, sent retained)",
        responses={422: {"description": "The schema refuses it: detail[].loc is the field's path."}},
    )
    async def set_config(request: Request, p: Technician, node: NodeId, body: ConfigIn) -> ConfigSetOut:
        commune = commune_for(p, node)
        try:
            done = await set_desired(request, p, fleet, node, commune, body.config, body.secrets)
        except schema.ConfigRejected as exc:
            raise HTTPException(
                422,
                [
                    {"loc": ["body", "config", *path], "msg": msg, "type": "value_error"}
                    for path, msg in exc.errors
                ],
            ) from None
        return ConfigSetOut(version=done.version, changes=done.changes, secrets=done.secrets)

    @r.get("/nodes/{node}/config/diff", response_model=DiffOut, summary="Desired against reported")
    async def get_diff(p: Technician, node: NodeId) -> DiffOut:
        commune_for(p, node)
        t = await asyncio.to_thread(fleet.store.twin, node)
        if t is None:
            return DiffOut(desired_version=0, running_version=None, differences=[])
        desired = schema.normalized(t.desired) if t.desired is not None else None
        diffs = schema.diff(desired, t.reported) if desired is not None else []
        return DiffOut(
            desired_version=t.desired_version, running_version=t.running_version, differences=diffs
        )

    @r.get(
        "/nodes/{node}/config/history",
        response_model=list[VersionOut],
        summary="Desired versions, newest first",
    )
    async def get_history(
        p: Technician, node: NodeId, limit: int = Query(50, ge=1, le=1000)
    ) -> list[VersionOut]:
        commune_for(p, node)
        rows: list[Version] = await asyncio.to_thread(fleet.store.history, node, limit)
        return [
            VersionOut(
                version=v.version,
                at=datetime.fromtimestamp(v.at, UTC),
                by=v.by,
                config=v.config,
                secrets=v.secrets,
                outcome=v.outcome,
                outcome_error=v.outcome_error,
                outcome_at=_dt(v.outcome_at),
            )
            for v in rows
        ]

    @r.post(
        "/nodes/{node}/commands",
        response_model=CommandOut,
        status_code=201,
        summary="Issue a command (queued until the board takes it, or expired)",
        responses={200: {"description": "That id was issued before: the same command, not a new one."}},
    )
    async def issue(
        request: Request, response: Response, p: Technician, node: NodeId, body: Annotated[CommandIn, Body()]
    ) -> CommandOut:
        commune = commune_for(p, node)
        try:
            row, created = await issue_command(
                request, p, fleet, node, commune, body.name, body.args, ttl_s=body.ttl_s, command_id=body.id
            )
        except WireError as exc:
            raise HTTPException(
                422, [{"loc": ["body", "args"], "msg": str(exc), "type": "value_error"}]
            ) from None
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        if not created:
            response.status_code = 200
        return command_out(row)

    @r.get(
        "/nodes/{node}/commands", response_model=list[CommandOut], summary="A board's commands, newest first"
    )
    async def node_commands(
        p: Technician, node: NodeId, limit: int = Query(100, ge=1, le=1000)
    ) -> list[CommandOut]:
        commune_for(p, node)
        rows = await asyncio.to_thread(lambda: fleet.store.commands(node, limit=limit))
        return [command_out(c) for c in rows]

    async def _command(p: Principal, command_id: str) -> CommandRow:
        row = await asyncio.to_thread(fleet.store.command, command_id)
        allowed = scope(p)
        if row is None or (allowed is not None and row.commune not in allowed):
            raise HTTPException(404, f"no command {command_id} in your communes")
        return row

    @r.get("/commands/{command_id}", response_model=CommandOut, summary="One command and its state")
    async def one_command(
        p: Technician, command_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    ) -> CommandOut:
        return command_out(await _command(p, command_id))

    @r.get(
        "/commands/{command_id}/snapshot",
        response_class=FileResponse,
        responses={200: {"content": {"image/jpeg": {}}}},
        summary="The picture a snapshot command took",
    )
    async def command_snapshot(
        request: Request, p: Technician, command_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    ) -> FileResponse:
        row = await _command(p, command_id)
        sha = (row.result or {}).get("snapshot_sha256")
        path = None
        if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):  # the board said so: check it
            path = services(request).snapshots.path_for(sha)
        if path is None or not path.exists():
            raise HTTPException(404, "no picture for this command (not a snapshot, not done, or not arrived)")
        return FileResponse(path, media_type="image/jpeg")

    return r
