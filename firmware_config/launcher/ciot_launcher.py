#!/usr/bin/python3
"""ciot-launcher: run the agent version the install root says, keep a new one only if it proves healthy.

systemd starts this script (``commune-iot-edge.service``); it starts the agent of the
version in ``<root>/state.json`` as its child and restarts it when it exits. After an
update the state says ``trial``: the launcher stops the old agent, starts the candidate
and gives it ``trial_s`` seconds to write ``<root>/healthy.json`` (the agent does that once
the broker acknowledged its birth). If it does, the candidate becomes the stable version.
If it does not, or it exits ``max_failures`` times first, or the board restarts three
times during the trial, the launcher switches back to the previous version by itself and
notes why in ``state.json``, which the old agent's next birth reports to the cloud.

This file is the watchdog a release cannot break: standard library only, no import from
the project, installed once per board outside the install root (root-owned) and replaced
only by reprovisioning, never by an agent update. Each agent runs from its own version's
directory (``versions/<v>/venv/bin/commune-iot``), never through the ``current`` link, so a
switch never mixes two versions' modules in one process. The contract with the agent
(layout, state.json, healthy.json, ``CIOT_LAUNCHER_ROOT``) is in ``README.md`` beside it.

systemd's watchdog (``WatchdogSec``, ``Type=notify``, ``NotifyAccess=main``): the launcher is
the unit's main process and the only one that talks to systemd. It gives each agent a private
notification socket and relays the agent's ``WATCHDOG=1`` while the agent runs; it says
``WATCHDOG=1`` itself while no agent is expected to (swapping versions, pausing before a
restart, stopping an agent, an agent starting up for up to ``--start-s``, an agent of a version
that never pinged: a legacy release). An agent whose pings stop for ``--agent-silence-s`` is
aborted (SIGABRT: its threads' stacks go to the journal) and restarted, well inside
``WatchdogSec``; so systemd's watchdog fires only when the launcher itself is stuck (stopped,
deadlocked, blocked on a wedged disk, or waiting on an agent that SIGKILL cannot end).

Runs on the board's system python3, 3.9 or later (Raspberry Pi OS bullseye has 3.9).

Usage: ciot_launcher.py --root /opt/commune-iot -- edge run --config /etc/commune-iot/edge.yaml
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import contextlib
import faulthandler
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

ROOT_ENV = "CIOT_LAUNCHER_ROOT"
#: Launcher starts (board reboots, launcher restarts) during one trial before it rolls back.
MAX_TRIAL_BOOTS = 3
DEFAULT_TRIAL_S = 600.0
DEFAULT_MAX_FAILURES = 3
#: An agent that pinged is "alive" this long after its last ping (it pings every second).
FRESH_S = 2.5
#: After SIGABRT (a hung agent) or SIGKILL, how long the launcher still vouches for itself
#: while it waits for the process to end; past that the process is stuck in the kernel.
ABORT_WAIT_S = 5.0
KILL_WAIT_S = 10.0
#: Ticks come every --poll-s at most; a longer pause means this process was stopped (SIGSTOP,
#: a suspend): the agent then gets its full time again rather than being judged on it.
STALL_S = 5.0
#: Versions whose agents were seen pinging (kept across launcher restarts, see Watchdog).
PINGING_FILE = "watchdog.json"


def say(msg: str) -> None:
    print(f"ciot-launcher: {msg}", file=sys.stderr, flush=True)


def now_iso() -> str:
    utc = timezone.utc  # noqa: UP017 (datetime.UTC is 3.11+; the board's python3 may be 3.9)
    return datetime.now(utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Root:
    """The install root; the same layout ``edge/update/layout.py`` writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state_file = path / "state.json"
        self.healthy_file = path / "healthy.json"

    def agent(self, version: str) -> Path:
        return self.path / "versions" / version / "venv" / "bin" / "commune-iot"

    def read_state(self) -> dict[str, Any]:
        doc = json.loads(self.state_file.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("status") not in ("stable", "trial"):
            raise ValueError(f"{self.state_file}: no valid status")
        return doc

    def state_stamp(self) -> tuple[int, int]:
        try:
            st = self.state_file.stat()
        except OSError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)

    def write_state(self, doc: dict[str, Any]) -> None:
        tmp = self.path / ".state.json.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)
        self._fsync_dir()

    def switch(self, version: str) -> None:
        link = self.path / "current"
        with contextlib.suppress(OSError):
            if os.readlink(link) == f"versions/{version}":
                return
        tmp = self.path / ".current.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(f"versions/{version}")
        os.replace(tmp, link)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def healthy(self, version: str) -> bool:
        try:
            doc = json.loads(self.healthy_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and doc.get("version") == version


class Child:
    """One agent process; its stderr passes through and its tail is kept for the rollback reason."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=30)
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        self._pump = threading.Thread(target=self._copy, args=(self.proc.stderr,), daemon=True)
        self._pump.start()

    def _copy(self, stream: IO[bytes]) -> None:
        out = sys.stderr.buffer
        for line in iter(stream.readline, b""):
            self.tail.append(line.decode("utf-8", "replace").rstrip())
            with contextlib.suppress(OSError, ValueError):
                out.write(line)
                out.flush()

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(
        self, timeout: float, tick: collections.abc.Callable[[], None], sig: int = signal.SIGTERM
    ) -> int:
        """``sig``, then SIGKILL after ``timeout``; ``tick`` runs meanwhile (the launcher is
        busy, not stuck, so it keeps systemd's watchdog fed) until SIGKILL had ``KILL_WAIT_S``
        to work. A process SIGKILL cannot end (uninterruptible sleep on a wedged SD card or
        USB device) then blocks the launcher, which is what systemd's watchdog is for."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if not self._wait(timeout, tick):
                say(f"agent pid {self.proc.pid} did not stop within {timeout:.0f} s; killing it")
                self.proc.kill()
                if not self._wait(KILL_WAIT_S, tick):
                    say(f"agent pid {self.proc.pid} survives SIGKILL (stuck in the kernel); waiting")
                    self.proc.wait()
        self._pump.join(2)
        return self.proc.returncode

    def _wait(self, timeout: float, tick: collections.abc.Callable[[], None]) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            tick()
            try:
                self.proc.wait(max(0.0, min(0.2, deadline - time.monotonic())))
                return True
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    return False

    def why(self) -> str:
        """The last error line of its output (a traceback's last line), for the rollback reason."""
        self._pump.join(1)
        for line in reversed(self.tail):
            text = line.strip()
            if text and ("Error" in text.split(":")[0] or "Exception" in text.split(":")[0]):
                return text[:300]
        return self.tail[-1][:300] if self.tail else ""


def _address(path: str) -> str | bytes:
    return "\0" + path[1:] if path.startswith("@") else path


class Watchdog:
    """What the launcher tells systemd, from what it sees of the agent.

    systemd's side: ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (taken out of the environment, so
    no child, pip included, talks to systemd). The agent's side: a private socket the agent gets
    as its ``NOTIFY_SOCKET``; its ``WATCHDOG=1`` datagrams are drained at each :meth:`tick`,
    which runs on the launcher's only loop, so a stuck launcher stops all pings."""

    def __init__(self, root: Path, *, start_s: float, silence_s: float) -> None:
        self.start_s = start_s
        self.silence_s = silence_s
        self.fresh_s = min(FRESH_S, silence_s / 2)
        path = os.environ.pop("NOTIFY_SOCKET", "")
        usec = os.environ.pop("WATCHDOG_USEC", "")
        pid = os.environ.pop("WATCHDOG_PID", "")
        self.systemd_addr = _address(path)
        self.systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if path else None
        #: systemd's WatchdogSec for this process (sd_watchdog_enabled's rule), None when off
        self.watchdog_s = (
            int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and pid in ("", str(os.getpid())) else None
        )
        self.ping_every = min(1.0, self.watchdog_s / 8) if self.watchdog_s else 1.0
        self.sent_at = float("-inf")
        self.ready = False
        runtime = (os.environ.get("RUNTIME_DIRECTORY") or "").split(":")[0] or None
        self.dir = Path(tempfile.mkdtemp(prefix="ciot-launcher-", dir=runtime))
        self.agent_socket = str(self.dir / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.agent_socket)
        self.sock.setblocking(False)
        #: versions whose agents pinged: one that then stays silent at start is hung, not legacy
        self.pinging_file = root / PINGING_FILE
        self.pinging = self._load()
        self.legacy: set[str] = set()
        self.born = self.ticked_at = time.monotonic()
        self.version: str | None = None  # the agent being watched
        self.started = 0.0
        self.last_ping: float | None = None

    def _load(self) -> set[str]:
        try:
            doc = json.loads(self.pinging_file.read_text(encoding="utf-8"))
            return {str(v) for v in doc.get("pinging", [])}
        except (OSError, ValueError, AttributeError, TypeError):
            return set()

    def _save(self) -> None:
        tmp = self.pinging_file.with_name(f".{PINGING_FILE}.tmp")
        with contextlib.suppress(OSError):  # losing it costs one version one legacy judgement
            versions = self.pinging_file.parent / "versions"
            kept = sorted(v for v in self.pinging if (versions / v).is_dir())  # bounded by what is installed
            tmp.write_text(json.dumps({"pinging": kept}) + "\n", encoding="utf-8")
            os.replace(tmp, self.pinging_file)

    def agent_env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.agent_socket, "WATCHDOG_USEC": str(int(self.silence_s * 1e6))}

    def notify(self, text: str) -> None:
        if self.systemd is not None:
            with contextlib.suppress(OSError):
                self.systemd.sendto(text.encode("utf-8", "replace"), socket.MSG_DONTWAIT, self.systemd_addr)

    def _drain(self) -> int:
        pings = 0
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:  # BlockingIOError: nothing left
                return pings
            pings += b"WATCHDOG=1" in data.split(b"\n")

    def watch(self, version: str) -> None:
        """A new agent of ``version`` was started: its start-up time begins now."""
        self._drain()  # a previous agent's last pings are not this one's
        self.version, self.started, self.last_ping = version, time.monotonic(), None

    def unwatch(self) -> None:
        """No agent is expected to ping (stopping one, pausing, swapping): the launcher vouches."""
        self.version = None

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.ticked_at > STALL_S:
            self.started = now
            if self.last_ping is not None:
                self.last_ping = now
        self.ticked_at = now
        pinged = self._drain()
        v = self.version
        if v is not None and pinged:
            self.last_ping = now
            self.legacy.discard(v)
            if v not in self.pinging:
                self.pinging.add(v)
                self._save()
        if (
            v is not None
            and self.last_ping is None
            and v not in self.legacy | self.pinging
            and now - self.started >= self.start_s
        ):
            self.legacy.add(v)
            say(
                f"agent {v} has not pinged within {self.start_s:g} s of its start: taken as a version "
                "without watchdog support (or watchdog_s: 0); the launcher vouches for it"
            )
        if self._vouch(now) and now - self.sent_at >= self.ping_every:
            self.notify("WATCHDOG=1")
            self.sent_at = now
        if not self.ready and (
            (v is not None and (self.last_ping is not None or v in self.legacy))
            or now - self.born >= self.start_s
        ):
            self.notify("READY=1")
            self.ready = True

    def _vouch(self, now: float) -> bool:
        if self.version is None:
            return True  # the launcher itself is busy with a bounded step
        if self.last_ping is not None:
            return now - self.last_ping <= self.fresh_s  # relay: the agent's loop runs
        return self.version in self.legacy or now - self.started < self.start_s

    def stuck(self) -> str | None:
        """Why the watched agent is to be aborted, if it is."""
        now, v = time.monotonic(), self.version
        if v is None:
            return None
        if self.last_ping is not None and now - self.last_ping > self.silence_s:
            return f"agent {v} sent no watchdog ping for {now - self.last_ping:.0f} s (its loop is stuck)"
        if self.last_ping is None and v in self.pinging and now - self.started > self.start_s:
            # once: if its next run is silent too it is taken as legacy (watchdog_s: 0 in edge.yaml)
            self.pinging.discard(v)
            self._save()
            return (
                f"agent {v} sent no watchdog ping within {self.start_s:g} s of its start (earlier runs did)"
            )
        return None

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Launcher:
    def __init__(
        self,
        root: Root,
        args: list[str],
        *,
        restart_s: float,
        stop_timeout_s: float,
        poll_s: float,
        dog: Watchdog,
    ):
        self.root = root
        self.dog = dog
        self.slice_s = min(poll_s, dog.ping_every)
        self.args = args
        self.restart_s = restart_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.stopping = threading.Event()
        #: (candidate, monotonic start, exits before healthy) of the trial in progress
        self.trial: tuple[str, float, int] | None = None

    def say(self, msg: str) -> None:
        """To the journal, and as the unit's status line (``systemctl status``)."""
        say(msg)
        self.dog.notify(f"STATUS={msg[:200]}")

    def stop(self) -> None:
        """SIGTERM (systemctl stop): stop the agent in order, then exit."""
        self.dog.notify("STOPPING=1")
        self.stopping.set()

    # -- state transitions -------------------------------------------------------------------

    def commit(self, state: dict[str, Any]) -> None:
        cand = str(state["candidate"])
        self.say(
            f"version {cand} proved healthy (broker acknowledged its birth); it is now the stable version"
        )
        state.update(
            status="stable",
            previous=state.get("version"),
            version=cand,
            candidate=None,
            last={"version": cand, "state": "active", "error": "", "ts": now_iso()},
        )
        self.root.write_state(state)
        self.trial = None

    def rollback(self, state: dict[str, Any], reason: str) -> None:
        cand, prev = str(state["candidate"]), str(state["version"])
        self.say(f"rolling back from {cand} to {prev}: {reason}")
        state.update(
            status="stable",
            candidate=None,
            last={"version": cand, "state": "rolled_back", "error": reason[:500], "ts": now_iso()},
        )
        self.root.write_state(state)  # state first: the link follows it (see run())
        self.root.switch(prev)
        self.trial = None

    # -- running -----------------------------------------------------------------------------

    def _spawn(self, version: str) -> Child:
        # PYTHONFAULTHANDLER: an agent aborted as hung prints every thread's stack first
        env = dict(os.environ, **{ROOT_ENV: str(self.root.path)}, **self.dog.agent_env())
        env.setdefault("PYTHONFAULTHANDLER", "1")
        argv = [str(self.root.agent(version)), *self.args]
        self.dog.watch(version)
        child = Child(argv, env)
        self.say(f"started agent {version} (pid {child.proc.pid})")
        return child

    def _stop(self, child: Child, timeout: float, sig: int = signal.SIGTERM) -> int:
        self.dog.unwatch()
        return child.stop(timeout, self.dog.tick, sig)

    def _wait(self, seconds: float) -> None:
        """Wait, feeding systemd's watchdog: a bounded pause is progress, not a hang."""
        deadline = time.monotonic() + seconds
        while True:
            self.dog.tick()
            left = deadline - time.monotonic()
            if left <= 0 or self.stopping.wait(min(self.slice_s, left)):
                return

    def _pause(self, seconds: float) -> None:
        self.dog.unwatch()
        self._wait(seconds)

    def run(self) -> int:
        try:
            state = self.root.read_state()
        except (OSError, ValueError) as exc:
            self.say(f"cannot read {self.root.state_file}: {exc}; install a version first (docs/updates.md)")
            return 2
        if state["status"] == "trial":
            boots = int(state.get("boots", 0)) + 1
            state["boots"] = boots
            self.root.write_state(state)
            if boots >= MAX_TRIAL_BOOTS:
                self.rollback(
                    state, f"the launcher restarted {boots} times during the trial (board reboots?)"
                )
        while not self.stopping.is_set():
            try:
                self.once()
            except (OSError, ValueError) as exc:
                self.say(f"error: {exc}; retrying in {self.restart_s:.0f} s")
                self._pause(self.restart_s)
        return 0

    def once(self) -> None:
        """Start the version the state names and watch it until it exits, is replaced or stopped."""
        state = self.root.read_state()
        on_trial = state["status"] == "trial"
        version = str(state["candidate"] if on_trial else state["version"])
        self.root.switch(version)  # finish a switch a power cut may have interrupted
        if on_trial and (self.trial is None or self.trial[0] != version):
            with contextlib.suppress(FileNotFoundError):
                self.root.healthy_file.unlink()
            self.trial = (version, time.monotonic(), 0)
            self.say(
                f"version {version} on trial: {state.get('trial_s', DEFAULT_TRIAL_S)} s to prove healthy"
            )
        if on_trial and self.trial is not None:
            trial_s = float(state.get("trial_s", DEFAULT_TRIAL_S))
            if time.monotonic() - self.trial[1] >= trial_s:
                self.rollback(state, f"no acknowledged birth within {trial_s:g} s")
                return
        if not self.root.agent(version).exists():
            if on_trial:
                self.rollback(state, f"{self.root.agent(version)} is missing")
            else:
                self.say(f"{self.root.agent(version)} is missing; nothing to run (retrying)")
                self._pause(self.restart_s)
            return
        child = self._spawn(version)
        try:
            self._watch(child, version, state, on_trial)
        finally:
            self.dog.unwatch()

    def _watch(self, child: Child, version: str, state: dict[str, Any], on_trial: bool) -> None:
        stamp = self.root.state_stamp()
        while True:
            if self.stopping.is_set():
                self._stop(child, self.stop_timeout_s)
                return
            rc = child.poll()
            if on_trial and self.trial is not None:
                if self.root.healthy(version):
                    self.commit(state)
                    on_trial = False
                    stamp = self.root.state_stamp()
                else:
                    trial_s = float(state.get("trial_s", DEFAULT_TRIAL_S))
                    if time.monotonic() - self.trial[1] >= trial_s:
                        self._stop(child, self.stop_timeout_s)
                        why = child.why()
                        self.rollback(
                            state,
                            f"no acknowledged birth within {trial_s:g} s"
                            + (f"; last error: {why}" if why else ""),
                        )
                        return
            hung = self.dog.stuck() if rc is None else None
            if hung is not None:
                self.say(f"{hung}: aborting it (SIGABRT, its stacks to the journal) to start it again")
                rc = self._stop(child, ABORT_WAIT_S, signal.SIGABRT)
            if rc is not None:
                self._stop(child, self.stop_timeout_s)
                self.say(f"agent {version} exited with status {rc}")
                if on_trial and self.trial is not None:
                    cand, started, exits = self.trial
                    self.trial = (cand, started, exits + 1)
                    most = int(state.get("max_failures", DEFAULT_MAX_FAILURES))
                    if exits + 1 >= most:
                        why = hung or child.why()  # a hung agent's last line is a stack frame
                        self.rollback(
                            state,
                            f"exited {exits + 1} times before a healthy birth (status {rc})"
                            + (f"; last error: {why}" if why else ""),
                        )
                        return
                self._pause(self.restart_s)
                return
            if self.root.state_stamp() != stamp:
                stamp = self.root.state_stamp()
                state = self.root.read_state()
                wanted = state["candidate"] if state["status"] == "trial" else state["version"]
                if wanted != version:
                    self.say(f"state now names version {wanted}; stopping agent {version}")
                    self._stop(child, self.stop_timeout_s)
                    return
                on_trial = state["status"] == "trial"
            self._wait(self.poll_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ciot-launcher", description="Run and supervise the commune-iot agent.")
    p.add_argument("--root", type=Path, default=Path("/opt/commune-iot"), help="install root")
    p.add_argument(
        "--restart-s", type=float, default=5.0, help="pause before restarting an agent that exited"
    )
    p.add_argument("--stop-timeout-s", type=float, default=20.0, help="SIGTERM to SIGKILL")
    p.add_argument("--poll-s", type=float, default=0.5, help="how often the state and the marker are read")
    p.add_argument(
        "--start-s",
        type=float,
        default=120.0,
        help="how long an agent may take to send its first watchdog ping (a Pi 3's cold start)",
    )
    p.add_argument(
        "--agent-silence-s",
        type=float,
        default=90.0,
        help="abort and restart an agent whose watchdog pings stopped this long "
        "(above edge.yaml watchdog_s, below the unit's WatchdogSec)",
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="after --: arguments of commune-iot (edge run ...)")
    ns = p.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    faulthandler.enable()  # systemd's watchdog sends SIGABRT: the stuck launcher's stack to the journal
    root = Root(ns.root.resolve())
    dog = Watchdog(root.path, start_s=ns.start_s, silence_s=ns.agent_silence_s)
    launcher = Launcher(
        root,
        args or ["edge", "run"],
        restart_s=ns.restart_s,
        stop_timeout_s=ns.stop_timeout_s,
        poll_s=ns.poll_s,
        dog=dog,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: launcher.stop())
    try:
        return launcher.run()
    finally:
        dog.close()


if __name__ == "__main__":
    sys.exit(main())
