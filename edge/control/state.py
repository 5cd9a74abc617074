"""What a board remembers of its control plane, across restarts and power cuts.

One small SQLite file beside the outbox (``control.sqlite3``, synchronous=FULL): the
configuration versions it tried, runs and last found good (with their documents, secrets
still sealed), and every command id it took, so that an id is run once, ever, even when
the cloud sends it again after a reconnect or an attacker replays it. The board's X25519
key (what the cloud seals secrets to) is a file of its own, readable by the agent only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wire import crypto

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

#: Command ids are remembered this long after their expiry (a command past its expiry is
#: refused anyway); the table is bounded by count too.
FORGET_AFTER_S = 30 * 86400
MAX_COMMANDS = 100_000


@dataclass
class TwinState:
    """The board's side of the device twin. Version 0 is the local file alone."""

    #: Highest desired version the board has answered (applied, rejected or reverted).
    tried: int = 0
    #: The version running now and its document (secrets sealed or ``REDACTED``).
    running: int = 0
    running_doc: dict[str, Any] | None = None
    #: The running version passed its checks (or needed none).
    good: bool = True
    #: The last known good version and its document.
    lkg: int = 0
    lkg_doc: dict[str, Any] | None = None
    #: When the running version began its trial (wall clock), if it is on trial.
    trial_since: float | None = None
    #: The last report's state and error, repeated at start-up.
    state: str = "applied"
    version: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: str
    name: str
    state: str
    received_at: float
    expires_at: float
    args: dict[str, Any]
    #: What the process that deferred the command left for the one that finishes it.
    handover: dict[str, Any] | None = None


class ControlState:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.db = sqlite3.connect(directory / "control.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS twin (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS commands (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "state TEXT NOT NULL, received_at REAL NOT NULL, expires_at REAL NOT NULL, "
            "args TEXT NOT NULL DEFAULT '{}', finished_at REAL, handover TEXT)"
        )
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(commands)")}
        if "handover" not in columns:  # a board upgraded from an agent without it
            self.db.execute("ALTER TABLE commands ADD COLUMN handover TEXT")

    def close(self) -> None:
        self.db.close()

    # -- twin ----------------------------------------------------------------------------------

    def twin(self) -> TwinState:
        row = self.db.execute("SELECT doc FROM twin WHERE id = 1").fetchone()
        if row is None:
            return TwinState()
        doc = json.loads(row[0])
        known = {k: v for k, v in doc.items() if k in TwinState.__dataclass_fields__}
        return TwinState(**known)

    def save_twin(self, st: TwinState) -> None:
        doc = json.dumps(st.__dict__, separators=(",", ":"))
        self.db.execute("INSERT OR REPLACE INTO twin (id, doc) VALUES (1, ?)", (doc,))

    # -- commands ------------------------------------------------------------------------------

    def command(self, command_id: str) -> CommandRecord | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM commands WHERE id = ?", (command_id,)).fetchone()
        return _record(row) if row else None

    def take(self, command_id: str, name: str, expires_at: float, args: dict[str, Any]) -> bool:
        """Remember a command id; False when it was taken before (then it must not run)."""
        now = time.time()
        cur = self.db.execute(
            "INSERT OR IGNORE INTO commands (id, name, state, received_at, expires_at, args) "
            "VALUES (?, ?, 'accepted', ?, ?, ?)",
            (command_id, name, now, expires_at, json.dumps(args)),
        )
        if cur.rowcount:
            self._forget(now)
        return bool(cur.rowcount)

    def set_state(self, command_id: str, state: str, *, final: bool = False) -> None:
        self.db.execute(
            "UPDATE commands SET state = ?, finished_at = ? WHERE id = ?",
            (state, time.time() if final else None, command_id),
        )

    def defer(self, command_id: str, handover: dict[str, Any] | None) -> None:
        """The command continues in the next agent process, which gets ``handover``."""
        self.db.execute(
            "UPDATE commands SET state = 'running', finished_at = NULL, handover = ? WHERE id = ?",
            (json.dumps(handover) if handover is not None else None, command_id),
        )

    def unfinished(self) -> list[CommandRecord]:
        """Commands a previous agent process accepted and did not finish (a restart, an update)."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM commands WHERE finished_at IS NULL ORDER BY received_at"
        ).fetchall()
        return [_record(r) for r in rows]

    def _forget(self, now: float) -> None:
        self.db.execute("DELETE FROM commands WHERE expires_at < ?", (now - FORGET_AFTER_S,))
        self.db.execute(
            "DELETE FROM commands WHERE id IN (SELECT id FROM commands ORDER BY received_at DESC "
            "LIMIT -1 OFFSET ?)",
            (MAX_COMMANDS,),
        )


_COLUMNS = "id, name, state, received_at, expires_at, args, handover"


def _record(row: Any) -> CommandRecord:
    return CommandRecord(
        row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), json.loads(row[6]) if row[6] else None
    )


def board_key(directory: Path) -> X25519PrivateKey:
    """The board's X25519 key (``board.key``, mode 0600), made on first use."""
    path = directory / "board.key"
    try:
        return crypto.load_board_key(path.read_bytes())
    except FileNotFoundError:
        pass
    key = crypto.new_board_key()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(crypto.board_key_bytes(key))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key
