"""The audit trail over HTTP, for admins: browse, export as CSV, check the hash chain."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from cloud.api.params import MAX_ROW_ID
from cloud.audit.trail import LOCAL_TZ, Entry
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


def day_bounds(date_from: date | None, date_to: date | None) -> tuple[float | None, float | None]:
    """Local (Asia/Ho_Chi_Minh) dates, inclusive, as the trail's since/until."""

    def midnight(d: date) -> float:
        return datetime.combine(d, time(0), LOCAL_TZ).timestamp()

    return (
        midnight(date_from) if date_from else None,
        midnight(date_to + timedelta(days=1)) if date_to else None,
    )


DateFrom = Annotated[date | None, Query(description="Local date, inclusive.")]
DateTo = Annotated[date | None, Query(description="Local date, inclusive.", le=date(9999, 12, 30))]


def audit_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/audit", tags=["audit"])

    @r.get("", response_model=list[AuditOut], summary="Audit entries, newest first (admins)")
    async def entries(
        request: Request,
        p: Admin,
        actor: str | None = Query(None),
        action: str | None = Query(None),
        date_from: DateFrom = None,
        date_to: DateTo = None,
        after_id: int | None = Query(
            None, ge=0, le=MAX_ROW_ID, description="Only entries after this id (oldest first)."
        ),
        before_id: int | None = Query(
            None, ge=1, le=MAX_ROW_ID, description="Only entries before this id (next page, newest first)."
        ),
        limit: int = Query(200, ge=1, le=5000),
    ) -> list[AuditOut]:
        since, until = day_bounds(date_from, date_to)
        rows = await asyncio.to_thread(
            services(request).audit.entries,
            actor=actor,
            action=action,
            since=since,
            until=until,
            after_id=after_id,
            before_id=before_id,
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
        request: Request,
        p: Admin,
        actor: str | None = Query(None),
        action: str | None = Query(None),
        date_from: DateFrom = None,
        date_to: DateTo = None,
        limit: int = Query(100_000, ge=1, le=1_000_000),
    ) -> Response:
        """Oldest first; times local ISO 8601; cells a spreadsheet would run as formulas are neutralised."""
        svc = services(request)
        since, until = day_bounds(date_from, date_to)
        rows = await asyncio.to_thread(
            svc.audit.entries,
            actor=actor,
            action=action,
            since=since,
            until=until,
            limit=limit,
            newest_first=False,
        )
        wanted = {k: v for k, v in request.query_params.items() if v}
        audit(request, p, "audit_export", detail={"rows": len(rows), "filter": wanted})
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
