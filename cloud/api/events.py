"""JSON API of the police event log: events, snapshots, review, notes, timelines, exports.

Scope is checked here on every call, not in the UI: an event outside the caller's
communes is answered 404, exactly like a missing one, so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from cloud.api.params import MAX_ROW_ID, RowId
from cloud.auth.deps import audit, note_refusal, require, services
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.events.evidence import ExportRecord
from cloud.events.store import LOCAL_TZ, Event, EventFilter, Note, Page
from cloud.httperrors import Problem
from cloud.inventory import Device
from cloud.storage.thumbnails import thumbnail
from labels.classes import display, members
from labels.classes import known as known_label

Police = Annotated[Principal, Depends(require(Perm.EVENTS))]


class BoxOut(BaseModel):
    x: float
    y: float
    w: float
    h: float


class LabelOut(BaseModel):
    label: str = Field(description="COCO class: person, bicycle, motorcycle, car, bus, truck, dog...")
    name: str = Field(description="The class in Vietnamese (người, xe máy, ô tô...).")
    confidence: float
    box: BoxOut | None = Field(
        None, description="Where in the snapshot; null for a class seen only in an earlier snapshot."
    )


class NoteOut(BaseModel):
    id: int
    author: str
    at: datetime
    text: str


class EventOut(BaseModel):
    id: int = Field(description="Row id, used in URLs.")
    event_id: str = Field(description="The camera agent's id of the event.")
    device: str
    commune: str
    site: str
    start: datetime
    end: datetime | None = Field(description="Null while the event lasts.")
    duration_s: float
    peak_area_pct: float
    boxes: list[BoxOut] = Field(description="Union bounding boxes, normalised 0..1.")
    zones: list[str]
    score: float | None
    frames: int | None
    snapshot_sha256: str | None
    has_snapshot: bool
    reviewed_by: str | None
    reviewed_at: datetime | None
    keep: bool = Field(description="Held past retention.")
    exports: int = Field(description="Evidence exports that include it (kept while > 0).")
    labels: list[LabelOut] | None = Field(
        description="Objects seen in the event, most confident first; [] none found, null not "
        "labelled (yet: the cloud labels snapshots as they arrive, when labelling is on)."
    )
    labels_source: str | None = Field(description='Who labelled it: "edge" (the board) or "cloud".')
    snapshot_source: Literal["http", "main", "detect"] | None = Field(
        None,
        description='Where the snapshot came from, for a camera that detects on its substream: "http" '
        '(the camera\'s JPEG snapshot URL) or "main" (the main stream), both full resolution, or '
        '"detect": the small detected frame, sent because the full-resolution picture failed. Null: '
        "not said (a camera without a substream, whose picture is the detected frame, or an older event).",
    )
    snapshot_width_px: int | None = Field(None, description="The snapshot's width in px (null: not said).")
    snapshot_height_px: int | None = Field(None, description="The snapshot's height in px (null: not said).")
    snapshot_fallback: bool = Field(
        False,
        description="True: the picture is the detected (substream) frame because the board could not "
        "get the full-resolution one (snapshot_fallback_reason says why).",
    )
    snapshot_wanted: Literal["http", "main"] | None = Field(
        None, description="On a fallback: the source that failed (null: the board did not say)."
    )
    snapshot_fallback_reason: str | None = Field(
        None, description="On a fallback: why, as the board logged it (e.g. HTTP 401 Unauthorized)."
    )


class NotifiedOut(BaseModel):
    rule: str = Field(description="The notification rule (alerting.notify.event_rules) that told of it.")
    at: datetime = Field(description="When the notice was queued for its notifiers.")
    label: str = Field(description='The class the rule matched ("" for a rule without require_label).')
    confidence: float | None
    notifiers: list[str] = Field(description="The channels told (cloud/notify/README.md).")


class EventDetail(EventOut):
    notes: list[NoteOut]
    notified: list[NotifiedOut] = Field(
        default_factory=list, description="Police notifications sent about it, each rule at most once."
    )
    before: list[EventOut] = Field(description="Earlier events of the same camera.")
    after: list[EventOut] = Field(description="Later events of the same camera.")


class EventPage(BaseModel):
    total: int
    offset: int
    limit: int
    events: list[EventOut]


class ReviewIn(BaseModel):
    reviewed: bool = True


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class KeepIn(BaseModel):
    keep: bool = True


class ExportIn(BaseModel):
    event_ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(
        min_length=1, max_length=500, description="Row ids of the events."
    )
    reason: str = Field("", max_length=1000, description="Why (case number, request).")
    require_label: str | None = Field(
        None,
        max_length=40,
        description="Refuse (422) unless every event carries this class or group (person, vehicle...).",
    )


class ExportOut(BaseModel):
    id: int
    created_at: datetime
    created_by: str
    communes: list[str]
    events: list[int]
    reason: str
    filename: str
    sha256: str = Field(description="SHA-256 of the ZIP file as made.")
    size: int
    key_fingerprint: str | None = Field(
        description="Fingerprint of the Ed25519 key that signed it (null: made before exports were signed)."
    )


class SigningKeyOut(BaseModel):
    fingerprint: str = Field(description="SHA-256 of the raw 32-byte Ed25519 public key, hex.")
    public_key_pem: str


class SigningKeysOut(BaseModel):
    current: SigningKeyOut = Field(description="The key that signs new exports.")
    retired: list[SigningKeyOut] = Field(description="Earlier keys (exports they signed still verify).")


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def has_snapshot(request: Request, ev: Event) -> bool:
    sha = ev.snapshot_sha256
    return bool(sha) and services(request).snapshots.path_for(sha or "").exists()


def event_out(ev: Event, request: Request) -> EventOut:
    has = has_snapshot(request, ev)
    return EventOut(
        id=ev.id,
        event_id=ev.event_id,
        device=ev.device,
        commune=ev.commune,
        site=ev.site,
        start=datetime.fromtimestamp(ev.start, UTC),
        end=_dt(ev.end),
        duration_s=round(ev.duration_s, 3),
        peak_area_pct=ev.peak_area_pct,
        boxes=[BoxOut(**b) for b in ev.boxes],
        zones=ev.zones,
        score=ev.score,
        frames=ev.frames,
        snapshot_sha256=ev.snapshot_sha256,
        has_snapshot=has,
        reviewed_by=ev.reviewed_by,
        reviewed_at=_dt(ev.reviewed_at),
        keep=ev.keep,
        exports=ev.exports,
        labels=None if ev.labels is None else [label_out(lab) for lab in ev.labels],
        labels_source=ev.labels_source,
        snapshot_source=_known(ev.snapshot_source, ("http", "main", "detect")),
        snapshot_width_px=ev.snapshot_width_px,
        snapshot_height_px=ev.snapshot_height_px,
        snapshot_fallback=ev.snapshot_fell_back,
        snapshot_wanted=_known(ev.snapshot_wanted, ("http", "main")),
        snapshot_fallback_reason=ev.snapshot_fallback if ev.snapshot_fell_back else None,
    )


def _known(value: str | None, allowed: tuple[str, ...]) -> Any:
    """The stored value if the API schema names it, else None (ingest validated it already)."""
    return value if value in allowed else None


def label_out(lab: dict[str, Any]) -> LabelOut:
    box = lab.get("box")
    return LabelOut(
        label=lab["label"],
        name=display(lab["label"]),
        confidence=lab["confidence"],
        box=BoxOut(**box) if box else None,
    )


def note_out(n: Note) -> NoteOut:
    return NoteOut(id=n.id, author=n.author, at=datetime.fromtimestamp(n.at, UTC), text=n.text)


def export_out(r: ExportRecord) -> ExportOut:
    return ExportOut(
        id=r.id,
        created_at=datetime.fromtimestamp(r.created_at, UTC),
        created_by=r.created_by,
        communes=sorted(r.communes),
        events=list(r.events),
        reason=r.reason,
        filename=r.filename,
        sha256=r.sha256,
        size=r.size,
        key_fingerprint=r.key_fingerprint,
    )


def _minutes(hhmm: str | None, name: str) -> int | None:
    if not hhmm:
        return None
    try:
        t = time.fromisoformat(hhmm)
    except ValueError:
        raise Problem(
            422, f"{name}: expected HH:MM, got {hhmm!r}", "Giờ phải có dạng HH:MM, ví dụ 08:00."
        ) from None
    return t.hour * 60 + t.minute


def _local_day_start(d: date) -> float:
    return datetime.combine(d, time(0), LOCAL_TZ).timestamp()


def build_filter(
    p: Principal,
    *,
    commune: str | None,
    device: str | None,
    site: str | None,
    date_from: date | None,
    date_to: date | None,
    time_from: str | None,
    time_to: str | None,
    reviewed: bool | None,
    min_duration_s: float | None,
    label: str | None = None,
    labelled: bool | None = None,
) -> EventFilter:
    """Filters from request parameters; dates are local (Asia/Ho_Chi_Minh) and inclusive."""
    if label and not known_label(label):
        raise HTTPException(422, f"label: unknown class or group {label[:40]!r}")
    return EventFilter(
        communes=p.event_scope(),
        commune=commune or None,
        device=device or None,
        site=site or None,
        since=_local_day_start(date_from) if date_from else None,
        until=_local_day_start(date_to + timedelta(days=1)) if date_to else None,
        minute_from=_minutes(time_from, "time_from"),
        minute_to=_minutes(time_to, "time_to"),
        reviewed=reviewed,
        min_duration_s=min_duration_s,
        labels=members(label) if label else None,
        labelled=labelled,
    )


async def get_event_or_404(request: Request, p: Principal, event_pk: int) -> Event:
    svc = services(request)
    ev = await asyncio.to_thread(svc.events.get, event_pk, p.event_scope())
    if ev is None:
        # The caller gets the same 404 either way; the audit trail learns which it was.
        other = (
            await asyncio.to_thread(svc.events.get, event_pk, None) if p.event_scope() is not None else None
        )
        note_refusal(request, f"event:{event_pk}", other.commune if other else None)
        raise Problem(
            404, f"no event {event_pk} in your communes", f"Không có sự kiện #{event_pk} trong xã của bạn."
        )
    return ev


async def visible_export(request: Request, p: Principal, export_id: int) -> ExportRecord:
    rec = await asyncio.to_thread(services(request).exports.get, export_id)
    scope = p.event_scope()
    if rec is None or (scope is not None and not rec.communes <= scope):
        note_refusal(request, f"export:{export_id}", ",".join(sorted(rec.communes)) if rec else None)
        raise Problem(
            404,
            f"no export {export_id} in your communes",
            f"Không có bản trích xuất #{export_id} trong xã của bạn.",
        )
    return rec


def visible_camera(request: Request, p: Principal, device: str) -> Device:
    """A camera in the caller's communes; anything else (an access point too) is 404, for the
    API and the page alike."""
    d = services(request).inventory.device(device)
    if d is None or d.kind != "camera" or not p.sees_commune(d.commune):
        other = d.commune if d is not None and d.kind == "camera" else None
        note_refusal(request, f"camera:{device[:100]}", other)
        raise Problem(
            404, f"no camera {device} in your communes", f"Không có camera «{device}» trong xã của bạn."
        )
    return d


async def camera_day(
    request: Request, p: Principal, device: str, day: date
) -> tuple[Device, float, list[Event]]:
    """A camera's events of one local day (timeline), audited; the API and the page share it."""
    d = visible_camera(request, p, device)
    start = _local_day_start(day)
    evs = await asyncio.to_thread(services(request).events.day, device, start, start + 86400)
    audit(request, p, "timeline_view", f"camera:{device}", commune=d.commune, detail={"day": day.isoformat()})
    return d, start, evs


