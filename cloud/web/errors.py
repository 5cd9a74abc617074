"""Error pages of the web UI: the status and what went wrong, in the reader's language.

The JSON API keeps FastAPI's replies (English ``detail``); a page gets this HTML instead.
A Vietnamese page never shows an English sentence: a :class:`cloud.httperrors.Problem`
brings its Vietnamese text, an invalid query or form field is described field by field
from pydantic's error type, and any other error shows only its status, in Vietnamese.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.auth.deps import optional_principal
from cloud.auth.principal import Principal
from cloud.httperrors import Problem
from cloud.web.i18n import Translator
from cloud.web.pages import lang_of, render

#: pydantic error type -> message key (``verr_*`` in cloud/web/i18n.py).
_KINDS = {
    "date_parsing": "date",
    "date_from_datetime_parsing": "date",
    "date_from_datetime_inexact": "date",
    "date_type": "date",
    "int_parsing": "int",
    "int_from_float": "int",
    "int_type": "int",
    "float_parsing": "number",
    "float_type": "number",
    "bool_parsing": "bool",
    "literal_error": "choice",
    "enum": "choice",
    "missing": "missing",
    "greater_than_equal": "ge",
    "greater_than": "gt",
    "less_than_equal": "le",
    "less_than": "lt",
    "string_too_long": "too_long",
    "string_too_short": "too_short",
}


def describe_validation(errors: Sequence[dict[str, Any]], t: Translator) -> list[str]:
    """One line per invalid field: its label in the page's language, then what is wrong."""
    lines = []
    for e in errors[:10]:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body", "form", "header")]
        name = loc[-1] if loc else ""
        field = t.optional(f"field_{name}", name)
        ctx = e.get("ctx") or {}
        kind = _KINDS.get(str(e.get("type", "")), "invalid")
        limit = next((ctx[k] for k in ("ge", "gt", "le", "lt", "max_length", "min_length") if k in ctx), "")
        expected = str(ctx.get("expected", "")).replace(" or ", f" {t('or')} ")
        what = t(f"verr_{kind}", limit=limit, expected=expected)
        lines.append(f"{field}: {what}" if field else what)
    return lines


async def _principal(request: Request) -> Principal | None:
    try:
        return await optional_principal(request)
    except HTTPException:  # a bad token: the page is shown as to anyone
        return None


async def html_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
    p = await _principal(request)
    t = Translator(lang_of(request, p))
    message = ""  # a Vietnamese page shows no English detail: only the status, in Vietnamese
    if isinstance(exc, Problem):
        message = exc.text(t.lang)
    elif t.lang == "en":
        message = str(exc.detail)
    return _page(request, p, exc.status_code, t, message, [])


async def html_validation_error(request: Request, exc: RequestValidationError) -> HTMLResponse:
    p = await _principal(request)
    t = Translator(lang_of(request, p))
    return _page(request, p, 422, t, t("verr_intro"), describe_validation(exc.errors(), t))


def _page(
    request: Request, p: Principal | None, status: int, t: Translator, message: str, lines: list[str]
) -> HTMLResponse:
    title = t.optional(f"status_{status}", t("status_other", code=status))
    message = message or t.optional(f"explain_{status}", "")
    return render(
        request,
        "error.html",
        p,
        status=status,
        status_code=status,
        title=title,
        message=message,
        lines=lines,
    )
