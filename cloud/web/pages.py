"""Server-rendered pages of the web UI (Jinja2, a little JavaScript, no front-end build).

Pages use the same scope checks and audit calls as the JSON API (``cloud.api.events``);
writes are plain HTML form posts carrying the session's CSRF token, answered with a
redirect (post/redirect/get), so the UI works on any phone browser.
"""

from __future__ import annotations

import asyncio
import math
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cloud.api.audit import day_bounds
from cloud.api.events import (
    build_filter,
    camera_day,
    create_export,
    get_event_or_404,
    has_snapshot,
    keep_event,
    note_event,
    review_event,
    visible_export,
)
from cloud.api.params import MAX_ROW_ID, RowId
from cloud.api.session import do_login, do_logout
from cloud.auth.deps import audit, require, services
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.events.store import LOCAL_TZ
from cloud.httperrors import Problem
from cloud.reports.i18n import Lang
from cloud.web.auditview import describe
from cloud.web.i18n import DEFAULT_LANG, LANGS, Translator
from labels.classes import FILTER_CHOICES

LANG_COOKIE = "ciot_lang"
#: The event list's filter fields (their count shows on the folded panel on a phone).
FILTERS = (
    "commune",
    "device",
    "site",
    "date_from",
    "date_to",
    "time_from",
    "time_to",
    "reviewed",
    "min_duration_s",
)
PAGE_SIZE = 25
AUDIT_PAGE_SIZE = 100

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

Police = Annotated[Principal, Depends(require(Perm.EVENTS))]
Admin = Annotated[Principal, Depends(require(Perm.AUDIT))]
Anyone = Annotated[Principal, Depends(require())]


def lang_of(request: Request, p: Principal | None) -> str:
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    if c in LANGS:
        return c
    return p.lang if p is not None and p.lang in LANGS else DEFAULT_LANG


def _context(request: Request, p: Principal | None, lang: str) -> dict[str, Any]:
    """What every template (and the header bar of the report pages) needs."""
    others = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return {
        "t": Translator(lang),
        "lang": lang,
        "user": p,
        "Perm": Perm,
        "names": services(request).names(),
        "csrf": p.csrf_token if p else "",
        "path": request.url.path,
        # Query only: resolved against the page itself, never another host (a path like //x/).
        "lang_url": lambda code: "?" + urlencode([*others, ("lang", code)]),
    }


def render(request: Request, name: str, p: Principal | None, status: int = 200, **ctx: Any) -> HTMLResponse:
    lang = lang_of(request, p)
    resp = templates.TemplateResponse(
        request, name, {**_context(request, p, lang), **ctx}, status_code=status
    )
    if request.query_params.get("lang") in LANGS:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return resp


class WebChrome:
    """The web UI's part of the Wi-Fi report pages (``cloud.reports.router.ReportChrome``): the
    same header bar as every other page (user, logout, language) and the language chosen there."""

    def lang(self, request: Request, user: Any) -> Lang | None:
        lang = lang_of(request, user if isinstance(user, Principal) else None)
        return "en" if lang == "en" else "vi"

    def header(self, request: Request, user: Any, lang: Lang) -> str:
        p = user if isinstance(user, Principal) else None
        bar = templates.get_template("_header.html").render(_context(request, p, lang))
        return '<link rel="stylesheet" href="/static/header.css">' + bar


