"""Replace the files the broker reads without changing who may read them.

Mosquitto 2.0 drops to its own user (Debian's ``mosquitto``; uid/gid 1883 in the compose
image) before it opens anything but its config, and opens ``passwd``, ``acl`` and its TLS
files again on every SIGHUP (measured with 2.0.11): a file it cannot open then makes it
refuse every client. So a file is replaced by a temporary file in the same directory that
already has the owner, group and mode of the file it replaces (a new file: the directory's
owner and group, group-readable when the directory lets its group in, never world-readable),
renamed over it, so the broker never reads half a file or a file it cannot open. Files
replaced together are replaced all or not at all, and what cannot be done is refused
before anything changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import pwd
import tempfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


class ProvisionError(RuntimeError):
    """What could not be done and what to do about it (the text says whether anything changed)."""


@dataclass(frozen=True)
class Ownership:
    uid: int
    gid: int
    mode: int

    def describe(self) -> str:
        return f"owner {_user(self.uid)}, group {_group(self.gid)}, mode {self.mode:04o}"


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} ({uid})"
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} ({gid})"
    except KeyError:
        return str(gid)


def _refused(what: str, hint: str = "") -> ProvisionError:
    how = "run provision as root (sudo) or as the owner of the files"
    return ProvisionError(f"{what}: {how}{hint}; nothing was changed")


def _wanted(path: Path, *, owner_only: bool = False) -> Ownership:
    """What ``path`` must look like after it is replaced.

    ``owner_only``: a new file that only the user running the command may read (the CA's
    key: the broker never needs it), rather than one for the broker.
    """
    try:
        st = path.stat()
        return Ownership(st.st_uid, st.st_gid, st.st_mode & 0o7777)
    except FileNotFoundError:
        pass
    d = path.parent.stat()
    if owner_only:
        gid = d.st_gid if d.st_mode & 0o2000 else os.getegid()  # what the kernel gives it anyway
        return Ownership(os.geteuid(), gid, 0o600)
    group_read = 0o040 if d.st_mode & 0o010 else 0
    return Ownership(d.st_uid, d.st_gid, 0o600 | group_read)


def read_text(path: Path) -> str | None:
    """The file's text, None when it does not exist; a clear refusal when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except PermissionError:
        raise _refused(f"cannot read {path} ({_wanted(path).describe()})") from None


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One change at a time in ``directory`` (the CLI and the cloud may both provision)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:
        raise _refused(f"cannot open {directory}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def replace(directory: Path, contents: Mapping[str, bytes], *, owner_only: Collection[str] = ()) -> None:
    """Replace (or create) the files named in ``contents`` in ``directory``, all or none."""
    staged: list[tuple[str, Path]] = []
    try:
        for name, body in contents.items():
            staged.append((name, _stage(directory / name, body, owner_only=name in owner_only)))
    except BaseException:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    for name, tmp in staged:
        os.replace(tmp, directory / name)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the renames survive a power cut
    finally:
        os.close(fd)


def _stage(path: Path, body: bytes, *, owner_only: bool) -> Path:
    """A complete copy of the new ``path`` beside it, with the owner, group and mode it must have."""
    want = _wanted(path, owner_only=owner_only)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except PermissionError:
        raise _refused(f"cannot create files in {path.parent}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            st = os.fstat(f.fileno())
            if (st.st_uid, st.st_gid) != (want.uid, want.gid):
                os.fchown(f.fileno(), want.uid, want.gid)
            os.fchmod(f.fileno(), want.mode)
            os.fsync(f.fileno())
    except PermissionError:
        tmp.unlink(missing_ok=True)
        hint = ""
        if want.uid == os.geteuid() and not path.parent.stat().st_mode & 0o2000:
            hint = f" (or make {path.parent} set-group-ID: chmod g+s, so new files get its group)"
        raise _refused(f"cannot write {path} with {want.describe()}", hint) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp
