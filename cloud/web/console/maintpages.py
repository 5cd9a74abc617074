"""Page 4, maintenance windows: plan, change and end them in local time, seeing what they cover.

Times on the form are Asia/Ho_Chi_Minh wall-clock times (a technician plans "Tuesdays 22:00
for 2 hours"); a weekly window runs from its first day to its last day (both included). The
preview lists the devices the window covers and its next occurrences, before anything is saved.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from cloud.alerting.maintenance import DEFAULT_TZ, Window, covered_devices, occurrences, target_commune
from cloud.api import alerts as alert_api
from cloud.api.params import RowId
from cloud.auth.principal import Principal
from cloud.web.console.common import Technician, form_list, form_of
from cloud.web.console.configform import vi
from cloud.web.console.fleetpages import fleet_rows
from cloud.web.console.fleetview import Row
from cloud.web.console.services import Console
from cloud.web.pages import render

LOCAL: Final = ZoneInfo(DEFAULT_TZ)
KINDS: Final = ("device", "node", "site", "commune")


class FormError(ValueError):
    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("; ".join(messages))


def _local(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=LOCAL)
    except ValueError:
        raise FormError([f"{what}: ngày giờ không hợp lệ."]) from None


def _day(text: str, what: str) -> datetime:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise FormError([f"{what}: ngày không hợp lệ."]) from None
    return datetime(d.year, d.month, d.day, tzinfo=LOCAL)


@dataclass
class WindowForm:
    """The form's fields as typed (strings), so a refused form comes back as it was."""

    target_kind: str = "site"
    target: str = ""
    mode: str = "weekly"  # once | weekly
    start: str = ""  # once: YYYY-MM-DDTHH:MM, local
    end: str = ""
    weekdays: list[int] = field(default_factory=list)  # weekly: 0 = Monday
    at: str = "22:00"  # weekly: local start
    hours: str = "2"  # weekly: length of each occurrence
    first_day: str = ""  # weekly: from (default today)
    last_day: str = ""  # weekly: until, included (empty: no end)
    comment: str = ""

    @classmethod
    def posted(cls, form: dict[str, str], weekdays: list[str]) -> WindowForm:
        return cls(
            target_kind=form.get("target_kind", "site"),
            target=form.get("target", "").strip(),
            mode="once" if form.get("mode") == "once" else "weekly",
            start=form.get("start", ""),
            end=form.get("end", ""),
            weekdays=sorted({int(x) for x in weekdays if x.isdigit() and int(x) < 7}),
            at=form.get("at", ""),
            hours=form.get("hours", "").replace(",", "."),
            first_day=form.get("first_day", ""),
            last_day=form.get("last_day", ""),
            comment=form.get("comment", "")[:2000],
        )

    @classmethod
    def of_window(cls, w: Window) -> WindowForm:
        def local(ts: float) -> datetime:
            return datetime.fromtimestamp(ts, ZoneInfo(w.tz))

        if not w.recurring:
            end = local(w.ends_at).strftime("%Y-%m-%dT%H:%M") if w.ends_at is not None else ""
            return cls(
                w.target_kind,
                w.target,
                "once",
                local(w.starts_at).strftime("%Y-%m-%dT%H:%M"),
                end,
                comment=w.comment,
            )
        last = (local(w.ends_at) - timedelta(days=1)).date().isoformat() if w.ends_at is not None else ""
        return cls(
            w.target_kind,
            w.target,
            "weekly",
            weekdays=sorted(w.weekdays),
            at=w.local_start,
            hours=f"{w.duration_s / 3600:g}",
            first_day=local(w.starts_at).date().isoformat(),
            last_day=last,
            comment=w.comment,
        )

    def window(self, window_id: int = 0) -> Window:
        """The window it describes, checked like the API checks one; FormError in Vietnamese."""
        if self.target_kind not in KINDS:
            raise FormError(["Loại đối tượng không hợp lệ."])
        body: dict[str, Any] = {
            "target_kind": self.target_kind,
            "target": self.target,
            "comment": self.comment,
        }
        if self.mode == "once":
            if not self.start or not self.end:
                raise FormError(["Cần nhập thời điểm bắt đầu và kết thúc."])
            body |= {"starts_at": _local(self.start, "Bắt đầu"), "ends_at": _local(self.end, "Kết thúc")}
        else:
            if not self.weekdays:
                raise FormError(["Chọn ít nhất một ngày trong tuần."])
            try:
                hours = float(self.hours)
            except ValueError:
                raise FormError(["Thời lượng: phải là một số (giờ)."]) from None
            first = self.first_day or datetime.now(LOCAL).date().isoformat()
            body |= {
                "starts_at": _day(first, "Từ ngày"),
                "ends_at": _day(self.last_day, "Đến ngày") + timedelta(days=1) if self.last_day else None,
                "weekdays": self.weekdays,
                "local_start": self.at,
                "duration_s": hours * 3600,
            }
        try:
            parsed = alert_api.WindowIn.model_validate(body)
        except ValidationError as exc:
            raise FormError(
                [f"{'.'.join(map(str, e['loc']))}: {vi(e['msg'])}" for e in exc.errors()]
            ) from None
        try:
            return alert_api.window_of(parsed, window_id)
        except HTTPException as exc:
            raise FormError([_VI_API.get(str(exc.detail), str(exc.detail))]) from None


_VI_API = {
    "a recurring window needs local_start and duration_s": "Lịch hằng tuần cần giờ bắt đầu và thời lượng.",
    "a one-off window needs ends_at": "Lịch một lần cần thời điểm kết thúc.",
    "ends_at must be after starts_at": "Kết thúc phải sau bắt đầu.",
}


