"""A local stand-in for Zalo's OA API and its OAuth v4 token endpoint.

Zalo cannot be reached from here (and a test must not need the internet), so this real
HTTP server on loopback plays both services the way Zalo documents them: refresh tokens
are single-use (spending one twice is refused, as Zalo refuses it), each refresh issues
a new access and refresh token with ``expires_in`` as a string, and an access token stops
working after ``budget`` messages with Zalo's "expired" error (-220), standing in for the
25 hours a real one lasts. It records every call, so a test can check the refresh chain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from local_http import LocalHttp, Request, local_http

APP_ID = "4321098765432109876"
APP_SECRET = "app-secret-kept-out-of-logs"
OAUTH_PATH = "/v4/oa/access_token"
CS_PATH = "/v3.0/oa/message/cs"


@dataclass
class ZaloStandIn:
    budget: int = 3  # messages an access token carries before Zalo calls it expired
    expires_in: str = "90000"
    oauth_delay_s: float = 0.0  # a slow OAuth answer widens the window two workers could race in
    refuse_refresh: bool = False  # Zalo refuses every refresh (the app's permission revoked)
    silent_followers: set[str] = field(default_factory=set)  # no message to the OA for 7 days
    server: LocalHttp | None = None
    valid_refresh: set[str] = field(default_factory=set)
    remaining: dict[str, int] = field(default_factory=dict)  # access token -> messages left
    refreshes: list[tuple[str, bool]] = field(default_factory=list)  # (refresh token used, accepted)
    issued: list[str] = field(default_factory=list)  # refresh tokens issued, in order
    delivered: list[tuple[str, str, str]] = field(default_factory=list)  # (user, access token, text)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _n: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def authorise(self) -> str:
        """The OA admin authorises the app: a fresh refresh token, as the console hands out."""
        with self._lock:
            self._n += 1
            token = f"rt-auth-{self._n}"
            self.valid_refresh.add(token)
            return token

    def expire(self, access_token: str) -> None:
        with self._lock:
            self.remaining[access_token] = 0

    def secrets(self) -> set[str]:
        """Everything that must never reach a log."""
        with self._lock:
            return {APP_SECRET, *self.issued, *self.remaining, *(t for t, _ in self.refreshes)}

    def respond(self, req: Request, _index: int) -> tuple[int, dict[str, Any]]:
        if req.path == OAUTH_PATH:
            answer = self._oauth(req)
        elif req.path == CS_PATH:
            answer = self._message(req)
        else:
            answer = 404, {"error": -1, "message": "unknown path"}
        assert self.server is not None
        with self.server.arrived:  # wake ``wait``: the state changed
            self.server.arrived.notify_all()
        return answer

    def _oauth(self, req: Request) -> tuple[int, dict[str, Any]]:
        if self.oauth_delay_s:
            time.sleep(self.oauth_delay_s)  # the stand-in's own latency, in its server thread
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if req.headers.get("secret_key") != APP_SECRET or form.get("app_id") != APP_ID:
            return 200, {
                "error": -14002,
                "error_name": "Invalid parameter",
                "error_description": "Invalid app",
            }
        if form.get("grant_type") != "refresh_token":
            return 200, {"error": -14003, "error_description": "Invalid grant_type"}
        token = form.get("refresh_token", "")
        with self._lock:
            ok = token in self.valid_refresh and not self.refuse_refresh
            self.refreshes.append((token, ok))
            if not ok:
                return 200, {
                    "error": -14014,
                    "error_name": "Invalid parameter",
                    "error_description": "Invalid refresh token",
                }
            self.valid_refresh.discard(token)  # single-use
            self._n += 1
            access, refresh = f"at-{self._n}", f"rt-{self._n}"
            self.remaining[access] = self.budget
            self.valid_refresh.add(refresh)
            self.issued.append(refresh)
        return 200, {"access_token": access, "refresh_token": refresh, "expires_in": self.expires_in}

    def _message(self, req: Request) -> tuple[int, dict[str, Any]]:
        token = req.headers.get("access_token", "")
        body = req.json()
        with self._lock:
            left = self.remaining.get(token)
            if left is None:
                return 200, {"error": -216, "message": "Access token is invalid"}
            if left <= 0:
                return 200, {"error": -220, "message": "access_token is expired or removed"}
            if body["recipient"]["user_id"] in self.silent_followers:
                return 200, {
                    "error": -230,
                    "message": "User has not interacted with the OA in the past 7 days",
                }
            self.remaining[token] = left - 1
            self.delivered.append((body["recipient"]["user_id"], token, body["message"]["text"]))
            n = len(self.delivered)
        return 200, {"error": 0, "message": "Success", "data": {"message_id": f"m{n}"}}

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        """Until ``predicate(self)`` holds: woken by each request the server records."""
        assert self.server is not None
        deadline = time.monotonic() + timeout
        with self.server.arrived:
            while not predicate(self):
                left = deadline - time.monotonic()
                assert left > 0, f"Zalo stand-in: no {what} within {timeout:.0f} s"
                self.server.arrived.wait(left)


@contextmanager
def zalo_standin(**kwargs: Any) -> Iterator[ZaloStandIn]:
    zalo = ZaloStandIn(**kwargs)
    with local_http(zalo.respond) as server:
        zalo.server = server
        yield zalo
