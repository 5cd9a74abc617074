"""The audit trail as a person reads it: an entry's detail JSON as one line of text."""

from __future__ import annotations

from typing import Any

from cloud.web.i18n import Translator

_MAX_ITEMS = 12
_MAX_CHARS = 400


def _value(v: Any, t: Translator) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x, t)}" for k, x in v.items() if x not in (None, ""))
    if isinstance(v, list):
        more = f" … (+{len(v) - _MAX_ITEMS})" if len(v) > _MAX_ITEMS else ""
        return ", ".join(_value(x, t) for x in v[:_MAX_ITEMS]) + more
    if isinstance(v, bool):
        return t("yes") if v else t("no")
    if isinstance(v, str):
        return t.optional(f"outcome_{v}", v)
    return str(v)


def describe(detail: dict[str, Any], t: Translator) -> str:
    """``key: value; ...`` with keys and known values in the page's language, cut to 400 characters."""
    parts = [
        f"{t.optional(f'dk_{k}', k)}: {_value(v, t)}"
        for k, v in detail.items()
        if v not in (None, "", [], {}) and k != "via"
    ]
    text = "; ".join(parts)
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "…"
