"""A thin async client for the InfluxDB 1.x HTTP API: /ping, /write, /query, Basic auth.

It classifies outcomes instead of raising on every non-2xx, because ingest must treat
them differently: bad data (400) is dropped and counted, the database missing (404) is
created, and a server that is down, overloaded or refusing our credentials keeps the
lines in the spool and is retried.
"""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx


class InfluxError(RuntimeError):
    """A query failed; the text has InfluxDB's own message."""


class WriteOutcome(enum.Enum):
    OK = "ok"
    BAD_DATA = "bad_data"  # 400: some or all lines rejected; retrying cannot help
    NO_DATABASE = "no_database"  # 404 database not found
    TOO_LARGE = "too_large"  # 413: split the batch
    RETRY = "retry"  # 5xx, 401/403, timeout, connection refused: keep and retry


@dataclass(frozen=True, slots=True)
class WriteResult:
    outcome: WriteOutcome
    status: int | None  # HTTP status, None when there was no response
    error: str  # InfluxDB's error text or the connection problem, one line
    dropped: int  # lines InfluxDB reported dropped (partial write), 0 if unknown
    seconds: float


_DROPPED = re.compile(r"dropped=(\d+)")


def describe(exc: Exception) -> str:
    """Short reason for a transport failure, e.g. ``connection refused``."""
    text = str(exc) or type(exc).__name__
    cause: BaseException | None = exc
    while cause is not None:  # httpx says "All connection attempts failed"; the OSError says why
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    return text.splitlines()[0][:200]


class InfluxClient:
    def __init__(self, url: str, *, username: str = "", password: str = "", timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        auth = httpx.BasicAuth(username, password) if username else None
        self._http = httpx.AsyncClient(base_url=self.url, auth=auth, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> InfluxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ping(self, timeout_s: float = 2.0) -> str | None:
        """None when InfluxDB answers, else why not (for /readyz)."""
        try:
            r = await self._http.get("/ping", timeout=timeout_s)
        except httpx.HTTPError as exc:
            return describe(exc)
        return None if r.status_code == 204 else f"HTTP {r.status_code} on /ping"

    async def write(self, db: str, body: bytes, *, precision: str = "ms", rp: str = "") -> WriteResult:
        """Write line protocol into ``db`` (its default retention policy, or ``rp``)."""
        t0 = time.perf_counter()
        params = {"db": db, "precision": precision, **({"rp": rp} if rp else {})}
        try:
            r = await self._http.post("/write", params=params, content=body)
        except httpx.HTTPError as exc:
            return WriteResult(WriteOutcome.RETRY, None, describe(exc), 0, time.perf_counter() - t0)
        dt = time.perf_counter() - t0
        if r.status_code == 204:
            return WriteResult(WriteOutcome.OK, 204, "", 0, dt)
        error = _error_text(r)
        if r.status_code == 400:
            m = _DROPPED.search(error)
            return WriteResult(WriteOutcome.BAD_DATA, 400, error, int(m.group(1)) if m else 0, dt)
        if r.status_code == 404 and "database not found" in error:
            return WriteResult(WriteOutcome.NO_DATABASE, 404, error, 0, dt)
        if r.status_code == 413:
            return WriteResult(WriteOutcome.TOO_LARGE, 413, error, 0, dt)
        return WriteResult(WriteOutcome.RETRY, r.status_code, error, 0, dt)

    async def query(self, q: str, *, db: str = "", epoch: str = "ms") -> list[dict[str, Any]]:
        """Run InfluxQL (POST, so DDL works) and return the first statement's ``series``."""
        data = {"q": q, "epoch": epoch}
        if db:
            data["db"] = db
        try:
            r = await self._http.post("/query", data=data)
        except httpx.HTTPError as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable ({describe(exc)})") from None
        if r.status_code != 200:
            raise InfluxError(f"InfluxDB query failed: HTTP {r.status_code}: {_error_text(r)}")
        result = r.json()["results"][0]
        if "error" in result:
            raise InfluxError(f"InfluxQL error: {result['error']}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    async def create_database(self, db: str) -> None:
        """Idempotent in InfluxDB 1.x (no error when it exists)."""
        await self.query(f'CREATE DATABASE "{_ident(db)}"')


def _ident(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _error_text(r: httpx.Response) -> str:
    try:
        body = r.json()
        text = str(body.get("error", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        text = r.text
    return " ".join(text.split())[:500] or f"HTTP {r.status_code}"
