"""FastAPI dependencies: who is calling, may they, and is a form post really theirs.

Two ways in: a session cookie (the web UI) or ``Authorization: Bearer <API token>``
(scripts). Cookie-authenticated writes must carry the session's CSRF token (header
``X-CSRF-Token`` or form field ``csrf_token``); bearer calls need none because a browser
never adds that header on its own. Pages answer an anonymous caller with a redirect to
the login page, the JSON API with 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer

from cloud.audit.refusals import Refusal
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm, roles_with

if TYPE_CHECKING:
    from cloud.web.services import WebServices

SESSION_COOKIE = "ciot_session"
#: Declares bearer auth in the OpenAPI schema (the docs' "Authorize" button uses the token
#: endpoint); the header itself is read in :func:`optional_principal`.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What an anonymous caller of the JSON API (often a browser on a URL from the docs) needs to know.
NOT_LOGGED_IN = (
    "not logged in: log in at /login (this browser then sends its session cookie) or send "
    "'Authorization: Bearer <API token>' (commune-iot users token NAME)"
)


class LoginRequired(Exception):
    """Raised for anonymous page requests; the app turns it into a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def services(request: Request) -> WebServices:
    svc: WebServices = request.app.state.web
    return svc


def client_ip(request: Request) -> str:
    """The caller's address; X-Forwarded-For only from a configured trusted proxy."""
    peer = request.client.host if request.client else ""
    if peer in services(request).cfg.web.trusted_proxies:
        fwd = request.headers.get("x-forwarded-for", "")
        if fwd:
            return fwd.split(",")[-1].strip()[:64]
    return peer


def _is_page(request: Request) -> bool:
    """A page (anonymous: redirect to the login) rather than a machine route (anonymous: 401)."""
    path = request.url.path
    return not path.startswith("/api/") and path not in ("/metrics", "/openapi.json")


async def optional_principal(request: Request) -> Principal | None:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    svc = services(request)
    auth = request.headers.get("authorization", "")
    principal: Principal | None = None
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "use Authorization: Bearer <API token>", {"WWW-Authenticate": "Bearer"})
        principal = svc.users.token_principal(token.strip())
        if principal is None:
            raise HTTPException(401, "invalid, expired or revoked API token", {"WWW-Authenticate": "Bearer"})
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = svc.users.session_principal(cookie)
    request.state.principal = principal
    return principal


async def _check_csrf(request: Request, p: Principal) -> None:
    if p.via != "session" or request.method not in UNSAFE:
        return
    sent = request.headers.get("x-csrf-token", "")
    if not sent and "form" in request.headers.get("content-type", ""):
        form = await request.form()  # starlette caches it for the route's own Form() params
        value = form.get("csrf_token", "")
        sent = value if isinstance(value, str) else ""
    if not p.csrf_token or not hmac.compare_digest(sent, p.csrf_token):
        request.state.refusal_outcome = "csrf"
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")


def require(perm: Perm | None = None) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, logged in (and holding ``perm`` when given)."""

    async def dep(request: Request, _bearer: str | None = Depends(oauth2_scheme)) -> Principal:
        p = await optional_principal(request)
        if p is None:
            if _is_page(request):
                raise LoginRequired(
                    str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
                )
            raise HTTPException(401, NOT_LOGGED_IN, {"WWW-Authenticate": "Bearer"})
        await _check_csrf(request, p)
        if perm is not None and not p.can(perm):
            request.state.refusal_outcome = "role"
            who = " or ".join(r.value for r in roles_with(perm))
            raise HTTPException(403, f"your role does not allow this ({perm.value}: {who} only)")
        return p

    return dep


def audit(
    request: Request,
    p: Principal | None,
    action: str,
    target: str = "",
    *,
    commune: str = "",
    detail: dict[str, object] | None = None,
    actor: str | None = None,
) -> None:
    """Record one action in the audit trail with who and from where."""
    services(request).audit.record(
        actor or (p.username if p else "anonymous"),
        action,
        target,
        commune=commune,
        detail=({"via": p.via} if p else {}) | (detail or {}),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )


def note_refusal(request: Request, target: str, owner_commune: str | None) -> None:
    """Before a 404 on a protected object: which object, and whether it exists in a commune
    the caller may not see (``out_of_scope``) or not at all (``missing``), for the audit."""
    request.state.refusal_target = target
    request.state.refusal_commune = owner_commune or ""
    request.state.refusal_outcome = "out_of_scope" if owner_commune else "missing"


def audit_refusal(request: Request, status: int) -> None:
    """A 403, or a 404 of a route, answered to a logged-in caller goes to the audit trail
    (rate-limited: see :mod:`cloud.audit.refusals`). Unknown paths and anonymous callers do not."""
    p: Principal | None = getattr(request.state, "principal", None)
    route = request.scope.get("route")
    if p is None or status not in (403, 404) or not isinstance(route, APIRoute):
        return
    st = request.state
    params = request.path_params
    target = getattr(st, "refusal_target", "") or (
        ",".join(f"{k}={v}" for k, v in sorted(params.items()))[:128] if params else route.path
    )
    services(request).refusals.record(
        Refusal(
            actor=p.username,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
            method=request.method,
            route=route.path,
            path=request.url.path,
            target=target,
            status=status,
            outcome=getattr(st, "refusal_outcome", "") or ("forbidden" if status == 403 else "not_found"),
            commune=getattr(st, "refusal_commune", ""),
            query=dict(request.query_params),
        )
    )
