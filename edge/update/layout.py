"""The install root on a board, shared with the launcher (which imports none of this code).

::

    <root>/versions/<version>/venv/     one virtualenv per installed version
    <root>/versions/<version>/manifest.json, manifest.sig   what it was installed from
    <root>/current -> versions/<version>   what the launcher runs
    <root>/state.json                   stable or on trial, and the last update's outcome
    <root>/healthy.json                 written by the agent once the broker acknowledged its birth
    <root>/downloads/<version>/         partial and finished downloads (kept to resume)
    <root>/wheels/                      dependency wheels kept for later installs
    <root>/update.lock                  one update at a time

``state.json`` (the launcher's README documents it as the contract)::

    {"status": "stable" | "trial", "version": "<the proven version>",
     "candidate": "<version on trial>" | null, "since": "<trial start>", "trial_s": 600, "max_failures": 3,
     "last": {"version": ..., "state": "trial|active|rolled_back|failed", "error": "...", "ts": ...} | null}

The launcher sets ``CIOT_LAUNCHER_ROOT`` for the agent it starts; an agent started any other
way has no root and refuses updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wire import UpdateReport

ROOT_ENV = "CIOT_LAUNCHER_ROOT"


class LayoutError(RuntimeError):
    """The install root is missing or not in a state that allows an update."""


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` atomically and durably (a power cut leaves the old or the new file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def from_env(cls) -> Layout | None:
        root = os.environ.get(ROOT_ENV)
        return cls(Path(root)) if root else None

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def healthy_file(self) -> Path:
        return self.root / "healthy.json"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def read_state(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LayoutError(
                f"{self.state_file} is missing: the board was not installed with a launcher"
            ) from None
        except (OSError, ValueError) as exc:
            raise LayoutError(f"{self.state_file} is unreadable: {exc}") from None
        if not isinstance(doc, dict) or doc.get("status") not in ("stable", "trial"):
            raise LayoutError(f"{self.state_file} has no valid status")
        return doc

    def write_state(self, doc: dict[str, Any]) -> None:
        write_json(self.state_file, doc)

    def switch(self, version: str) -> None:
        """Point ``current`` at ``versions/<version>`` atomically (rename over the old link)."""
        tmp = self.root / ".current.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(Path("versions") / version)
        os.replace(tmp, self.current)
        _fsync_dir(self.root)

    def current_version(self) -> str | None:
        try:
            return Path(os.readlink(self.current)).name
        except OSError:
            return None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One update at a time (a repeated command, or a technician's shell beside the agent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "update.lock").open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LayoutError("another update is running on this board") from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def record(self, version: str, state: str, error: str = "") -> None:
        """Note an update's outcome in ``state.json`` for the next birth (keeps the rest)."""
        doc = self.read_state()
        doc["last"] = {"version": version, "state": state, "error": error[:500], "ts": now_iso()}
        self.write_state(doc)

    def mark_healthy(self, version: str, session: str) -> None:
        """Called by the running agent once the broker acknowledged its birth."""
        write_json(self.healthy_file, {"version": version, "session": session, "ts": now_iso()})

    def report(self, running: str) -> UpdateReport | None:
        """What the birth of an agent running ``running`` says about the last update."""
        try:
            doc = self.read_state()
        except LayoutError:
            return None
        if doc["status"] == "trial" and doc.get("candidate") == running:
            return UpdateReport.model_validate(
                {"version": running, "state": "trial", "ts": doc.get("since") or now_iso()}
            )
        last = doc.get("last")
        if not isinstance(last, dict):
            return None
        try:
            return UpdateReport.model_validate(last)
        except ValueError:
            return None
