"""Request size limits and validation replies that never echo what was sent.

:class:`BodyLimit` wraps the app before routing: a declared ``Content-Length`` over
the limit is answered 413 before routing, authentication or reading a byte of the body;
a body without one (chunked) is counted as it arrives and cut off at the limit. The
login and token routes, open to anyone, get a much smaller limit. So one anonymous
50 MB request costs the process nothing, where it used to be parsed whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Paths anyone may post to: the web login form and the API's login and token routes.
AUTH_PATHS = frozenset({"/login", "/api/v1/auth/login", "/api/v1/auth/token"})


class _TooLarge(HTTPException):
    """Raised while a body is read; an HTTPException, so the app's error pages answer it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, max_auth_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_auth_bytes = max_auth_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_auth_bytes if scope["path"] in AUTH_PATHS else self.max_bytes
        declared = _content_length(scope["headers"])
        if declared is not None and declared > limit:
            await _reply_413(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await _reply_413(send, limit)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for k, v in headers:
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _reply_413(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 with where and what is wrong, without the ``input`` (a reply must not carry back
    whatever was sent, e.g. a megabyte of it) and without pydantic's ``ctx`` objects."""
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = [
        {"type": e.get("type", ""), "loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:300]}
        for e in exc.errors()[:20]
    ]
    return JSONResponse({"detail": errors}, status_code=422)
