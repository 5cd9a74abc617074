"""Test helpers for agent updates: offline dependency wheels, a TLS proxy that cuts downloads,
the launcher as a process and its install root."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import importlib.metadata as md
import io
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "firmware_config" / "launcher" / "ciot_launcher.py"
#: The interpreter systemd would run the launcher with (no virtualenv, no project on its path).
SYSTEM_PYTHON = str(getattr(sys, "_base_executable", None) or sys.executable)


@dataclass(frozen=True)
class Bundles:
    key: Path
    public: str
    other_key: Path  # a key boards do not trust
    a: Path  # version A, with its dependency wheels (a board's first installation)
    b: Path  # version B: the project wheel only (dependencies come from the board's wheelhouse)
    broken: Path  # version B': its agent cannot import a module at start-up


# -- dependency wheels without a network ------------------------------------------------------


def _closure(requirement: str) -> dict[str, set[str]]:
    """Distributions (with extras) that ``requirement`` pulls in, from this environment."""
    seen: dict[str, set[str]] = {}

    def walk(req: Requirement) -> None:
        name = req.name.lower().replace("_", "-")
        if name in seen and set(req.extras) <= seen[name]:
            return
        seen.setdefault(name, set()).update(req.extras)
        for dep in md.distribution(req.name).requires or []:
            r = Requirement(dep)
            envs = [dict(default_environment(), extra=e) for e in ["", *seen[name]]]
            if r.marker is None or any(r.marker.evaluate(env) for env in envs):
                walk(r)

    walk(Requirement(requirement))
    return seen


def pack_installed(requirement: str, dest: Path, *, skip: str = "commune-iot") -> list[Path]:
    """Wheels of ``requirement``'s dependencies, re-packed from this environment's installed
    files (RECORD regenerated), so a test installs a board's virtualenv with ``--no-index``
    and no network. A release would ship the index's own wheels instead (``release build --deps``)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in sorted(_closure(requirement)):
        if name == skip:
            continue
        dist = md.distribution(name)
        tags = [
            ln.split(":", 1)[1].strip()
            for ln in (dist.read_text("WHEEL") or "").splitlines()
            if ln.startswith("Tag:")
        ]
        wheel = dest / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-{tags[0]}.whl"
        rows, record = [], None
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for f in dist.files or []:
                rel = str(f)
                if rel.startswith("..") or "__pycache__" in rel:
                    continue
                if rel.endswith(".dist-info/RECORD"):
                    record = rel
                    continue
                if rel.rsplit("/", 1)[-1] in ("INSTALLER", "REQUESTED", "direct_url.json"):
                    continue
                data = Path(str(f.locate())).read_bytes()
                z.writestr(rel, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                rows.append((rel, f"sha256={digest}", str(len(data))))
            assert record is not None, f"{name}: no RECORD"
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerows([*rows, (record, "", "")])
            z.writestr(record, buf.getvalue())
        out.append(wheel)
    return out


# -- a TLS reverse proxy that cuts downloads --------------------------------------------------


class CuttingProxy:
    """TLS in front, plain HTTP to the cloud behind: the deployment's reverse proxy, plus a 3G
    uplink that drops. ``cut(n, after)`` makes the next ``n`` connections that carry more than
    ``after`` bytes towards the board end abruptly right there."""

    def __init__(self, upstream_port: int, certfile: Path, keyfile: Path) -> None:
        self.upstream_port = upstream_port
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(str(certfile), str(keyfile))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._lock = threading.Lock()
        self._cuts_left = 0
        self._after = 0
        self.cuts: list[int] = []  # bytes sent before each cut
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def cut(self, n: int, after: int) -> None:
        with self._lock:
            self._cuts_left, self._after = n, after

    def _accept(self) -> None:
        while not self._closing:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        up = socket.create_connection(("127.0.0.1", self.upstream_port))
        done = threading.Event()

        def upward() -> None:
            try:
                while chunk := client.recv(65536):
                    up.sendall(chunk)
            except OSError:
                pass
            done.set()

        threading.Thread(target=upward, daemon=True).start()
        sent = 0
        try:
            while chunk := up.recv(16384):
                with self._lock:
                    limit = self._after if self._cuts_left > 0 else None
                    if limit is not None and sent + len(chunk) > limit:
                        self._cuts_left -= 1
                        self.cuts.append(limit)
                    else:
                        limit = None
                if limit is not None:
                    client.sendall(chunk[: max(0, limit - sent)])
                    break  # the uplink drops here: no TLS goodbye, no more bytes
                client.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        finally:
            # shutdown (not only close) wakes the other thread's recv and sends the FIN now
            for s in (client, up):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            done.wait(2)
            for s in (client, up):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._closing = True
        self.sock.close()


# -- the launcher and its install root --------------------------------------------------------


class LauncherProcess:
    """``ciot_launcher.py`` run the way systemd runs it: the base interpreter, its own session."""

    def __init__(
        self,
        root: Path,
        args: list[str],
        log: Path,
        *,
        restart_s: float = 0.2,
        env: dict[str, str] | None = None,
        extra: list[str] | None = None,
    ):
        self.root = root
        self.log = log
        argv = [
            SYSTEM_PYTHON,
            str(LAUNCHER),
            "--root",
            str(root),
            "--restart-s",
            str(restart_s),
            "--poll-s",
            "0.1",
            *(extra or []),
        ]
        self.proc = subprocess.Popen(
            [*argv, "--", *args],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as ``systemctl stop`` with ``KillMode=mixed`` sends it to the launcher only."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (what systemd does to the unit's cgroup at the end)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def read_state(root: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((root / "state.json").read_text())
    return doc


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` (a file the launcher or the board writes) until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def installed(root: Path) -> dict[str, Any]:
    """What an update may not change when it is refused: the versions, where current points,
    and the state apart from the last update's note."""
    state = read_state(root)
    state.pop("last", None)
    versions = sorted(p.name for p in (root / "versions").iterdir())
    trees = {
        v: sorted(str(p.relative_to(root / "versions" / v)) for p in (root / "versions" / v).rglob("*"))
        for v in versions
    }
    return {"current": os.readlink(root / "current"), "state": state, "versions": trees}


# -- systemd's notification socket ------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    at: float  # time.monotonic() on arrival (CLOCK_MONOTONIC: comparable across processes)
    pid: int  # the sender, from the kernel (SCM_CREDENTIALS), as systemd's NotifyAccess checks it
    text: str


class SystemdNotifySocket:
    """The socket systemd gives a ``Type=notify`` service as ``$NOTIFY_SOCKET``: a unix datagram
    socket with ``SO_PASSCRED``, so each message carries its sender's pid from the kernel (what
    ``NotifyAccess=main`` checks). There is no systemd here; this is its side of the real
    protocol, recording every line (``WATCHDOG=1``, ``READY=1``, ``STATUS=...``) with its time."""

    def __init__(self, watchdog_s: float) -> None:
        self.watchdog_s = watchdog_s
        self._dir = Path(tempfile.mkdtemp(prefix="sd-"))  # sun_path holds 107 bytes: keep it short
        self.path = str(self._dir / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.notices: list[Notice] = []
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        """What systemd puts in the main process's environment with ``WatchdogSec`` set."""
        return dict(os.environ, NOTIFY_SOCKET=self.path, WATCHDOG_USEC=str(int(self.watchdog_s * 1e6)))

    def _listen(self) -> None:
        creds = struct.calcsize("3i")
        while not self._closing:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds))
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            pid = -1
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:creds])[0]
            with self._lock:
                for line in data.decode("utf-8", "replace").split("\n"):
                    if line:
                        self.notices.append(Notice(at, pid, line))

    def seen(self, prefix: str) -> list[Notice]:
        with self._lock:
            return [n for n in self.notices if n.text.startswith(prefix)]

    def pings(self) -> list[float]:
        return [n.at for n in self.seen("WATCHDOG=1")]

    def senders(self) -> set[int]:
        with self._lock:
            return {n.pid for n in self.notices}

    def close(self) -> None:
        self._closing = True
        self.sock.close()
        self._thread.join(2)
        shutil.rmtree(self._dir, ignore_errors=True)


def gaps(times: list[float], start: float, end: float) -> list[tuple[float, float]]:
    """(from, to) of each silence between ``start`` and ``end``: what systemd's watchdog timer sees."""
    marks = [start, *(t for t in times if start < t < end), end]
    return [(a, b) for a, b in itertools.pairwise(marks)]


def longest_gap(times: list[float], start: float, end: float) -> tuple[float, float]:
    return max(gaps(times, start, end), key=lambda g: g[1] - g[0])
