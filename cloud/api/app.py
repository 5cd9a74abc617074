"""FastAPI application: the JSON API, the web UI, health, readiness and Prometheus metrics.

The app's lifespan starts and stops the ingest runtime, so ``uvicorn`` (or a test's ASGI
transport) running the app is the whole service. Everything under ``/api/v1`` and every
page needs a login (session cookie) or an API token. Open without one: the login page,
``/healthz`` and ``/readyz`` (an orchestrator or load balancer probes them; they say up or
down, and which dependency is down), and, unless ``http.public_docs`` is off, ``/docs``
and ``/openapi.json`` (the routes, never data). ``/metrics`` needs a technician's or
admin's login or token unless ``http.public_metrics`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import swagger_ui_bundle
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.api.alerts import alerts_router
from cloud.api.audit import audit_router
from cloud.api.events import events_router
from cloud.api.fleet import fleet_router
from cloud.api.inventory import inventory_router, presence
from cloud.api.limits import BodyLimit, validation_error
from cloud.api.params import MAX_ROW_ID
from cloud.api.releases import releases_router
from cloud.api.session import session_router
from cloud.auth.deps import LoginRequired, audit, audit_refusal, require
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.events.labelling import SnapshotLabeller, load_labeller
from cloud.events.retention import retention_loop
from cloud.fleet.rollout import run_rollouts
from cloud.fleet.service import FleetService
from cloud.fleet.updates import Updates, fleet_sender
from cloud.onboarding.service import Onboarding, expire_loop
from cloud.reports.router import wifi_reports_router
from cloud.reports.runtime import ReportsRuntime
from cloud.runtime import Runtime
from cloud.web.console.routes import console_router
from cloud.web.console.services import Console
from cloud.web.errors import html_error, html_validation_error
from cloud.web.help import help_router
from cloud.web.onboarding import onboarding_router
from cloud.web.pages import WebChrome, pages_router
from cloud.web.services import WebServices
from wire.compression import CompressionError, unpack
from wire.messages import MAX_JSON_BYTES

log = logging.getLogger(__name__)

#: Sent with every response. Styles may be inline (charts, timeline bars); scripts may not.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Paths whose answers hold data no browser or proxy should keep.
NO_STORE: tuple[str, ...] = ("/api/", "/events", "/exports", "/audit", "/cameras", "/reports")
#: ... and the technicians' console.
NO_STORE += ("/fleet", "/devices", "/boards", "/alerts", "/maintenance")


class DeviceOut(BaseModel):
    id: str = Field(description="Device id (for a node missing from the inventory: the node id).")
    kind: str | None = Field(description="ap or camera; null when not in the inventory.")
    commune: str
    site: str | None
    node: str
    address: str = ""
    known: bool = Field(description="Listed in the inventory.")
    status: Literal["online", "offline", "never_seen"] = Field(
        description="Raw presence: the node's newest birth/death certificate (docs/protocol.md, "
        "'Status'); online if it sent data but no status yet. A frozen board stays online here until "
        "the broker gives up on it: see board and state for the judgement."
    )
    status_reason: str | None = None
    board: Literal["up", "down", "unknown"] | None = Field(
        None,
        description="The alerter's judgement of the node (board) now: down on a Will, a shutdown or "
        "silence; unknown when never heard since the cloud started. The same judgement as "
        "/api/v1/communes/summary and the alerts. Null when alerting is off.",
    )
    state: Literal["up", "down", "unknown"] | None = Field(
        None,
        description="The alerter's judgement of the device now: down with a problem of its own (stream "
        "down, AP unreachable, ...), unknown while its board is not up. Null when alerting is off.",
    )
    last_seen: datetime | None = Field(description="When the cloud last received anything from the node.")
    session: str | None = None
    last_seq: int | None = None
    messages: int = Field(description="Data messages received from the node.")
    gaps: int = Field(description="Sequence numbers missing, summed over the node's sessions.")
    dead_letters: int = Field(description="Invalid messages from the node (dead-lettered).")
    rate_limited: int = Field(
        0, description="Messages over the node's rate limit: acknowledged, counted, not stored (flooding)."
    )


def _preview(payload: bytes) -> str:
    """The first 200 bytes of a dead letter, as JSON when a board packed it (wire.compression)."""
    with contextlib.suppress(CompressionError):
        payload = unpack(payload, MAX_JSON_BYTES)
    return payload[:200].decode("utf-8", "replace")


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    node_guess: str | None = Field(description="Sender as far as the topic tells.")
    reason: str = Field(description="Why it was refused, one line.")
    size: int = Field(description="Payload size in bytes (the full payload stays in SQL).")
    preview: str = Field(description="First 200 bytes of the payload, UTF-8 with replacement characters.")


class Readiness(BaseModel):
    ready: bool
    dependencies: dict[str, str] = Field(description='Dependency -> "ok" when up, else why it is down.')
    notifiers: dict[str, str] = Field(
        default_factory=dict,
        description='Alert channel -> "ok" while it can send, else why not and what to do (e.g. Zalo\'s '
        "refresh token refused). Does not make the cloud unready: it still ingests and judges.",
    )


#: /docs: Swagger UI from the swagger-ui-bundle package (no CDN, so the CSP holds and it works
#: offline), started by a script file rather than an inline one.
_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>commune-iot cloud API</title>
<link rel="stylesheet" href="/docs-assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>"""


