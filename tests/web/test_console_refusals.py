"""Issue 16 must-show: a police officer (and MIC staff) is refused every technician page and API
route, each refusal in the audit trail.

The routes are walked from the app itself, not listed by hand: every route whose dependencies
demand the ``devices`` permission (``require(Perm.DEVICES)``, the technicians' and admins'), so
a route added later is walked too. Each is called as a browser would (session cookie, with the
session's CSRF token on writes, so the refusal is about the role and nothing else) and, for the
JSON API, with an API token as a script would.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before lazily included routers: app.routes lists every route

    def iter_route_contexts(routes: Any) -> Any:  # type: ignore[misc]
        return iter(routes)


from cloud.api.app import create_app
from cloud.audit.trail import AuditTrail
from cloud.auth.roles import Perm, Role
from cloud.auth.users import UserStore
from cloud.config import load_config
from cloud.runtime import Runtime

#: A value for each path parameter name the routes use; a new name fails the test until added.
PARAMS = {
    "device": "dr-cam-01",
    "node": "dr-cam-01",
    "alert_id": "1",
    "window_id": "1",
    "command_id": "0123456789abcdef",
    "rollout_id": "1",
    "token": "x" * 43,  # a one-time bundle link
}
USERS = {"ca-daron": (Role.POLICE, {"da-ron"}), "mic": (Role.MIC, set()), "kythuat": (Role.TECHNICIAN, set())}


def _demands(dep: Dependant, perm: Perm) -> bool:
    call = dep.call
    if inspect.isfunction(call) and inspect.getclosurevars(call).nonlocals.get("perm") == perm:
        return True  # the dependency require(perm) made
    return any(_demands(d, perm) for d in dep.dependencies)


def technician_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route that needs the devices permission, included
    routers' routes with the dependencies their inclusion adds."""
    out = set()
    for ctx in iter_route_contexts(app.routes):
        route = getattr(ctx, "original_route", ctx)
        if not isinstance(route, APIRoute):
            continue
        dependant = getattr(ctx, "dependant", None) or route.dependant
        if _demands(dependant, Perm.DEVICES):
            out |= {(m, str(ctx.path)) for m in (ctx.methods or ()) if m != "HEAD"}
    return sorted(out)


def _url(template: str) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[0]
        assert name in PARAMS, f"no value for path parameter {name!r} of {template}: add one to PARAMS"
        return PARAMS[name]

    return re.sub(r"\{([^}]+)\}", fill, template)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, Runtime, dict[str, str]]]:
    cfg = load_config(
        None,
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "refusals"},
        influx={"spool_dir": tmp_path / "spool"},
        sql={"url": f"sqlite:///{tmp_path / 'cloud.db'}"},
        snapshots_dir=tmp_path / "snapshots",
        web={"refusal_max_rows": 10_000},
        fleet={"signing_key_file": tmp_path / "fleet.pem"},
    )
    rt = Runtime(cfg)
    users = UserStore(rt.sql.engine)
    for name, (role, communes) in USERS.items():
        users.add(name, f"{name}-password-1", frozenset({role}), communes=frozenset(communes))
    tokens = {name: users.create_token(name, "tests") for name in USERS}
    yield create_app(rt, manage_runtime=False), rt, tokens
    rt.journal.close()
    await rt.influx.aclose()
    rt.sql.dispose()


async def _login(client: httpx.AsyncClient, user: str) -> str:
    r = await client.post("/api/v1/auth/login", json={"username": user, "password": f"{user}-password-1"})
    assert r.status_code == 200, r.text
    csrf: str = r.json()["csrf_token"]
    return csrf


async def _call(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    body: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH") and url.startswith("/api/"):
        body["json"] = {}
    elif method in ("POST", "PUT", "PATCH"):
        body["data"] = {"csrf_token": headers.get("X-CSRF-Token", "")}
    return await client.request(method, url, headers=headers, follow_redirects=False, **body)


@pytest.mark.parametrize("user", ["ca-daron", "mic"])
async def test_every_technician_page_and_api_route_refuses_police_and_mic(
    app: tuple[FastAPI, Runtime, dict[str, str]], user: str
) -> None:
    api, rt, tokens = app
    routes = technician_routes(api)
    walked = {path for _, path in routes}
    # The walk reaches the console's pages and the JSON API alike (a sanity check, not the list).
    for path in (
        "/fleet",
        "/devices/{device}",
        "/devices/{device}/masks",
        "/boards/{node}/config",
        "/alerts/{alert_id}/ack",
    ):
        assert path in walked, f"{path} not found among the technician routes: {sorted(walked)}"
    for path in (
        "/maintenance/{window_id}/end",
        "/api/v1/devices",
        "/api/v1/alerts",
        "/api/v1/fleet/nodes/{node}/config",
    ):
        assert path in walked, path
    transport = httpx.ASGITransport(app=api)
    refused: list[tuple[str, str, str, int]] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as browser:
        csrf = await _login(browser, user)
        for method, path in routes:
            r = await _call(browser, method, _url(path), {"X-CSRF-Token": csrf})
            refused.append(("cookie", method, path, r.status_code))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as script:
        for method, path in routes:
            if path.startswith("/api/"):
                r = await _call(script, method, _url(path), {"Authorization": f"Bearer {tokens[user]}"})
                refused.append(("token", method, path, r.status_code))
    wrong = [x for x in refused if x[3] != 403]
    assert not wrong, f"{user} was not refused (403) on: {wrong}"
    print(f"{user}: {len(routes)} technician routes, {len(refused)} requests, all 403")

    rt_trail = AuditTrail(rt.sql.engine)
    rows = rt_trail.entries(actor=user, action="access_denied", limit=10_000)
    audited = {(e.detail["method"], e.detail["route"]) for e in rows if e.detail.get("outcome") == "role"}
    missing = [(m, p) for m, p in routes if (m, p) not in audited]
    assert not missing, f"refusals missing from the audit trail: {missing}"


async def test_the_walk_finds_routes_a_technician_may_use(
    app: tuple[FastAPI, Runtime, dict[str, str]],
) -> None:
    """The same walk as a technician: the pages answer (no route is refused to its own role)."""
    api, _rt, _tokens = app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as browser:
        await _login(browser, "kythuat")
        for method, path in technician_routes(api):
            if method == "GET" and not path.startswith("/api/") and "{" not in path:
                r = await browser.get(path)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
