"""HTTP routes of the Wi-Fi reports: the page, file downloads, the kept reports, JSON.

``wifi_reports_router(service, require_reports)`` returns a router whose every route
depends on ``require_reports`` (the lead's login dependency: it returns the user or
raises 401/403), so nothing here is reachable without the ``mic`` or ``admin`` role.

* ``GET /reports/wifi?from=YYYY-MM-DD&to=YYYY-MM-DD&commune=&lang=vi|en&refresh=0|1`` HTML
* ``GET /reports/wifi.xlsx``, ``/reports/wifi.csv`` (same parameters): file downloads
* ``GET /reports``: kept reports (monthly ones) with links; ``GET /reports/{id}.{fmt}``
* ``GET /api/v1/reports/wifi`` (same parameters): the numbers as JSON
* ``GET /api/v1/reports``: the kept reports as JSON
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from html import escape
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from cloud.api.params import RowId
from cloud.reports.i18n import Lang, t
from cloud.reports.period import Period, last_month
from cloud.reports.service import MEDIA, ReportService, UnknownCommune
from cloud.reports.store import StoredReport
from cloud.reports.wifi_model import WifiReport
from cloud.storage.influx import InfluxError


class StoredReportOut(BaseModel):
    id: int
    kind: str = Field(description="wifi")
    period: str = Field(description="2026-11 for a month, else first_last.")
    commune: str = Field(description="'' for all communes.")
    first: date
    last: date
    origin: str = Field(description="monthly (the job) or manual.")
    state: Literal["building", "done", "failed"]
    created_at: datetime
    done_at: datetime | None
    files: list[str] = Field(description="Formats kept, each at /reports/{id}.{format}.")
    error: str

    @classmethod
    def of(cls, s: StoredReport) -> StoredReportOut:
        return cls(
            id=s.id,
            kind=s.kind,
            period=s.period,
            commune=s.commune,
            first=date.fromisoformat(s.first),
            last=date.fromisoformat(s.last),
            origin=s.origin,
            state=s.state,
            created_at=datetime.fromtimestamp(s.claimed_at).astimezone(),
            done_at=datetime.fromtimestamp(s.done_at).astimezone() if s.done_at else None,
            files=s.files,
            error=s.error,
        )


FromQ = Annotated[date | None, Query(alias="from", description="First local day (default: last month).")]
ToQ = Annotated[date | None, Query(alias="to", description="Last local day, inclusive (default: as from).")]
CommuneQ = Annotated[str | None, Query(description="Commune id; empty: all communes.")]
LangQ = Annotated[Lang | None, Query(description="vi (default) or en.")]
RefreshQ = Annotated[bool, Query(description="Re-aggregate the rollups first (late replays).")]


def wifi_reports_router(service: ReportService, require_reports: Callable[..., Any]) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_reports)], tags=["reports"])
    tz = service.cfg.timezone

    def period_of(first: date | None, last: date | None) -> Period:
        if first is None:
            if last is not None:
                raise HTTPException(422, "give 'from' with 'to'")
            return last_month(datetime.now().astimezone(), tz)
        try:
            p = Period(first, last or first, tz).check_supported()
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if p.days > 400:
            raise HTTPException(422, "at most 400 days per report")
        return p

    async def build(first: date | None, last: date | None, commune: str | None, refresh: bool) -> WifiReport:
        try:
            return await service.build(period_of(first, last), commune or None, refresh=refresh)
        except UnknownCommune as exc:
            raise HTTPException(404, str(exc)) from None
        except InfluxError as exc:
            raise HTTPException(503, f"time-series database unavailable: {exc}") from None

    def lang_of(lang: Lang | None) -> Lang:
        return lang or service.cfg.language

    def nav(lang: Lang, first: date | None, last: date | None, commune: str | None) -> str:
        q: dict[str, str] = {}
        if first:
            q["from"] = first.isoformat()
        if last:
            q["to"] = last.isoformat()
        if commune:
            q["commune"] = commune
        other: Lang = "en" if lang == "vi" else "vi"
        links = [
            ("/", t("home", lang)),
            ("/reports", t("reports", lang)),
            ("/reports/wifi.xlsx?" + urlencode({**q, "lang": lang}), "XLSX"),
            ("/reports/wifi.csv?" + urlencode({**q, "lang": lang}), "CSV"),
            ("/reports/wifi?" + urlencode({**q, "lang": other}), other.upper()),
        ]
        inner = "".join(f'<a href="{escape(h)}">{escape(x)}</a>' for h, x in links)
        options = "".join(
            f'<option value="{escape(c.id)}"{" selected" if c.id == commune else ""}>'
            f"{escape(c.name or c.id)}</option>"
            for c in service.inventory.communes
        )
        picker = (
            '<form class="report-period" method="get" action="/reports/wifi">'
            f'<label>{t("from", lang)} <input type="date" name="from" value="{q.get("from", "")}"></label> '
            f'<label>{t("to", lang)} <input type="date" name="to" value="{q.get("to", "")}"></label> '
            f'<label>{t("scope", lang)} <select name="commune"><option value="">{t("all_communes", lang)}'
            f"</option>{options}</select></label> "
            f'<input type="hidden" name="lang" value="{lang}">'
            f'<button type="submit">{t("show", lang)}</button></form>'
        )
        return f'<nav class="report-nav">{inner}{picker}</nav>'

    @router.get("/reports/wifi", response_class=HTMLResponse, summary="Wi-Fi report page (printable)")
    async def wifi_page(
        first: FromQ = None,
        last: ToQ = None,
        commune: CommuneQ = None,
        lang: LangQ = None,
        refresh: RefreshQ = False,
    ) -> HTMLResponse:
        report = await build(first, last, commune, refresh)
        lg = lang_of(lang)
        from cloud.reports.render_html import render_html

        page = nav(lg, first, last, commune)
        # rendering off the event loop (seconds for a province's thousands of APs)
        body = await asyncio.to_thread(render_html, report, lg, service.inventory, nav=page)
        return HTMLResponse(body)

    async def download(report: WifiReport, fmt: str, lang: Lang) -> Response:
        name = f"wifi-{report.first.isoformat()}_{report.last.isoformat()}"
        if report.commune:
            name += f"-{report.commune}"
        body = await asyncio.to_thread(service.render, report, fmt, lang)
        return Response(
            body,
            media_type=MEDIA[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
        )

    @router.get("/reports/wifi.xlsx", summary="Wi-Fi report as XLSX", response_class=Response)
    async def wifi_xlsx(
        first: FromQ = None,
        last: ToQ = None,
        commune: CommuneQ = None,
        lang: LangQ = None,
        refresh: RefreshQ = False,
    ) -> Response:
        return await download(await build(first, last, commune, refresh), "xlsx", lang_of(lang))

    @router.get("/reports/wifi.csv", summary="Wi-Fi report as CSV", response_class=Response)
    async def wifi_csv(
        first: FromQ = None,
        last: ToQ = None,
        commune: CommuneQ = None,
        lang: LangQ = None,
        refresh: RefreshQ = False,
    ) -> Response:
        return await download(await build(first, last, commune, refresh), "csv", lang_of(lang))

    @router.get("/api/v1/reports/wifi", response_model=WifiReport, summary="Wi-Fi report numbers")
    async def wifi_json(
        first: FromQ = None, last: ToQ = None, commune: CommuneQ = None, refresh: RefreshQ = False
    ) -> WifiReport:
        return await build(first, last, commune, refresh)

    def stored() -> list[StoredReport]:
        if service.store is None:
            return []
        return service.store.list()

    @router.get("/api/v1/reports", response_model=list[StoredReportOut], summary="Kept reports")
    async def list_json() -> list[StoredReportOut]:
        return [StoredReportOut.of(s) for s in await asyncio.to_thread(stored)]

    @router.get("/reports", response_class=HTMLResponse, summary="Kept reports (page)")
    async def list_page(lang: LangQ = None) -> HTMLResponse:
        lg = lang_of(lang)
        rows = []
        for s in await asyncio.to_thread(stored):
            links = " ".join(f'<a href="/reports/{s.id}.{f}">{f.upper()}</a>' for f in s.files) or escape(
                s.state
            )
            rows.append(
                f"<tr data-id='{s.id}'><td>{escape(s.period)}</td>"
                f"<td>{escape(s.commune or t('all', lg))}</td>"
                f"<td>{escape(s.origin)}</td><td>{links}</td></tr>"
            )
        body = (
            f'<!DOCTYPE html><html lang="{lg}"><head><meta charset="utf-8"><title>{t("reports", lg)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
            f'<p><a href="/">{t("home", lg)}</a></p>'
            f"<h1>{t('reports', lg)}</h1>"
            f'<p><a href="/reports/wifi?lang={lg}">{t("title", lg)}</a></p>'
            f"<table><thead><tr><th>{t('period', lg)}</th><th>{t('scope', lg)}</th><th></th>"
            f"<th>{t('download', lg)}</th></tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>"
        )
        return HTMLResponse(body)

    @router.get("/reports/{report_id}.{fmt}", summary="A kept report's file", response_class=Response)
    async def stored_file(report_id: RowId, fmt: Literal["html", "xlsx", "csv", "json"]) -> Response:
        store = service.store
        s = await asyncio.to_thread(store.get, report_id) if store is not None else None
        path = store.file(s, fmt) if store is not None and s is not None else None
        if s is None or path is None:
            raise HTTPException(404, "no such report file")
        media = MEDIA.get(fmt, "application/json")
        return FileResponse(
            path, media_type=media, filename=f"wifi-{s.period}{'-' + s.commune if s.commune else ''}.{fmt}"
        )

    return router