async def review_event(request: Request, p: Principal, ev: Event, on: bool) -> None:
    """Mark reviewed by the caller (or back to unreviewed); the API and the page share it."""
    await asyncio.to_thread(services(request).events.set_reviewed, ev.id, p.username if on else None)
    audit(request, p, "review" if on else "unreview", f"event:{ev.id}", commune=ev.commune)


async def note_event(request: Request, p: Principal, ev: Event, text: str) -> Note:
    n = await asyncio.to_thread(services(request).events.add_note, ev.id, p.username, text)
    audit(request, p, "note", f"event:{ev.id}", commune=ev.commune, detail={"note": n.id, "text": text})
    return n


async def keep_event(request: Request, p: Principal, ev: Event, on: bool) -> None:
    await asyncio.to_thread(services(request).events.set_keep, ev.id, on)
    audit(request, p, "keep" if on else "unkeep", f"event:{ev.id}", commune=ev.commune)


async def create_export(
    request: Request, p: Principal, ids: list[int], reason: str, require_label: str | None = None
) -> ExportRecord:
    svc = services(request)
    wanted = list(dict.fromkeys(ids))
    evs = await asyncio.to_thread(svc.events.get_many, wanted, p.event_scope())
    if len(evs) != len(wanted):
        missing = sorted(set(wanted) - {e.id for e in evs})
        shown = ", ".join(map(str, missing))
        raise Problem(
            404,
            f"events not found in your communes: {shown}",
            f"Không có các sự kiện {shown} trong xã của bạn.",
        )
    if require_label:
        if not known_label(require_label):
            raise HTTPException(422, f"require_label: unknown class or group {require_label[:40]!r}")
        wanted_classes = members(require_label)
        lacking = [e.id for e in evs if not wanted_classes.intersection(e.label_names)]
        if lacking:
            raise HTTPException(
                422,
                f"events {', '.join(map(str, lacking))} carry no {require_label!r} label; "
                "leave them out or drop require_label",
            )
    people = await asyncio.to_thread(svc.people)
    rec = await asyncio.to_thread(
        svc.exports.create, evs, p.username, reason=reason, names=svc.names(), people=people
    )
    audit(
        request,
        p,
        "export_create",
        f"export:{rec.id}",
        commune=",".join(sorted(rec.communes)),
        detail={
            "events": list(rec.events),
            "sha256": rec.sha256,
            "size": rec.size,
            "reason": reason,
            **({"require_label": require_label} if require_label else {}),
        },
    )
    return rec


