"""Keeps the Zalo OA access token valid: renewed before it expires, or when Zalo refuses it.

Zalo's OA access token lasts about 25 hours. A new pair comes only from the refresh token,
which is single-use and lasts about 3 months::

    POST {oauth_url}        header secret_key: <app secret>
    app_id=<id>&grant_type=refresh_token&refresh_token=<token>   (form-encoded)
    -> {"access_token": "...", "refresh_token": "...", "expires_in": "90000"}
    -> on refusal an error code and text, e.g. {"error": -14014, "error_description": "..."}

The pair lives in SQL (``cloud.storage.oauth_tokens``): every worker of the cloud uses the
same token, a renewal is claimed by one worker at a time, and the rotated refresh token
survives a restart. The configured refresh token is only a seed, taken once; a new one
(written after re-authorising) replaces the stored chain at the next check.

A refused refresh, or a failing one once the access token has expired, is a problem: an
error log line that says what to do, the channel's ``problem`` (readiness, metrics) and
a notice to the other channels, queued with the state change so one worker sends it.
Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any, Literal

import httpx
from sqlalchemy import Connection

from cloud.notify.base import ChannelTrouble, SendError
from cloud.notify.messages import LOCAL_TZ, channel_notice
from cloud.notify.settings import ZaloConfig
from cloud.storage.oauth_tokens import OAuthTokenStore, TokenRow

log = logging.getLogger(__name__)

#: Zalo OA API error codes meaning the access token is invalid, expired or revoked.
TOKEN_ERRORS = {-216, -220, -124}
#: ``expires_in`` when Zalo's answer has none we can read (it has said "90000", 25 h).
FALLBACK_EXPIRES_S = 3600.0


def _seconds(value: Any) -> float:
    try:
        return float(str(value))
    except ValueError:
        log.warning("Zalo's token answer has no readable expires_in (%r); assuming 1 h", str(value)[:20])
        return FALLBACK_EXPIRES_S


def _answer(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(status: int, body: dict[str, Any]) -> str:
    """Zalo's reason in a few words; never the tokens (they are not in an error answer)."""
    text = body.get("error_description") or body.get("error_name") or body.get("message") or ""
    return f"HTTP {status}, error {body.get('error')}: {str(text)[:200]}"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, LOCAL_TZ).strftime("%H:%M %d/%m")


