"""Login, logout and "who am I" for the JSON API and the web UI's scripts.

Scripts normally use an API token (``commune-iot users token NAME``) as a bearer token;
``/api/v1/auth/login`` opens a cookie session for the browser and returns its CSRF token.
Failed logins are throttled per name and per address (see ``web.login_*`` settings).
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from cloud.audit.refusals import Refusal
from cloud.auth.deps import SESSION_COOKIE, audit, client_ip, require, services
from cloud.auth.principal import Principal
from cloud.auth.roles import Perm
from cloud.auth.users import User

Caller = Annotated[Principal, Depends(require())]
UsersAdmin = Annotated[Principal, Depends(require(Perm.USERS))]


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class MeOut(BaseModel):
    username: str
    display_name: str
    roles: list[str]
    communes: list[str] | None = Field(description="Communes whose events you see; null: all.")
    permissions: list[str]
    via: str
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token on cookie-authenticated writes.")
    lang: str


def me_out(p: Principal) -> MeOut:
    scope = p.event_scope()
    return MeOut(
        username=p.username,
        display_name=p.display_name,
        roles=sorted(r.value for r in p.roles),
        communes=sorted(scope) if scope is not None else None,
        permissions=sorted(x.value for x in p.perms),
        via=p.via,
        csrf_token=p.csrf_token,
        lang=p.lang,
    )


async def checked_user(request: Request, username: str, password: str) -> User:
    """The user if not throttled and the password matches; every outcome is audited by name."""
    svc = services(request)
    ip = client_ip(request)
    wait = await asyncio.to_thread(svc.users.throttled, username, ip)
    if wait > 0:
        audit(request, None, "login_throttled", f"user:{username[:64]}", actor=username[:64])
        retry = str(int(wait) + 1)
        raise HTTPException(429, f"too many failed logins; try again in {retry} s", {"Retry-After": retry})
    user = await asyncio.to_thread(svc.users.authenticate, username, password, ip)
    if user is None:
        audit(request, None, "login_failed", f"user:{username[:64]}", actor=username[:64])
        raise HTTPException(
            401, "wrong user name or password, or the user is disabled", {"WWW-Authenticate": "Bearer"}
        )
    return user


def check_login_origin(request: Request) -> None:
    """Refuse a login posted from another site (login CSRF: a page elsewhere logging the
    victim's browser into the attacker's account). Browsers say where a request comes from
    (``Sec-Fetch-Site``, ``Origin``); a script that sends neither is not a browser."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site is not None:  # set by the browser itself, never by a page's script
        foreign = site not in ("same-origin", "none")
    elif origin is not None:  # older browsers: compare with the host the browser addressed
        host = request.headers.get("host", "")
        peer = request.client.host if request.client else ""
        if peer in services(request).cfg.web.trusted_proxies:
            host = request.headers.get("x-forwarded-host", host).split(",")[0].strip()
        foreign = origin == "null" or urlsplit(origin).netloc != host
    else:
        foreign = False
    if foreign:  # audited as a refusal: rate-limited, since anyone can send these
        services(request).refusals.record(
            Refusal(
                actor="anonymous",
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent", ""),
                method=request.method,
                route=request.url.path,
                path=request.url.path,
                target="login",
                status=403,
                outcome="cross_site",
                query={"origin": origin or "", "sec-fetch-site": site or ""},
            )
        )
        raise HTTPException(403, "a login must be sent from this site's own login page")


async def do_login(
    request: Request, response: Response, username: str, password: str
) -> tuple[User, str, str]:
    """Check the origin, throttling and credentials, open a session, set its cookie; audited."""
    svc = services(request)
    ip = client_ip(request)
    check_login_origin(request)
    user = await checked_user(request, username, password)
    cookie, csrf = await asyncio.to_thread(
        svc.users.open_session, user, ip, request.headers.get("user-agent", "")
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(svc.cfg.web.session_ttl_h * 3600),
        httponly=True,
        secure=svc.cfg.web.cookie_secure,
        samesite="lax",
        path="/",
    )
    audit(request, None, "login", f"user:{user.username}", actor=user.username, detail={"via": "session"})
    return user, cookie, csrf


async def do_logout(request: Request, response: Response, p: Principal) -> None:
    if p.session_id:
        await asyncio.to_thread(services(request).users.close_session, p.session_id)
    response.delete_cookie(SESSION_COOKIE, path="/")
    audit(request, p, "logout", f"user:{p.username}")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token stops working.")


class UserOut(BaseModel):
    username: str
    display_name: str
    roles: list[str]
    communes: list[str]
    disabled: bool
    lang: str


def session_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1/auth", tags=["auth"])

    @r.post("/login", response_model=MeOut, summary="Open a browser session (cookie)")
    async def login(request: Request, response: Response, body: LoginIn) -> MeOut:
        _user, cookie, _csrf = await do_login(request, response, body.username, body.password)
        p = services(request).users.session_principal(cookie)
        assert p is not None
        return me_out(p)

    @r.post("/token", response_model=TokenOut, summary="OAuth2 password flow: a bearer token for scripts")
    async def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
        """Trades a user name and password for an API token that lasts one session length
        (``web.session_ttl_h``); throttled and audited like a login."""
        svc = services(request)
        user = await checked_user(request, form.username, form.password)
        ttl = int(svc.cfg.web.session_ttl_h * 3600)
        value = await asyncio.to_thread(svc.users.create_token, user.username, "oauth2-password", ttl)
        audit(request, None, "login", f"user:{user.username}", actor=user.username, detail={"via": "token"})
        return TokenOut(access_token=value, expires_in=ttl)

    @r.post("/logout", status_code=204, summary="End this session")
    async def logout(request: Request, response: Response, p: Caller) -> Response:
        await do_logout(request, response, p)
        response.status_code = 204
        return response

    @r.get("/me", response_model=MeOut, summary="Who you are and what you may do")
    async def me(p: Caller) -> MeOut:
        return me_out(p)

    @r.get(
        "/users",
        response_model=list[UserOut],
        summary="All users (admins; manage them with commune-iot users)",
    )
    async def list_users(request: Request, _p: UsersAdmin) -> list[UserOut]:
        rows = await asyncio.to_thread(services(request).users.all)
        return [
            UserOut(
                username=u.username,
                display_name=u.display_name,
                roles=sorted(u.roles),
                communes=sorted(u.communes),
                disabled=u.disabled,
                lang=u.lang,
            )
            for u in rows
        ]

    return r