def upcoming(w: Window, now: float, n: int) -> list[tuple[float, float]]:
    """The window's next ``n`` occurrences (the one under way first), within 15 days of its start."""
    start = max(now, w.starts_at)
    return occurrences(w, now, start + 15 * 86400)[:n]


@dataclass
class Preview:
    devices: list[Row]  # the covered devices as the fleet page shows them
    next: list[tuple[float, float]]  # the next occurrences (start, end)
    active: bool


def router(c: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    async def preview(p: Principal, w: Window) -> Preview:
        scope = p.device_scope()
        devs = [
            d
            for d in covered_devices(w.target_kind, w.target, c.inventory)
            if scope is None or d.commune in scope
        ]
        rows, _ = await fleet_rows(c, p, devs) if devs else ([], True)
        now = time.time()
        return Preview(rows, upcoming(w, now, 4), w.active(now))

    async def page(
        request: Request,
        p: Principal,
        form: WindowForm,
        *,
        editing: Window | None = None,
        errors: list[str] | None = None,
        pv: Preview | None = None,
        status: int = 200,
    ) -> Response:
        runner = c.runner()
        now = time.time()
        scope = p.device_scope()
        windows = [
            w
            for w in await asyncio.to_thread(runner.store.windows, now)
            if scope is None or (target_commune(w.target_kind, w.target, c.inventory) or "") in scope
        ]
        listed = [
            (
                w,
                len(covered_devices(w.target_kind, w.target, c.inventory)),
                upcoming(w, now, 1),
            )
            for w in windows
        ]
        inv = c.inventory
        targets = {
            "device": [(d.id, d.id) for d in inv.devices if scope is None or d.commune in scope],
            "node": [(n.id, n.id) for n in inv.nodes if scope is None or n.commune in scope],
            "site": [(s.id, s.name or s.id) for s in inv.sites if scope is None or s.commune in scope],
            "commune": [(x.id, x.name or x.id) for x in inv.communes if scope is None or x.id in scope],
        }
        return render(
            request,
            "console/maintenance.html",
            p,
            status=status,
            form=form,
            editing=editing,
            errors=errors or [],
            pv=pv,
            listed=listed,
            targets=targets,
            kinds=KINDS,
            now=now,
        )

    async def posted(request: Request) -> tuple[str, WindowForm]:
        form = await form_of(request)
        return form.get("action", "preview"), WindowForm.posted(form, await form_list(request, "weekdays"))

    @r.get("/maintenance")
    async def maintenance_page(
        request: Request, p: Technician, target_kind: str = "", target: str = ""
    ) -> Response:
        form = WindowForm()
        if target_kind in KINDS and target:
            form.target_kind, form.target = target_kind, target[:64]
        return await page(request, p, form)

    @r.get("/maintenance/preview")
    async def preview_fragment(request: Request, p: Technician) -> Response:
        """What the form describes, as the preview box alone (the page's script asks as you type)."""
        q = request.query_params
        form = WindowForm.posted(dict(q.items()), q.getlist("weekdays"))
        try:
            pv, errors = await preview(p, form.window()), []
        except FormError as exc:
            pv, errors = None, exc.messages
        return render(request, "console/_window_preview.html", p, pv=pv, preview_errors=errors, form=form)

    @r.post("/maintenance")
    async def maintenance_post(request: Request, p: Technician) -> Response:
        action, form = await posted(request)
        try:
            w = form.window()
            if action != "save":
                return await page(request, p, form, pv=await preview(p, w))
            saved = await alert_api.add_window(request, p, c.runner(), w)
        except FormError as exc:
            return await page(request, p, form, errors=exc.messages, status=422)
        except HTTPException as exc:
            if exc.status_code != 422:
                raise
            return await page(request, p, form, errors=[_scope_vi(exc)], status=422)
        return RedirectResponse(f"/maintenance?saved={saved.id}#w{saved.id}", status_code=303)

    @r.get("/maintenance/{window_id}")
    async def edit_page(request: Request, p: Technician, window_id: RowId) -> Response:
        w, _ = await alert_api.window_or_404(request, p, c.runner(), window_id)
        return await page(request, p, WindowForm.of_window(w), editing=w, pv=await preview(p, w))

    @r.post("/maintenance/{window_id}")
    async def edit_post(request: Request, p: Technician, window_id: RowId) -> Response:
        w, _ = await alert_api.window_or_404(request, p, c.runner(), window_id)
        action, form = await posted(request)
        try:
            new = form.window(window_id)
            if action != "save":
                return await page(request, p, form, editing=w, pv=await preview(p, new))
            await alert_api.update_window(request, p, c.runner(), new)
        except FormError as exc:
            return await page(request, p, form, editing=w, errors=exc.messages, status=422)
        except HTTPException as exc:
            if exc.status_code != 422:
                raise
            return await page(request, p, form, editing=w, errors=[_scope_vi(exc)], status=422)
        return RedirectResponse(f"/maintenance?saved={window_id}#w{window_id}", status_code=303)

    @r.post("/maintenance/{window_id}/end")
    async def end_post(request: Request, p: Technician, window_id: RowId) -> Response:
        await alert_api.end_window(request, p, c.runner(), window_id)
        return RedirectResponse("/maintenance?ended=1", status_code=303)

    return r


def _scope_vi(exc: HTTPException) -> str:
    return f"Không có đối tượng này trong các xã bạn quản lý ({exc.detail})."