class ZaloToken:
    def __init__(
        self,
        cfg: ZaloConfig,
        store: OAuthTokenStore,
        holder: str,
        client: httpx.AsyncClient,
        trouble: ChannelTrouble | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.store = store
        self.holder = holder
        self.client = client
        self.trouble = trouble
        #: A claim outlives the OAuth call it covers (httpx times out after timeout_s).
        self.hold_s = 2 * cfg.retry.timeout_s + 10.0
        self.problem: str | None = None
        self._row: TokenRow | None = None
        self._lock = asyncio.Lock()
        self._refused: tuple[int, float] | None = None  # (generation, monotonic time) Zalo refused
        self._inflight: asyncio.Task[TokenRow] | None = None  # a renewal, shielded from cancellation
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ for the notifier
    async def get(self) -> str:
        """An access token to send with; renewed first when it is near its end."""
        row = self._row or await self._current()
        now = time.time()
        if self._good(row, now, None):
            return row.access_token
        try:
            return (await self._renew(None)).access_token
        except SendError:
            if row.access_token and row.expires_at > now + 5.0:
                return row.access_token  # not renewed yet, still valid: use it meanwhile
            raise

    async def rejected(self, token: str) -> str:
        """Zalo refused ``token`` (expired, revoked): a new one, renewed unless another worker did."""
        return (await self._renew(token)).access_token

    def start(self) -> None:
        """Renew on time even when no alert is sent, so the refresh token never lapses."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"zalo-token-{self.name}")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight is not None and not self._inflight.done():  # store its answer before exiting
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._inflight), self.hold_s)

    # ------------------------------------------------------------------ renewal
    def _good(self, row: TokenRow, now: float, rejected: str | None) -> bool:
        if not row.access_token or row.access_token == rejected:
            return False
        margin = 60.0 if rejected is not None else self.cfg.refresh_before_s
        return row.expires_at - now > margin

    def _held_back(self, row: TokenRow) -> bool:
        """A refresh token Zalo refused is tried again only after ``check_s`` (or a new one at once)."""
        r = self._refused
        return r is not None and r[0] == row.generation and time.monotonic() - r[1] < self.cfg.check_s

    async def _current(self) -> TokenRow:
        """The stored row, after taking a refresh token newly written into the config."""
        try:
            seed = self.cfg.refresh_token_value()
        except OSError as exc:
            raise SendError(f"cannot read the Zalo refresh_token_file ({exc.strerror})") from None
        if not seed.strip():
            raise SendError("no Zalo refresh token configured (refresh_token_file is empty)")
        row = await asyncio.to_thread(self.store.seed, self.name, seed.strip())
        self._row = row
        self.problem = self._describe(row.problem, row.problem_detail)
        return row

    def _describe(self, problem: str, detail: str) -> str | None:
        if problem == "token_refused":
            return (
                f"Zalo refused the refresh token ({detail}): re-authorise the app and put the new refresh "
                f"token in {self.cfg.refresh_token_source}"
            )
        if problem:
            return f"cannot renew the Zalo access token ({detail}) and the old one has expired"
        return None

    async def _renew(self, rejected: str | None) -> TokenRow:
        """Claim and renew, or wait for the worker that does. A renewal runs as its own task: a
        sender cancelled mid-way (the dispatcher's timeout, a stop) must not lose Zalo's answer,
        which carries the only valid refresh token."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.hold_s + 5.0
            while True:
                if self._inflight is not None and not self._inflight.done():  # its caller was cancelled
                    with contextlib.suppress(SendError):
                        await asyncio.shield(self._inflight)
                row = await self._current()
                now = time.time()
                if self._good(row, now, rejected):  # renewed meanwhile (another worker, a waiter here)
                    return row
                if self._held_back(row):
                    raise SendError(self.problem or "Zalo refused the refresh token")
                if row.claimed_by not in ("", self.holder) and row.claimed_until > now:
                    if loop.time() > deadline:
                        raise SendError(f"worker {row.claimed_by} holds the Zalo token renewal too long")
                    await asyncio.sleep(0.2)  # another worker is renewing: its answer lands in the row
                    continue
                if await asyncio.to_thread(
                    self.store.claim, self.name, row.generation, self.holder, now, self.hold_s
                ):
                    self._inflight = task = asyncio.create_task(
                        self._refresh(row), name=f"zalo-renew-{self.name}"
                    )
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, logged
                    return await asyncio.shield(task)

    async def _refresh(self, row: TokenRow) -> TokenRow:
        """Spend the claimed row's refresh token; store the new pair before anything else."""
        form = {"app_id": self.cfg.app_id, "grant_type": "refresh_token", "refresh_token": row.refresh_token}
        try:
            secret = self.cfg.app_secret_value()
        except OSError as exc:
            raise await self._failed(row, None, f"cannot read app_secret_file ({exc.strerror})") from None
        try:
            resp = await self.client.post(self.cfg.oauth_url, data=form, headers={"secret_key": secret})
        except httpx.HTTPError as exc:
            raise await self._failed(row, None, f"{type(exc).__name__} from {self.cfg.oauth_url}") from None
        body = _answer(resp)
        access, refresh = body.get("access_token"), body.get("refresh_token")
        if resp.status_code != 200 or not isinstance(access, str) or not isinstance(refresh, str):
            transient = resp.status_code >= 500 or resp.status_code == 429 or not body
            raise await self._failed(
                row, None if transient else "token_refused", _refusal(resp.status_code, body)
            )
        now = time.time()
        expires_at = now + _seconds(body.get("expires_in"))
        stored = await asyncio.to_thread(
            self.store.rotated,
            self.name,
            row.generation,
            access_token=str(access),
            refresh_token=str(refresh),
            expires_at=expires_at,
            now=now,
            hook=self._announce,
        )
        if not stored:  # only if this worker's claim lapsed mid-call: its answer is lost
            log.critical(
                "notifier %s: Zalo renewed the token but the stored one changed meanwhile; if Zalo "
                "refuses the next renewal, re-authorise the app (cloud/notify/README.md)",
                self.name,
                extra={"notifier": self.name},
            )
            raise SendError("the Zalo token changed while it was being renewed; retrying")
        had_problem = self.problem is not None
        self._refused = None
        new = await self._current()
        log.info(
            "notifier %s: Zalo access token renewed, valid until %s; the new refresh token is stored",
            self.name,
            _clock(expires_at),
            extra={"notifier": self.name},
        )
        if had_problem:
            log.warning("notifier %s can send to Zalo again", self.name, extra={"notifier": self.name})
            self._wake()
        return new

    async def _failed(
        self, row: TokenRow, problem: Literal["token_refused"] | None, detail: str
    ) -> SendError:
        """Record a failed renewal and the problem it makes; the error for the caller to raise."""
        now = time.time()
        expired = not row.access_token or row.expires_at <= now
        kind = problem or ("token_unrenewed" if expired else "")
        if problem:
            self._refused = (row.generation, time.monotonic())
        await asyncio.to_thread(
            self.store.failed, self.name, self.holder, now, problem=kind, detail=detail, hook=self._announce
        )
        where = {"notifier": self.name, "problem": kind or "renewal_failed"}
        if problem:
            log.error(
                "notifier %s: Zalo refused the refresh token (%s): nothing can be sent to Zalo. To fix: "
                "re-authorise app %s for the OA in Zalo for Developers and put the new refresh token in %s",
                self.name,
                detail,
                self.cfg.app_id,
                self.cfg.refresh_token_source,
                extra=where,
            )
        elif expired:
            log.error(
                "notifier %s: cannot renew the Zalo access token (%s) and it has expired: nothing can be "
                "sent to Zalo until its OAuth service answers; retrying",
                self.name,
                detail,
                extra=where,
            )
        else:
            log.warning(
                "notifier %s: renewing the Zalo access token failed (%s); the current one lasts until %s; "
                "retrying",
                self.name,
                detail,
                _clock(row.expires_at),
                extra=where,
            )
        if kind:
            self.problem = self._describe(kind, detail)
            self._wake()
        return SendError(f"Zalo token not renewed: {detail}")

    def _announce(
        self, conn: Connection, kind: Literal["open", "resolve"], row: TokenRow, now: float
    ) -> None:
        """Inside the transaction that opened or cleared the problem: tell the other channels."""
        if self.trouble is None:
            return
        notice = channel_notice(
            kind, self.name, row.problem, row.problem_detail, row.problem_since or now, now
        )
        self.trouble.queue(conn, self.name, notice)

    def _wake(self) -> None:
        if self.trouble is not None:
            self.trouble.wake()

    # ------------------------------------------------------------------ background
    async def _run(self) -> None:
        while True:
            delay = self.cfg.check_s
            try:
                row = await self._current()
                if not self._good(row, time.time(), None) and not self._held_back(row):
                    row = await self._renew(None)
                if self._good(row, time.time(), None):  # sleep until its renewal is due
                    delay = min(delay, max(1.0, row.expires_at - self.cfg.refresh_before_s - time.time()))
            except SendError:
                delay = min(delay, 30.0)  # logged where it failed
            except Exception as exc:  # SQL briefly unavailable
                log.error(
                    "notifier %s: checking the Zalo token failed (%s: %s); again in 30 s",
                    self.name,
                    type(exc).__name__,
                    exc,
                    extra={"notifier": self.name},
                )
                delay = min(delay, 30.0)
            await asyncio.sleep(delay)
