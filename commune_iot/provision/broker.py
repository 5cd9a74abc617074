"""Mosquitto's password file and ACL file, kept by ``commune-iot provision``.

Passwords are stored the way ``mosquitto_passwd`` of Mosquitto 2.0 stores them
(``$7$``: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt; ``cloud.fleet.boardauth``, which
also checks them when a board downloads a release), so no mosquitto tools are needed where
boards are provisioned. The ACL file is regenerated whole from the password
file and the inventory on every change, so it never drifts from the users that exist:

* a board may publish only under its own node's topics (status, health, metrics, event,
  snapshots, and its configuration reports and command replies), so it cannot speak for
  another board, nor leave a retained status on one, nor set a configuration or a command;
* a board may read only its own desired configuration and commands, and the cloud's
  presence topics;
* the cloud user reads everything under ``ciot/v1`` and alone writes presence, desired
  configurations and commands.

A board user that the inventory given to a change does not list keeps the commune the ACL
already gave it (the cloud's SQL inventory may know boards a YAML file does not): only a
revocation takes a board's topics away.

Mosquitto reads both files at start and again on SIGHUP, as its own user: ``files`` replaces
them keeping who may read them. At a SIGHUP Mosquitto 2.0 also checks every connected client
against the new password file and disconnects those no longer in it (measured with 2.0.11), so
a revoked board is dropped at the reload, not at its next reconnect.

``add_board``, ``revoke_board`` and ``add_cloud_user`` do the whole job (both files, then the
reload) for the command line and for anything else that provisions, such as the cloud.
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from cloud.fleet.boardauth import hash_password
from commune_iot.provision import files
from commune_iot.provision.files import ProvisionError
from wire.topics import HOST_STATE_FILTER, HOST_STATE_PREFIX, PREFIX, Channel, beat_topic

CLOUD_PREFIX = "ciot-cloud"


class BrokerFiles:
    """``passwd`` and ``acl`` in one directory (mounted into the broker)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.passwd = directory / "passwd"
        self.acl = directory / "acl"

    def users(self) -> dict[str, str]:
        out = {}
        for raw in (files.read_text(self.passwd) or "").splitlines():
            if raw.strip() and not raw.startswith("#"):
                user, _, hashed = raw.partition(":")
                out[user] = hashed
        return out

    def change(
        self,
        communes: Mapping[str, str],
        *,
        passwords: Mapping[str, str] | None = None,
        remove: Collection[str] = (),
    ) -> list[str]:
        """Give users new ``passwords``, ``remove`` others and regenerate the ACL: both files
        are replaced together or not at all. Returns the users that were removed.

        ``communes``: board user (node id) -> its commune (see ``acl_text``).
        """
        if not passwords and not self.dir.is_dir():
            return []
        self.dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        with files.locked(self.dir):
            users = self.users()
            removed = [u for u in remove if users.pop(u, None) is not None]
            if not removed and not passwords:
                return []
            users |= {u: hash_password(p) for u, p in (passwords or {}).items()}
            passwd = "".join(f"{u}:{h}\n" for u, h in sorted(users.items()))
            acl = acl_text(users, acl_communes(files.read_text(self.acl) or "") | dict(communes))
            files.replace(self.dir, {self.passwd.name: passwd.encode(), self.acl.name: acl.encode()})
        return removed


def acl_communes(acl: str) -> dict[str, str]:
    """Board user -> commune, as an ACL made by ``acl_text`` grants them."""
    found = re.findall(
        rf"^topic write {re.escape(PREFIX)}/([^/\s]+)/([^/\s]+)/{Channel.STATUS.value}$", acl, flags=re.M
    )
    return {user: commune for commune, user in found}


def acl_text(users: Collection[str], communes: Mapping[str, str]) -> str:
    """The ACL for ``users``: a board (a user in ``communes``) gets its own topics, a cloud
    user (``ciot-cloud...``) the cloud's, any other user nothing at all."""
    lines = [
        "# Managed by `commune-iot provision`: regenerated on every change; do not edit.",
        "# Boards write only their own topics and read only their own configuration and commands.",
        "",
    ]
    for user in sorted(users):
        if user.startswith(CLOUD_PREFIX):
            lines += [
                f"user {user}",
                f"topic read {PREFIX}/#",
                f"topic readwrite {HOST_STATE_PREFIX}/#",
                f"topic write {PREFIX}/+/+/{Channel.CONFIG.value}",
                f"topic write {PREFIX}/+/+/{Channel.CMD.value}",
                "",
            ]
            continue
        commune = communes.get(user)
        if commune is None:
            continue  # a user without a board in the inventory gets no topic at all
        base = f"{PREFIX}/{commune}/{user}"
        writes = [
            Channel.STATUS,
            Channel.HEALTH,
            Channel.METRICS,
            Channel.EVENT,
            Channel.REPORTED,
            Channel.REPLY,
        ]
        lines.append(f"user {user}")
        lines += [f"topic write {base}/{ch.value}" for ch in writes]
        lines += [
            f"topic write {base}/{Channel.SNAPSHOT.value}/+",
            f"topic write {beat_topic(user)}",  # its keepalive beats (edge/keepalive.py)
            f"topic read {base}/{Channel.CONFIG.value}",
            f"topic read {base}/{Channel.CMD.value}",
            f"topic read {HOST_STATE_FILTER}",
            "",
        ]
    return "\n".join(lines) + "\n"


#: Makes the running broker read its files again (SIGHUP); raises ProvisionError when it cannot.
Reload = Callable[[], None]


def command_reload(command: str) -> Reload:
    """A reload that runs ``command`` (no shell), e.g. ``docker compose kill -s HUP mosquitto``."""

    def reload() -> None:
        argv = shlex.split(command)
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
        else:
            if res.returncode == 0:
                return
            why = f"exit {res.returncode}: {(res.stderr or res.stdout).strip()[-300:]}"
        raise ProvisionError(f"the broker files are updated but `{command}` failed ({why}): reload by hand")

    return reload


def new_password() -> str:
    return secrets.token_urlsafe(24)


def add_board(
    broker_dir: Path, node: str, password: str, communes: Mapping[str, str], reload: Reload | None = None
) -> None:
    """Give board ``node`` the ``password`` (from ``new_password``; the one it had stops
    working at the reload) and its topics. The caller keeps the password for the board's
    bundle, so a failed reload loses nothing: the files are right, reload again."""
    if node not in communes:
        raise ProvisionError(f"{node!r} is not a board of the inventory: it would get no topic")
    _set_password(broker_dir, node, password, communes, reload)


def revoke_board(
    broker_dir: Path, node: str, communes: Mapping[str, str], reload: Reload | None = None
) -> bool:
    """Remove ``node``'s credentials; at the reload the broker drops it if connected. False
    when it had none (nothing changed, no reload)."""
    if not BrokerFiles(broker_dir).change(communes, remove=[node]):
        return False
    if reload is not None:
        reload()
    return True


def add_cloud_user(
    broker_dir: Path, name: str, password: str, communes: Mapping[str, str], reload: Reload | None = None
) -> None:
    """Give a cloud ingest worker's user (``ciot-cloud...``) the ``password``."""
    if not name.startswith(CLOUD_PREFIX):
        raise ProvisionError(f"cloud users are named {CLOUD_PREFIX}..., not {name!r}")
    _set_password(broker_dir, name, password, communes, reload)


def _set_password(
    broker_dir: Path, user: str, password: str, communes: Mapping[str, str], reload: Reload | None
) -> None:
    BrokerFiles(broker_dir).change(communes, passwords={user: password})
    if reload is not None:
        reload()