def pages_router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/login")
    async def login_page(request: Request, next: str = "/") -> Response:
        return render(request, "login.html", None, next=_safe_next(next), error=None)

    @r.post("/login")
    async def login_post(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=256)],
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        target = _safe_next(next)
        resp = RedirectResponse(target, status_code=303)
        try:
            await do_login(request, resp, username, password)
        except HTTPException as exc:
            t = Translator(lang_of(request, None))
            if exc.status_code == 429:
                wait = (exc.headers or {}).get("Retry-After", "60")
                msg = t("login_throttled", s=wait)
            elif exc.status_code == 403:
                msg = t("login_cross_site")
            else:
                msg = t("login_failed")
            return render(request, "login.html", None, status=exc.status_code, next=target, error=msg)
        return resp

    @r.post("/logout")
    async def logout_post(request: Request, p: Anyone) -> Response:
        resp = RedirectResponse("/login", status_code=303)
        await do_logout(request, resp, p)
        return resp

    @r.get("/")
    async def home(request: Request, p: Anyone) -> Response:
        if p.can(Perm.EVENTS):
            return RedirectResponse("/events", status_code=303)
        if p.can(Perm.REPORTS):
            return RedirectResponse("/reports/wifi", status_code=303)
        if p.can(Perm.DEVICES):
            return RedirectResponse("/fleet", status_code=303)
        return render(request, "home.html", p)

    @r.get("/events")
    async def events_page(
        request: Request,
        p: Police,
        commune: str = "",
        device: str = "",
        site: str = "",
        date_from: str = "",
        date_to: str = "",
        time_from: str = "",
        time_to: str = "",
        reviewed: str = "",
        min_duration_s: str = "",
        label: Annotated[str, Query(max_length=40)] = "",
        labelled: str = "",
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    ) -> Response:
        try:
            f = build_filter(
                p,
                commune=commune,
                device=device,
                site=site,
                date_from=date.fromisoformat(date_from) if date_from else None,
                date_to=date.fromisoformat(date_to) if date_to else None,
                time_from=time_from,
                time_to=time_to,
                reviewed={"yes": True, "no": False}.get(reviewed),
                min_duration_s=float(min_duration_s) if min_duration_s else None,
                label=label or None,
                labelled=True if labelled == "yes" else None,
            )
        except ValueError as exc:
            raise Problem(
                422,
                f"bad filter: {exc}",
                "Bộ lọc không hợp lệ: ngày có dạng năm-tháng-ngày, thời lượng là một số giây.",
            ) from None
        svc = services(request)
        result = await asyncio.to_thread(svc.events.search, f, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        audit(
            request,
            p,
            "event_list",
            detail={
                "filter": dict(request.query_params),
                "total": result.total,
                "shown": [e.id for e in result.events],
            },
        )
        scope = p.event_scope()
        communes = [c for c in svc.inventory.communes if scope is None or c.id in scope]
        cameras = [
            d for d in svc.inventory.devices if d.kind == "camera" and (scope is None or d.commune in scope)
        ]
        params = {k: v for k, v in request.query_params.items() if k not in {"page", "lang"} and v}
        pages = max(1, math.ceil(result.total / PAGE_SIZE))
        note_counts = await asyncio.to_thread(svc.events.note_counts, [e.id for e in result.events])
        return render(
            request,
            "events.html",
            p,
            result=result,
            note_counts=note_counts,
            communes=communes,
            cameras=cameras,
            sites=sorted({d.site for d in cameras}),
            label_choices=FILTER_CHOICES,
            f=dict(request.query_params),
            active=sum(1 for k in FILTERS if request.query_params.get(k)),
            page=page,
            pages=pages,
            page_url=lambda n: "/events?" + urlencode({**params, "page": n}),
        )

    @r.get("/events/{event_pk}")
    async def event_page(request: Request, p: Police, event_pk: RowId) -> Response:
        ev = await get_event_or_404(request, p, event_pk)
        svc = services(request)
        notes = await asyncio.to_thread(svc.events.notes_of, ev.id)
        before, after = await asyncio.to_thread(svc.events.neighbours, ev)
        notified = await asyncio.to_thread(svc.events.notified, ev.id)
        audit(request, p, "event_view", f"event:{ev.id}", commune=ev.commune)
        day = datetime.fromtimestamp(ev.start, LOCAL_TZ).date().isoformat()
        people = await asyncio.to_thread(svc.people)
        return render(
            request,
            "event.html",
            p,
            ev=ev,
            notes=notes,
            before=before,
            after=after,
            has_snapshot=has_snapshot(request, ev),
            day=day,
            people=people,
            notified=notified,
        )

    @r.post("/events/{event_pk}/review")
    async def review_post(
        request: Request, p: Police, event_pk: RowId, reviewed: Annotated[str, Form()] = "yes"
    ) -> Response:
        ev = await get_event_or_404(request, p, event_pk)
        await review_event(request, p, ev, reviewed == "yes")
        return RedirectResponse(f"/events/{ev.id}", status_code=303)

    @r.post("/events/{event_pk}/notes")
    async def note_post(
        request: Request,
        p: Police,
        event_pk: RowId,
        text: Annotated[str, Form(min_length=1, max_length=4000)],
    ) -> Response:
        ev = await get_event_or_404(request, p, event_pk)
        await note_event(request, p, ev, text)
        return RedirectResponse(f"/events/{ev.id}", status_code=303)

    @r.post("/events/{event_pk}/keep")
    async def keep_post(
        request: Request, p: Police, event_pk: RowId, keep: Annotated[str, Form()] = "yes"
    ) -> Response:
        ev = await get_event_or_404(request, p, event_pk)
        await keep_event(request, p, ev, keep == "yes")
        return RedirectResponse(f"/events/{ev.id}", status_code=303)

    @r.get("/cameras/{device}/timeline")
    async def timeline_page(request: Request, p: Police, device: str, day: str = "") -> Response:
        try:
            the_day = date.fromisoformat(day) if day else datetime.now(LOCAL_TZ).date()
        except ValueError:
            raise Problem(
                422,
                f"day: expected YYYY-MM-DD, got {day!r}",
                "Ngày phải có dạng năm-tháng-ngày, ví dụ 2026-11-20.",
            ) from None
        d, start, evs = await camera_day(request, p, device, the_day)
        bars = [
            {
                "ev": e,
                "left": max(0.0, (e.start - start) / 864),
                "width": max(
                    0.15, (min(e.start + max(e.duration_s, 1), start + 86400) - max(e.start, start)) / 864
                ),
            }
            for e in evs
        ]
        return render(
            request,
            "timeline.html",
            p,
            device=d,
            day=the_day,
            prev_day=(the_day - timedelta(days=1)).isoformat(),
            next_day=(the_day + timedelta(days=1)).isoformat(),
            bars=bars,
        )

    @r.post("/exports")
    async def export_post(
        request: Request,
        p: Police,
        event: Annotated[list[int] | None, Form()] = None,
        reason: Annotated[str, Form(max_length=1000)] = "",
        require_label: Annotated[str, Form(max_length=40)] = "",
    ) -> Response:
        if not event:
            raise Problem(
                422, "select at least one event to export", "Hãy chọn ít nhất một sự kiện để trích xuất."
            )
        rec = await create_export(request, p, event, reason, require_label or None)
        return RedirectResponse(f"/exports/{rec.id}", status_code=303)

    @r.get("/exports")
    async def exports_page(request: Request, p: Police) -> Response:
        scope = p.event_scope()
        recs = await asyncio.to_thread(services(request).exports.all)
        recs = [x for x in recs if scope is None or x.communes <= scope]
        people = await asyncio.to_thread(services(request).people)
        return render(request, "exports.html", p, exports=recs, people=people)

    @r.get("/exports/{export_id}")
    async def export_page(request: Request, p: Police, export_id: RowId) -> Response:
        rec = await visible_export(request, p, export_id)
        audit(request, p, "export_view", f"export:{rec.id}", commune=",".join(sorted(rec.communes)))
        signer = services(request).exports.signer
        current = await asyncio.to_thread(signer.current)
        retired = await asyncio.to_thread(signer.retired)
        people = await asyncio.to_thread(services(request).people)
        return render(request, "export.html", p, rec=rec, key=current, retired_keys=retired, people=people)

    @r.get("/audit")
    async def audit_page(
        request: Request,
        p: Admin,
        actor: str = "",
        action: str = "",
        date_from: str = "",
        date_to: str = "",
        before_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    ) -> Response:
        try:
            since, until = day_bounds(
                date.fromisoformat(date_from) if date_from else None,
                date.fromisoformat(date_to) if date_to else None,
            )
        except (ValueError, OverflowError):
            raise Problem(
                422, "dates: expected YYYY-MM-DD", "Ngày phải có dạng năm-tháng-ngày, ví dụ 2026-11-20."
            ) from None
        svc = services(request)
        filters: dict[str, Any] = {
            "actor": actor or None,
            "action": action or None,
            "since": since,
            "until": until,
        }
        rows = await asyncio.to_thread(
            svc.audit.entries, **filters, before_id=before_id, limit=AUDIT_PAGE_SIZE + 1
        )
        more = len(rows) > AUDIT_PAGE_SIZE
        rows = rows[:AUDIT_PAGE_SIZE]
        total = await asyncio.to_thread(svc.audit.count, **filters)
        actions = await asyncio.to_thread(svc.audit.actions)
        n, bad = await asyncio.to_thread(svc.audit.verify)
        audit(request, p, "audit_view", detail={k: v for k, v in request.query_params.items() if v})
        params = {k: v for k, v in request.query_params.items() if k not in {"before_id", "lang"} and v}
        t = Translator(lang_of(request, p))
        return render(
            request,
            "audit.html",
            p,
            rows=[(e, describe(e.detail, t)) for e in rows],
            total=total,
            chain_rows=n,
            chain_bad=bad,
            f={"actor": actor, "action": action, "date_from": date_from, "date_to": date_to},
            actions=actions,
            older_url="/audit?" + urlencode({**params, "before_id": rows[-1].id}) if more else None,
            newest_url=("/audit?" + urlencode(params)) if before_id else None,
            csv_url="/api/v1/audit/export.csv?" + urlencode(params),
        )

    return r


def _safe_next(target: str) -> str:
    """Only same-site paths: a login link must not bounce the user to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
