"""HTTP errors a person may read: English for the JSON API, Vietnamese on the web pages.

An :class:`Problem` is an ``HTTPException`` whose ``detail`` is the English text the API
answers with (``{"detail": "..."}``, unchanged for scripts), carrying the Vietnamese text
the web UI's error page shows instead. Raise it wherever a page can meet the error; a
plain ``HTTPException`` on a Vietnamese page shows only the status in Vietnamese (its
English detail is never put in front of a Vietnamese reader).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException


class Problem(HTTPException):
    def __init__(self, status_code: int, en: str, vi: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code, en, headers)
        self.vi = vi

    def text(self, lang: str) -> str:
        return self.vi if lang == "vi" else str(self.detail)