def events_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["events"])

    @r.get("/events", response_model=EventPage, summary="Motion events in your communes, newest first")
    async def list_events(
        request: Request,
        p: Police,
        commune: str | None = Query(None),
        device: str | None = Query(None, description="Camera id."),
        site: str | None = Query(None),
        date_from: Annotated[date | None, Query(description="Local date, inclusive.")] = None,
        date_to: Annotated[date | None, Query(description="Local date, inclusive.")] = None,
        time_from: str | None = Query(None, description="Local time of day HH:MM (start >= it)."),
        time_to: str | None = Query(None, description="Local time of day HH:MM (start < it); may wrap."),
        reviewed: bool | None = Query(None),
        min_duration_s: float | None = Query(None, ge=0),
        label: str | None = Query(
            None,
            max_length=40,
            description="Only events labelled with this class (person, motorcycle, car, truck, dog...) "
            "or group (vehicle, animal).",
        ),
        labelled: bool | None = Query(
            None, description="true: only events with a label; false: only those without (none yet)."
        ),
        offset: int = Query(0, ge=0, le=10_000_000),
        limit: int = Query(50, ge=1, le=500),
        order: Literal["desc", "asc"] = Query("desc"),
    ) -> EventPage:
        f = build_filter(
            p,
            commune=commune,
            device=device,
            site=site,
            date_from=date_from,
            date_to=date_to,
            time_from=time_from,
            time_to=time_to,
            reviewed=reviewed,
            min_duration_s=min_duration_s,
            label=label,
            labelled=labelled,
        )
        page: Page = await asyncio.to_thread(
            services(request).events.search, f, offset=offset, limit=limit, order=order
        )
        audit(
            request,
            p,
            "event_list",
            detail={
                "filter": dict(request.query_params),
                "total": page.total,
                "shown": [e.id for e in page.events],
            },
        )
        return EventPage(
            total=page.total,
            offset=page.offset,
            limit=page.limit,
            events=[event_out(e, request) for e in page.events],
        )

    @r.get("/events/{event_pk}", response_model=EventDetail, summary="One event with notes and neighbours")
    async def get_event(request: Request, p: Police, event_pk: RowId) -> EventDetail:
        ev = await get_event_or_404(request, p, event_pk)
        svc = services(request)
        notes = await asyncio.to_thread(svc.events.notes_of, ev.id)
        before, after = await asyncio.to_thread(svc.events.neighbours, ev)
        notified = await asyncio.to_thread(svc.events.notified, ev.id)
        audit(request, p, "event_view", f"event:{ev.id}", commune=ev.commune)
        return EventDetail(
            **event_out(ev, request).model_dump(),
            notes=[note_out(n) for n in notes],
            notified=[NotifiedOut(**{**n, "at": datetime.fromtimestamp(n["at"], UTC)}) for n in notified],
            before=[event_out(e, request) for e in before],
            after=[event_out(e, request) for e in after],
        )

    @r.get(
        "/events/{event_pk}/snapshot",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No event or no snapshot"}},
        summary="The event's JPEG snapshot",
    )
    async def snapshot(
        request: Request,
        p: Police,
        event_pk: RowId,
        thumb: Annotated[
            bool, Query(description="A 240 px thumbnail (covered by the list's audit entry) instead.")
        ] = False,
    ) -> Response:
        ev = await get_event_or_404(request, p, event_pk)
        svc = services(request)
        sha = ev.snapshot_sha256 or ""
        path = svc.snapshots.path_for(sha) if sha else None
        if path is None or not path.exists():
            raise HTTPException(404, "this event has no snapshot (not received, or deleted by retention)")
        if thumb:
            try:
                path = await asyncio.to_thread(thumbnail, svc.snapshots, sha)
            except OSError:
                path = None
            if path is None:
                raise HTTPException(404, "this event's snapshot cannot be read as an image")
        else:
            audit(request, p, "snapshot_view", f"event:{ev.id}", commune=ev.commune)
        return FileResponse(
            path,
            media_type="image/jpeg",
            headers={"Cache-Control": "no-store", "X-Snapshot-SHA256": sha},
        )

    @r.post("/events/{event_pk}/review", response_model=EventOut, summary="Mark reviewed (or not)")
    async def review(request: Request, p: Police, event_pk: RowId, body: ReviewIn) -> EventOut:
        ev = await get_event_or_404(request, p, event_pk)
        await review_event(request, p, ev, body.reviewed)
        return event_out(await get_event_or_404(request, p, event_pk), request)

    @r.post("/events/{event_pk}/notes", response_model=NoteOut, status_code=201, summary="Add a note")
    async def add_note(request: Request, p: Police, event_pk: RowId, body: NoteIn) -> NoteOut:
        ev = await get_event_or_404(request, p, event_pk)
        return note_out(await note_event(request, p, ev, body.text))

    @r.post("/events/{event_pk}/keep", response_model=EventOut, summary="Hold past retention (or release)")
    async def keep(request: Request, p: Police, event_pk: RowId, body: KeepIn) -> EventOut:
        ev = await get_event_or_404(request, p, event_pk)
        await keep_event(request, p, ev, body.keep)
        return event_out(await get_event_or_404(request, p, event_pk), request)

    @r.get("/cameras/{device}/timeline", response_model=list[EventOut], summary="A camera's events of a day")
    async def timeline(
        request: Request, p: Police, device: str, day: Annotated[date, Query(description="Local date.")]
    ) -> list[EventOut]:
        _d, _start, evs = await camera_day(request, p, device, day)
        return [event_out(e, request) for e in evs]

    @r.post("/exports", response_model=ExportOut, status_code=201, summary="Export events as evidence (ZIP)")
    async def new_export(request: Request, p: Police, body: ExportIn) -> ExportOut:
        return export_out(await create_export(request, p, body.event_ids, body.reason, body.require_label))

    @r.get("/exports", response_model=list[ExportOut], summary="Evidence exports in your communes")
    async def list_exports(request: Request, p: Police) -> list[ExportOut]:
        scope = p.event_scope()
        recs = await asyncio.to_thread(services(request).exports.all)
        return [export_out(x) for x in recs if scope is None or x.communes <= scope]

    @r.get(
        "/exports/keys",
        response_model=SigningKeysOut,
        summary="The server's public keys that sign evidence exports (compare with a ZIP's)",
    )
    async def signing_keys(request: Request, _p: Police) -> SigningKeysOut:
        signer = services(request).exports.signer
        current = await asyncio.to_thread(signer.current)
        retired = await asyncio.to_thread(signer.retired)
        return SigningKeysOut(
            current=SigningKeyOut(fingerprint=current.fingerprint, public_key_pem=current.pem),
            retired=[SigningKeyOut(fingerprint=k.fingerprint, public_key_pem=k.pem) for k in retired],
        )

    @r.get("/exports/{export_id}", response_model=ExportOut, summary="One export's record")
    async def get_export(request: Request, p: Police, export_id: RowId) -> ExportOut:
        rec = await visible_export(request, p, export_id)
        audit(request, p, "export_view", f"export:{rec.id}", commune=",".join(sorted(rec.communes)))
        return export_out(rec)

    @r.get(
        "/exports/{export_id}/download",
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}}},
        summary="Download the export ZIP",
    )
    async def download_export(request: Request, p: Police, export_id: RowId) -> Response:
        rec = await visible_export(request, p, export_id)
        path = services(request).exports.path(rec)
        if not path.exists():
            raise Problem(
                410,
                f"export file {rec.filename} is gone from the server",
                f"Tệp {rec.filename} không còn trên máy chủ.",
            )
        audit(request, p, "export_download", f"export:{rec.id}", commune=",".join(sorted(rec.communes)))
        return FileResponse(
            path,
            media_type="application/zip",
            filename=rec.filename,
            headers={"X-Export-SHA256": rec.sha256},
        )

    return r
