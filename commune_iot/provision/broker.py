"""Mosquitto's password file and ACL file, kept by ``commune-iot provision``.

Passwords are stored the way ``mosquitto_passwd`` of Mosquitto 2.0 stores them
(``$7$``: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt; ``cloud.fleet.boardauth``, which
also checks them when a board downloads a release), so no mosquitto tools are needed where
boards are provisioned. The ACL file is regenerated whole from the password
file and the inventory on every change, so it never drifts from the users that exist:

* a board may publish only under its own node's topics (status, health, metrics, event,
  snapshots), so it cannot speak for another board, nor leave a retained status on one;
* a board may read only its own command topic and the cloud's presence topics;
* the cloud ingest user reads all telemetry and writes presence and commands.

Mosquitto reads both files at start and again on SIGHUP.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cloud.fleet.boardauth import hash_password
from wire.topics import HOST_STATE_FILTER, HOST_STATE_PREFIX, PREFIX, Channel

CLOUD_PREFIX = "ciot-cloud"


class BrokerFiles:
    """``passwd`` and ``acl`` in one directory (mounted into the broker)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.passwd = directory / "passwd"
        self.acl = directory / "acl"

    def users(self) -> dict[str, str]:
        if not self.passwd.exists():
            return {}
        out = {}
        for raw in self.passwd.read_text(encoding="utf-8").splitlines():
            if raw.strip() and not raw.startswith("#"):
                user, _, hashed = raw.partition(":")
                out[user] = hashed
        return out

    def set_user(self, user: str, password: str) -> None:
        users = self.users()
        users[user] = hash_password(password)
        self._write_passwd(users)

    def remove_user(self, user: str) -> bool:
        users = self.users()
        if users.pop(user, None) is None:
            return False
        self._write_passwd(users)
        return True

    def _write_passwd(self, users: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{u}:{h}\n" for u, h in sorted(users.items()))
        # group-readable: the cloud (in the broker's group) checks a board's release downloads
        # against these hashes (cloud/fleet/boardauth.py); nothing for others
        _write_private(self.passwd, body, mode=0o640)

    def write_acl(self, communes: dict[str, str]) -> None:
        """``communes``: board user (node id) -> its commune; every other user is skipped
        unless it is a cloud user (``ciot-cloud...``)."""
        lines = [
            "# Managed by `commune-iot provision`: regenerated on every change; do not edit.",
            "# Boards write only their own topics and read only their own commands.",
            "",
        ]
        for user in sorted(self.users()):
            if user.startswith(CLOUD_PREFIX):
                lines += [
                    f"user {user}",
                    f"topic read {PREFIX}/#",
                    f"topic readwrite {HOST_STATE_PREFIX}/#",
                    f"topic write {PREFIX}/+/+/{Channel.CMD.value}",
                    "",
                ]
                continue
            commune = communes.get(user)
            if commune is None:
                continue  # a user without a board in the inventory gets no topic at all
            base = f"{PREFIX}/{commune}/{user}"
            writes = [Channel.STATUS, Channel.HEALTH, Channel.METRICS, Channel.EVENT]
            lines.append(f"user {user}")
            lines += [f"topic write {base}/{ch.value}" for ch in writes]
            lines += [
                f"topic write {base}/{Channel.SNAPSHOT.value}/+",
                f"topic read {base}/{Channel.CMD.value}",
                f"topic read {HOST_STATE_FILTER}",
                "",
            ]
        _write_private(self.acl, "\n".join(lines) + "\n")


def _write_private(path: Path, body: str, mode: int = 0o600) -> None:
    """Replace a secret file atomically, readable by its owner only (the broker's user)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # O_CREAT keeps the mode of a file left over from an interrupted run
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, path)