#: Largest page of /api/v1/devices.
MAX_PAGE = 1000


def _ts(v: float | None) -> datetime | None:
    return datetime.fromtimestamp(v, UTC) if v else None


_mic = require(Perm.REPORTS)


async def _audited_reports(request: Request, p: Annotated[Principal, Depends(_mic)]) -> Principal:
    """MIC staff and admins only; every report view or download goes to the audit trail."""
    audit(request, p, "report_view", request.url.path, detail={"query": dict(request.query_params)})
    return p


def create_app(runtime: Runtime, *, manage_runtime: bool = True) -> FastAPI:
    """The app; with ``manage_runtime`` its lifespan starts and stops ingest (and the fleet
    service). Rollouts issue their ``update`` commands through the fleet service; without it
    they are refused, and any left running are paused with the reason."""

    web = WebServices.build(runtime.cfg, runtime.sql.engine, runtime.inventory, runtime.snapshots)
    updates = Updates.build(runtime.cfg, runtime.sql, runtime.inventory)
    reports = ReportsRuntime.create(
        runtime.cfg, runtime.influx, runtime.sql.engine, runtime.inventory, holder=runtime.client_id
    )
    fleet = (
        FleetService(runtime.cfg, runtime.sql.engine, runtime.inventory, runtime.client_id)
        if runtime.cfg.fleet.enabled
        else None
    )
    onboarding = Onboarding(runtime.cfg, runtime.live, fleet)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
            await reports.start()
            if fleet is not None:
                fleet.start()
        ev = runtime.cfg.events
        retention = asyncio.create_task(
            retention_loop(web.events, web.snapshots, web.audit, ev.retention_days, ev.retention_interval_s),
            name="event-retention",
        )
        refusals = asyncio.create_task(_flush_refusals(web), name="refusal-counts")
        labeller = await asyncio.to_thread(load_labeller, runtime.cfg.labels)
        labelling = None
        if labeller is not None:
            labelling = SnapshotLabeller(runtime.cfg.labels, web.events, web.snapshots, labeller).start()
            runtime.worker.observers.append(labelling.heard)
            if runtime.alerting is not None and runtime.alerting.events is not None:
                labelling.labelled_observers.append(runtime.alerting.events.poke)
        app.state.labelling = labelling
        bundles = asyncio.create_task(expire_loop(onboarding), name="bundle-expiry")
        tasks = [retention, refusals, bundles]
        if fleet is not None:
            send, every = fleet_sender(fleet, web.audit), runtime.cfg.releases.rollout_interval_s
            tasks.append(asyncio.create_task(run_rollouts(updates.rollouts, send, every), name="rollouts"))
        else:
            await asyncio.to_thread(updates.rollouts.halt)
        try:
            yield
        finally:
            if labelling is not None:
                await asyncio.to_thread(labelling.stop)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(web.refusals.close)
            if manage_runtime:
                if fleet is not None:
                    await asyncio.to_thread(fleet.stop)
                await reports.stop()
                await runtime.stop()

    app = FastAPI(
        title="commune-iot cloud",
        description="Device status, alerts, the police event log and Wi-Fi reports for the commune cameras "
        "and Wi-Fi access points. Every /api/v1 route needs a login or an API token (Bearer).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.web = web
    app.state.onboarding = onboarding
    app.state.presence = presence(runtime)
    http = runtime.cfg.http
    technician = [Depends(require(Perm.DEVICES))]

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        if _json_path(request.url.path):
            return await validation_error(request, exc)
        return await html_validation_error(request, exc)

    # Just inside the security headers: an oversized request is refused before routing or a login
    # check (outside them, its error raised while reading would reach FastAPI in an ExceptionGroup).
    app.add_middleware(BodyLimit, max_bytes=http.max_body_bytes, max_auth_bytes=http.max_auth_body_bytes)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith(NO_STORE):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/login?" + urlencode({"next": exc.next_url}), status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        audit_refusal(request, exc.status_code)
        if _json_path(request.url.path):
            return await http_exception_handler(request, exc)
        if (
            not isinstance(exc, HTTPException)
            and exc.status_code == 404
            and request.url.path.startswith("/static/")
        ):
            return await http_exception_handler(request, exc)
        return await html_error(request, exc)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        """A value the database cannot hold: the request's fault, not the server's (PostgreSQL
        refuses NUL in text, text longer than its column and numbers out of range, where SQLite
        is lenient; the API's own limits catch most of them first)."""
        log.warning("%s %s: value refused by the database: %s", request.method, request.url.path, exc.orig)
        detail = "a value cannot be stored (too long, out of range, or containing a NUL character)"
        return await http_error(request, HTTPException(422, detail))

    app.mount(
        "/static", StaticFiles(directory=Path(__file__).parent.parent / "web" / "static"), name="static"
    )
    app.mount(
        "/docs-assets", StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="docs-assets"
    )
    docs_guard = [] if http.public_docs else [Depends(require())]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_guard)
    async def openapi_schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs_guard)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_DOCS_PAGE)

    @app.get("/healthz", summary="Process alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Broker connected and InfluxDB answering", response_model=Readiness)
    async def readyz() -> JSONResponse:
        deps = await runtime.readiness()
        ready = all(v is None for v in deps.values())
        body = Readiness(
            ready=ready,
            dependencies={k: "ok" if v is None else v for k, v in deps.items()},
            notifiers={k: "ok" if v is None else v for k, v in runtime.channel_problems().items()},
        )
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @app.get(
        "/api/v1/devices",
        response_model=list[DeviceOut],
        summary="Inventory merged with live status (a page with limit/offset; a technician given "
        "communes: theirs)",
        dependencies=technician,
    )
    async def devices(
        request: Request,
        response: Response,
        p: Annotated[Principal, Depends(require(Perm.DEVICES))],
        commune: str | None = Query(None, description="Only this commune id."),
        kind: str | None = Query(None, description="Only this kind (ap, camera)."),
        limit: int | None = Query(
            None,
            ge=1,
            le=MAX_PAGE,
            description="At most this many devices, from offset (a page). Without it: every device. "
            "The total is in the X-Total-Count header, the next page in the Link header.",
        ),
        offset: int = Query(0, ge=0, le=MAX_ROW_ID, description="Devices skipped first (with limit)."),
    ) -> list[DeviceOut]:
        """Inventory devices in inventory order, then nodes the inventory lacks, sorted."""
        inv = runtime.inventory
        seen = await asyncio.to_thread(runtime.sql.node_communes)
        listed: list[tuple[str, str | None, str, str | None, str, str, bool]] = [
            (d.id, d.kind, d.commune, d.site, d.node, d.address, True) for d in inv.devices
        ]
        listed += [
            (n, None, c, None, n, "", False)
            for n, c in sorted(seen.items())
            if inv.node(n) is None and not inv.is_retired(n)
        ]
        listed = [
            r
            for r in listed
            if (commune is None or r[2] == commune) and (kind is None or r[1] == kind) and p.manages(r[2])
        ]
        total = len(listed)
        if limit is not None:
            listed = listed[offset : offset + limit]
            response.headers["X-Total-Count"] = str(total)
            if offset + limit < total:
                nxt = request.url.include_query_params(offset=offset + limit)
                response.headers["Link"] = f'<{nxt.path}?{nxt.query}>; rel="next"'
        wanted = {r[4] for r in listed}
        states = await asyncio.to_thread(
            runtime.sql.node_states, None if len(wanted) > MAX_PAGE else wanted & seen.keys()
        )
        out = [_device(*r, states.get(r[4])) for r in listed]
        if runtime.alerting is not None:
            judged = runtime.alerting.alerter.judgement(dev.id for dev in out)
            for dev in out:
                dev.board, dev.state = judged[dev.id]
        return out

    @app.get(
        "/api/v1/dead-letters",
        response_model=list[DeadLetterOut],
        summary="Refused messages, newest first",
        dependencies=technician,
    )
    async def dead_letter_list(
        node: str | None = Query(None, description="Only this node (as guessed from the topic)."),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[DeadLetterOut]:
        rows = await asyncio.to_thread(runtime.sql.dead_letter_rows, limit, node)
        return [
            DeadLetterOut(
                id=r["id"],
                received_at=datetime.fromtimestamp(r["received_at"], UTC),
                topic=r["topic"],
                node_guess=r["node_guess"],
                reason=r["reason"],
                size=r["size"],
                preview=_preview(bytes(r["payload"])),
            )
            for r in rows
        ]

    if runtime.alerting is not None:
        app.include_router(alerts_router(runtime.alerting), dependencies=technician)
    app.include_router(session_router())
    app.include_router(events_router())
    app.include_router(audit_router())
    app.include_router(releases_router(updates))
    app.include_router(wifi_reports_router(reports.service, _audited_reports, WebChrome()))
    if fleet is not None:
        app.include_router(fleet_router(fleet))
    app.include_router(inventory_router(onboarding, app.state.presence))
    app.include_router(pages_router())
    app.include_router(onboarding_router())
    app.include_router(console_router(Console.of(runtime, fleet)))
    app.include_router(help_router())

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Prometheus metrics (technicians and admins, unless http.public_metrics)",
        dependencies=[] if http.public_metrics else technician,
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(runtime.metrics_text(), media_type="text/plain; version=0.0.4")

    return app


def _json_path(path: str) -> bool:
    """Routes for programs (JSON errors); every other path is a page (HTML errors)."""
    return path.startswith("/api/") or path in {"/healthz", "/readyz", "/metrics", "/openapi.json"}


async def _flush_refusals(web: WebServices, every_s: float = 15.0) -> None:
    """Write the counts of refusal windows that have closed (see cloud.audit.refusals)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(web.refusals.flush)
        except Exception:
            log.exception("could not write refused-request counts to the audit trail; retrying")


def _device(
    id_: str,
    kind: str | None,
    commune: str,
    site: str | None,
    node: str,
    address: str,
    known: bool,
    st: dict[str, Any] | None,
) -> DeviceOut:
    st = st or {}
    status = st.get("status") or ("online" if st.get("last_seen") else "never_seen")
    return DeviceOut(
        id=id_,
        kind=kind,
        commune=commune,
        site=site,
        node=node,
        address=address,
        known=known,
        status=status,
        status_reason=st.get("status_reason"),
        last_seen=_ts(st.get("last_seen")),
        session=st.get("session"),
        last_seq=st.get("last_seq"),
        messages=int(st.get("messages") or 0),
        gaps=int(st.get("gaps") or 0),
        dead_letters=int(st.get("dead_letters") or 0),
        rate_limited=int(st.get("rate_limited") or 0),
    )
