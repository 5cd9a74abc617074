"""``apply_update``: one update, from the command's arguments to a version on trial.

Order matters, and is the point of this module: nothing on the board changes until the
signature, the version rules, the disk space and every file's size and SHA-256 have
passed. A refused or failed update leaves the installed versions, ``current`` and the
running agent as they were, and notes the failure in ``state.json`` so the next birth
tells the cloud (``wire.UpdateReport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

from edge.update.config import UpdateConfig
from edge.update.download import DownloadError, Fetched, Fetcher, sha256_file
from edge.update.install import InstallError, install, is_installed, make_stable, prune, start_trial
from edge.update.layout import Layout, LayoutError
from wire.release import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SIGNATURE,
    Manifest,
    ManifestFile,
    ReleaseError,
    parse_manifest,
    release_tuple,
    verify,
)

log = logging.getLogger(__name__)

#: Room needed beyond the bundle: a virtualenv with its dependencies (measured about 60 MB).
VENV_ROOM = 150 * 1024 * 1024
#: Fetched-files progress is told at most this often (the ``update`` command's progress replies).
PROGRESS_EVERY_S = 5.0

#: Told each step of an update, in a line for a technician (called from the update's thread).
Progress = Callable[[str], None]


def _quiet(_text: str) -> None:
    pass


@dataclass
class Result:
    ok: bool
    version: str
    #: trial: installed and switched, the launcher now runs it on trial; stable: first
    #: installation; already: this version is running; failed: nothing was changed.
    state: Literal["trial", "stable", "already", "failed"]
    error: str = ""
    signed_by: str = ""
    seconds: float = 0.0
    files: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _Source(Protocol):
    where: str

    def small(self, name: str) -> bytes: ...

    def fetch(self, f: ManifestFile, dest: Path) -> Fetched: ...


class _Remote:
    def __init__(self, url: str, fetcher: Fetcher) -> None:
        self.where = url.rstrip("/") + "/"
        self._fetcher = fetcher

    def small(self, name: str) -> bytes:
        return self._fetcher.get_small(self.where + name, MAX_MANIFEST_BYTES)

    def fetch(self, f: ManifestFile, dest: Path) -> Fetched:
        return self._fetcher.fetch(self.where + f.name, dest, f.size, f.sha256)


class _Local:
    """A bundle directory on the board (first installation, a USB stick)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.where = str(directory)

    def small(self, name: str) -> bytes:
        try:
            return (self.dir / name).read_bytes()[: MAX_MANIFEST_BYTES + 1]
        except OSError as exc:
            raise DownloadError(f"{self.dir / name}: {exc.strerror}") from None

    def fetch(self, f: ManifestFile, dest: Path) -> Fetched:
        src = self.dir / f.name
        if not src.is_file() or src.stat().st_size != f.size:
            raise DownloadError(f"{src}: missing or not the signed {f.size} bytes")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        if sha256_file(dest) != f.sha256:
            dest.unlink()
            raise DownloadError(f"{f.name}: SHA-256 differs from the signed one")
        return Fetched(dest, f.size)


def _check_rules(manifest: Manifest, version: str, running: str | None) -> None:
    if manifest.version != version:
        raise ReleaseError(f"the manifest is of version {manifest.version}, the command asked for {version}")
    least = manifest.min_previous_version
    if running is not None and least is not None and release_tuple(running) < release_tuple(least):
        raise ReleaseError(f"{version} needs at least {least} installed first; this board runs {running}")
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if manifest.tags and not any(t.split("-")[0] in ("py3", py) or ".py3" in t for t in manifest.tags):
        raise ReleaseError(f"the release is built for {', '.join(manifest.tags)}, not for {py}")


def _check_room(root: Path, manifest: Manifest) -> None:
    need = manifest.total_bytes * 2 + VENV_ROOM
    free = shutil.disk_usage(root).free
    if free < need:
        raise InstallError(
            f"not enough disk: {free // 2**20} MiB free under {root}, {need // 2**20} MiB needed"
        )


