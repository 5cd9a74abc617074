"""The audit trail over HTTP, for admins: browse, export as CSV, check the hash chain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from cloud.api.params import MAX_ROW_ID
from cloud.audit.trail import Entry
from cloud.auth.deps import audit, require, services
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm

Admin = Annotated[Principal, Depends(require(Perm.AUDIT))]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    commune: str
    detail: dict[str, Any]
    ip: str
    user_agent: str
    hash: str


class ChainOut(BaseModel):
    rows: int
    intact: bool
    first_bad_id: int | None = Field(description="First row whose content or link does not match.")


def audit_out(e: Entry) -> AuditOut:
    return AuditOut(
        id=e.id,
        at=datetime.fromtimestamp(e.at, UTC),
        actor=e.actor,
        action=e.action,
        target=e.target,
        commune=e.commune,
        detail=e.detail,
        ip=e.ip,
        user_agent=e.user_agent,
        hash=e.hash,
    )


def audit_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/audit", tags=["audit"])

    @r.get("", response_model=list[AuditOut], summary="Audit entries, newest first (admins)")
    async def entries(
        request: Request,
        p: Admin,
        actor: str | None = Query(None),
        action: str | None = Query(None),
        after_id: int | None = Query(
            None, ge=0, le=MAX_ROW_ID, description="Only entries after this id (oldest first)."
        ),
        limit: int = Query(200, ge=1, le=5000),
    ) -> list[AuditOut]:
        rows = await asyncio.to_thread(
            services(request).audit.entries,
            actor=actor,
            action=action,
            after_id=after_id,
            limit=limit,
            newest_first=after_id is None,
        )
        audit(request, p, "audit_view", detail={"actor": actor, "action": action})
        return [audit_out(e) for e in rows]

    @r.get(
        "/export.csv",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
        summary="The audit trail as CSV (admins)",
    )
    async def export_csv(
        request: Request, p: Admin, limit: int = Query(100_000, ge=1, le=1_000_000)
    ) -> Response:
        svc = services(request)
        rows = await asyncio.to_thread(svc.audit.entries, limit=limit, newest_first=False)
        audit(request, p, "audit_export", detail={"rows": len(rows)})
        body = "\ufeff" + svc.audit.to_csv(rows)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return Response(
            body.encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
        )

    @r.get("/verify", response_model=ChainOut, summary="Check the hash chain (admins)")
    async def verify(request: Request, p: Admin) -> ChainOut:
        n, bad = await asyncio.to_thread(services(request).audit.verify)
        return ChainOut(rows=n, intact=bad is None, first_bad_id=bad)

    return r
