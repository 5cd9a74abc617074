"""Boards authenticate over HTTPS with their broker credentials (HTTP Basic).

A board already holds one secret, its MQTT password, written by ``commune-iot provision``
next to a PBKDF2 hash in the broker's password file. Checking the same hash here means no
second secret to issue, store or rotate, and one revocation (``provision --revoke``)
locks a stolen board out of the broker and the release downloads at once. Only users the
inventory knows as boards pass; cloud users (``ciot-cloud...``) do not.

Hashes are those of Mosquitto 2.0's ``mosquitto_passwd`` (``$7$``: PBKDF2-HMAC-SHA512,
101 iterations, 12-byte salt); ``commune-iot provision`` writes them with ``hash_password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Container
from pathlib import Path

log = logging.getLogger(__name__)

ITERATIONS = 101


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(stored: str, password: str) -> bool:
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7":
            return False
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(base64.b64encode(got).decode(), digest)


class BoardAuth:
    """Checks a board's username and password against the broker's password file (re-read
    when it changes, so a revocation counts at once, broker reload or not)."""

    def __init__(self, passwd_file: Path | None, boards: Container[str]) -> None:
        self.passwd_file = passwd_file
        self.boards = boards
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        return self.passwd_file is not None

    def _load(self) -> dict[str, str]:
        assert self.passwd_file is not None
        try:
            st = self.passwd_file.stat()
        except OSError as exc:
            log.error("board password file %s unreadable: %s", self.passwd_file, exc.strerror)
            return {}
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != self._stamp:
            users = {}
            for raw in self.passwd_file.read_text(encoding="utf-8").splitlines():
                user, sep, hashed = raw.partition(":")
                if sep and user and not user.startswith("#"):
                    users[user] = hashed
            self._users, self._stamp = users, stamp
        return self._users

    def check(self, username: str, password: str) -> bool:
        if self.passwd_file is None or username not in self.boards:
            return False
        stored = self._load().get(username)
        return stored is not None and check_password(stored, password)
