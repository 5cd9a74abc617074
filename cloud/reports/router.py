"""HTTP routes of the Wi-Fi reports: the page, file downloads, the kept reports, JSON.

``wifi_reports_router(service, require_reports, chrome)`` returns a router whose every
route depends on ``require_reports`` (the lead's login dependency: it returns the user or
raises 401/403), so nothing here is reachable without the ``mic`` or ``admin`` role.
``chrome`` (optional) gives the pages the web UI's header bar and language. Errors a
person may read are :class:`cloud.httperrors.Problem`: English JSON for the API,
Vietnamese on the web UI's error page.

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
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from cloud.api.params import RowId
from cloud.httperrors import Problem
from cloud.reports.i18n import Lang, t
from cloud.reports.period import EARLIEST, LATEST, Period, last_month
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
RefreshQ = Annotated[
    bool, Query(description="Re-aggregate all the rollups first (stale days are re-aggregated anyway).")
]


class ReportChrome(Protocol):
    """What the web UI adds to the report pages it serves (``cloud.web.pages.WebChrome``):
    its header bar (user, logout, language) and the language the user chose there."""

    def lang(self, request: Request, user: Any) -> Lang | None: ...

    def header(self, request: Request, user: Any, lang: Lang) -> str: ...


def _day(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def wifi_reports_router(
    service: ReportService, require_reports: Callable[..., Any], chrome: ReportChrome | None = None
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_reports)], tags=["reports"])
    tz = service.cfg.timezone
    user_dep = Depends(require_reports)  # the same call as the router's: FastAPI runs it once

    def period_of(first: date | None, last: date | None) -> Period:
        if first is None:
            if last is not None:
                raise Problem(422, "give 'from' with 'to'", "Hãy chọn cả ngày bắt đầu (Từ ngày).")
            return last_month(datetime.now().astimezone(), tz)
        last = last or first
        if last < first:
            raise Problem(
                422,
                f"the range ends ({last}) before it starts ({first})",
                f"Ngày kết thúc ({_day(last)}) ở trước ngày bắt đầu ({_day(first)}).",
            )
        try:
            p = Period(first, last, tz).check_supported()
        except ValueError as exc:
            raise Problem(
                422, str(exc), f"Báo cáo chỉ lập được cho các ngày từ {_day(EARLIEST)} đến {_day(LATEST)}."
            ) from None
        if p.days > 400:
            raise Problem(422, "at most 400 days per report", "Mỗi báo cáo dài tối đa 400 ngày.")
        return p

    async def build(first: date | None, last: date | None, commune: str | None, refresh: bool) -> WifiReport:
        try:
            return await service.build(period_of(first, last), commune or None, refresh=refresh)
        except UnknownCommune as exc:
            raise Problem(404, str(exc), f"Không có xã «{commune}».") from None
        except InfluxError as exc:
            raise Problem(
                503,
                f"time-series database unavailable: {exc}",
                "Cơ sở dữ liệu số liệu Wi-Fi đang không truy cập được; vui lòng thử lại sau ít phút.",
            ) from None

    def lang_of(lang: Lang | None, request: Request | None = None, user: Any = None) -> Lang:
        if lang:
            return lang
        chosen = chrome.lang(request, user) if chrome is not None and request is not None else None
        return chosen or service.cfg.language

    def header(request: Request, user: Any, lang: Lang) -> str:
        return chrome.header(request, user, lang) if chrome is not None else ""

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
            ("/reports/wifi.xlsx?" + urlencode({**q, "lang": lang}), "XLSX"),
            ("/reports/wifi.csv?" + urlencode({**q, "lang": lang}), "CSV"),
        ]
        if chrome is None:  # else the app's header links the kept reports and switches language
            links.append(("/reports", t("kept_reports", lang)))
            links.append(("/reports/wifi?" + urlencode({**q, "lang": other}), other.upper()))
        inner = "".join(f'<a href="{escape(h)}">{escape(x)}</a>' for h, x in links)
        refresh = (
            '<form class="report-period" method="get" action="/reports/wifi">'
            + "".join(f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in q.items())
            + f'<input type="hidden" name="lang" value="{lang}">'
            '<input type="hidden" name="refresh" value="1">'
            f'<button type="submit" id="refresh-button">{t("refresh", lang)}</button></form>'
        )
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
        return f'<nav class="report-nav">{inner}{refresh}{picker}</nav>'

    @router.get("/reports/wifi", response_class=HTMLResponse, summary="Wi-Fi report page (printable)")
    async def wifi_page(
        request: Request,
        first: FromQ = None,
        last: ToQ = None,
        commune: CommuneQ = None,
        lang: LangQ = None,
        refresh: RefreshQ = False,
        user: Any = user_dep,
    ) -> HTMLResponse:
        report = await build(first, last, commune, refresh)
        lg = lang_of(lang, request, user)
        from cloud.reports.render_html import render_html

        page = nav(lg, first, last, commune)
        # rendering off the event loop (seconds for a province's thousands of APs)
        body = await asyncio.to_thread(
            render_html, report, lg, service.inventory, nav=page, header=header(request, user, lg)
        )
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
    async def list_page(request: Request, lang: LangQ = None, user: Any = user_dep) -> HTMLResponse:
        lg = lang_of(lang, request, user)
        from cloud.reports.render_html import render_list

        kept = await asyncio.to_thread(stored)
        return HTMLResponse(render_list(kept, lg, service.inventory, header=header(request, user, lg)))

    @router.get("/reports/{report_id}.{fmt}", summary="A kept report's file", response_class=Response)
    async def stored_file(report_id: RowId, fmt: Literal["html", "xlsx", "csv", "json"]) -> Response:
        store = service.store
        s = await asyncio.to_thread(store.get, report_id) if store is not None else None
        path = store.file(s, fmt) if store is not None and s is not None else None
        if s is None or path is None:
            raise Problem(404, "no such report file", "Không có tệp báo cáo này.")
        media = MEDIA.get(fmt, "application/json")
        return FileResponse(
            path, media_type=media, filename=f"wifi-{s.period}{'-' + s.commune if s.commune else ''}.{fmt}"
        )

    return router