def _apply(
    source: _Source,
    version: str,
    pin: str | None,
    cfg: UpdateConfig,
    layout: Layout,
    *,
    first: bool,
    progress: Progress,
) -> Result:
    started = time.monotonic()
    result = Result(ok=False, version=version, state="failed")
    with layout.lock():
        if first:
            if layout.state_file.exists():
                raise LayoutError(
                    f"{layout.root} is already installed (state.json exists); update it instead"
                )
            state: dict[str, object] = {}
            running = None
        else:
            state = layout.read_state()
            if state["status"] == "trial":
                raise LayoutError(
                    f"version {state.get('candidate')} is on trial; wait until it is kept or rolled back"
                )
            running = str(state.get("version"))
            if running == version and layout.current_version() == version and is_installed(layout, version):
                result.ok, result.state = True, "already"
                return result
        layout.root.mkdir(parents=True, exist_ok=True)
        # 1. the manifest, verified before anything else is fetched
        body = source.small(MANIFEST)
        if pin is not None and hashlib.sha256(body).hexdigest() != pin:
            raise ReleaseError(
                f"{MANIFEST} from {source.where} is not the one the cloud published (SHA-256 pin)"
            )
        signature = source.small(SIGNATURE)
        manifest, result.signed_by = verify(body, signature, cfg.trusted_keys)
        _check_rules(manifest, version, running)
        _check_room(layout.root, manifest)
        n, total, done, told = len(manifest.files), manifest.total_bytes, 0, time.monotonic()
        progress(f"{version} signed by key {result.signed_by}; fetching {n} file(s), {total:,} bytes")
        # 2. every file, resumable, at its signed size and hash
        files = layout.downloads / version
        for i, f in enumerate(manifest.files, 1):
            got = source.fetch(f, files / f.name)
            result.files[f.name] = {
                "size": got.size,
                "network_bytes": got.network_bytes,
                "resumes": got.resumes,
                "retries": got.retries,
            }
            done += f.size
            if time.monotonic() - told >= PROGRESS_EVERY_S or i == n:
                told = time.monotonic()
                resumed = f" ({got.resumes} resumed after a dropped connection)" if got.resumes else ""
                progress(f"fetched {i} of {n} file(s), {done:,} of {total:,} bytes{resumed}")
        # 3. only now: install beside the running version, then hand over to the launcher
        keep = {version, *(v for v in (running, layout.current_version()) if v)}
        prune(layout, keep)
        progress(f"installing {version} beside {running or 'nothing'}")
        log.info(
            "installing %s (%d files, %d bytes) beside %s",
            version,
            len(manifest.files),
            manifest.total_bytes,
            running,
        )
        install(layout, manifest, files, (body, signature), cfg)
        shutil.rmtree(files, ignore_errors=True)
        if first:
            make_stable(layout, version)
            result.state = "stable"
        else:
            start_trial(layout, state, version, cfg)
            result.state = "trial"
        result.ok = True
        result.seconds = round(time.monotonic() - started, 3)
        return result


def _run(
    source: _Source,
    version: str,
    pin: str | None,
    cfg: UpdateConfig,
    layout: Layout,
    *,
    first: bool,
    progress: Progress = _quiet,
) -> Result:
    started = time.monotonic()
    try:
        return _apply(source, version, pin, cfg, layout, first=first, progress=progress)
    except (ReleaseError, DownloadError, InstallError, LayoutError, OSError) as exc:
        error = str(exc) if not isinstance(exc, OSError) else f"{exc.strerror or exc}: {exc.filename or ''}"
        log.error("update to %s refused: %s", version, error, extra={"version": version})
        if not first and not (isinstance(exc, LayoutError) and "another update" in error):
            with contextlib.suppress(LayoutError, OSError):
                layout.record(version, "failed", error)
        return Result(False, version, "failed", error, seconds=round(time.monotonic() - started, 3))


def _fetcher(cfg: UpdateConfig, auth: tuple[str, str] | None, cancel: threading.Event | None) -> Fetcher:
    return Fetcher(
        auth=auth,
        ca_file=cfg.ca_file,
        read_timeout_s=cfg.read_timeout_s,
        attempts=cfg.attempts,
        retry_max_s=cfg.retry_max_s,
        cancel=cancel,
    )


def _same_origin(url: str, server: str) -> bool:
    a, b = urlsplit(url), urlsplit(server)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


async def apply_update(
    url: str,
    version: str,
    manifest_sha256: str | None = None,
    *,
    cfg: UpdateConfig,
    auth: tuple[str, str] | None,
    layout: Layout | None = None,
    cancel: threading.Event | None = None,
    progress: Progress = _quiet,
) -> Result:
    """Download, verify and install ``version`` from ``url`` (the release's directory on the
    cloud), then put it on trial. Never raises for a bad release: the Result says why.

    ``auth`` is the board's broker username and password (HTTP Basic; the cloud checks them
    against the broker's password file). ``layout`` defaults to the launcher's root.
    ``cancel`` stops a download (an install under way finishes); ``progress`` is told each
    step, from the update's thread."""
    layout = layout or Layout.from_env()
    if layout is None:
        return Result(
            False, version, "failed", "not started by the launcher (no $CIOT_LAUNCHER_ROOT): cannot update"
        )
    if cfg.server_url is None:
        return Result(False, version, "failed", "update.server_url is not configured")
    if not _same_origin(url, cfg.server_url):
        error = f"refusing {url}: releases come only from update.server_url {cfg.server_url}"
        await asyncio.to_thread(_note_failure, layout, version, error)
        return Result(False, version, "failed", error)
    source = _Remote(url, _fetcher(cfg, auth, cancel))
    return await asyncio.to_thread(
        _run, source, version, manifest_sha256, cfg, layout, first=False, progress=progress
    )


def _note_failure(layout: Layout, version: str, error: str) -> None:
    with contextlib.suppress(LayoutError, OSError):
        layout.record(version, "failed", error)


def apply_bundle(bundle: Path, cfg: UpdateConfig, layout: Layout, *, first: bool = False) -> Result:
    """The same from a bundle directory on the board; ``first`` installs into an empty root
    and makes it the stable version at once (there is nothing to go back to)."""
    try:
        version = parse_manifest((bundle / MANIFEST).read_bytes()).version
    except (OSError, ReleaseError) as exc:
        return Result(False, "", "failed", f"{bundle}: {exc}")
    return _run(_Local(bundle), version, None, cfg, layout, first=first)
