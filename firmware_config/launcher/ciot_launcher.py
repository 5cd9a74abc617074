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

Usage: ciot_launcher.py --root /opt/commune-iot -- edge run --config /etc/commune-iot/edge.yaml
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ROOT_ENV = "CIOT_LAUNCHER_ROOT"
#: Launcher starts (board reboots, launcher restarts) during one trial before it rolls back.
MAX_TRIAL_BOOTS = 3
DEFAULT_TRIAL_S = 600.0
DEFAULT_MAX_FAILURES = 3


def say(msg: str) -> None:
    print(f"ciot-launcher: {msg}", file=sys.stderr, flush=True)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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

    def stop(self, timeout: float) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"agent pid {self.proc.pid} did not stop within {timeout:.0f} s; killing it")
                self.proc.kill()
                self.proc.wait()
        self._pump.join(2)
        return self.proc.returncode

    def why(self) -> str:
        """The last error line of its output (a traceback's last line), for the rollback reason."""
        self._pump.join(1)
        for line in reversed(self.tail):
            text = line.strip()
            if text and ("Error" in text.split(":")[0] or "Exception" in text.split(":")[0]):
                return text[:300]
        return self.tail[-1][:300] if self.tail else ""


class Launcher:
    def __init__(
        self, root: Root, args: list[str], *, restart_s: float, stop_timeout_s: float, poll_s: float
    ):
        self.root = root
        self.args = args
        self.restart_s = restart_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.stopping = threading.Event()
        #: (candidate, monotonic start, exits before healthy) of the trial in progress
        self.trial: tuple[str, float, int] | None = None

    # -- state transitions -------------------------------------------------------------------

    def commit(self, state: dict[str, Any]) -> None:
        cand = str(state["candidate"])
        say(f"version {cand} proved healthy (broker acknowledged its birth); it is now the stable version")
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
        say(f"rolling back from {cand} to {prev}: {reason}")
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
        env = dict(os.environ, **{ROOT_ENV: str(self.root.path)})
        argv = [str(self.root.agent(version)), *self.args]
        child = Child(argv, env)
        say(f"started agent {version} (pid {child.proc.pid})")
        return child

    def _pause(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def run(self) -> int:
        try:
            state = self.root.read_state()
        except (OSError, ValueError) as exc:
            say(f"cannot read {self.root.state_file}: {exc}; install a version first (docs/updates.md)")
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
                say(f"error: {exc}; retrying in {self.restart_s:.0f} s")
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
            say(f"version {version} on trial: {state.get('trial_s', DEFAULT_TRIAL_S)} s to prove healthy")
        if on_trial and self.trial is not None:
            trial_s = float(state.get("trial_s", DEFAULT_TRIAL_S))
            if time.monotonic() - self.trial[1] >= trial_s:
                self.rollback(state, f"no acknowledged birth within {trial_s:g} s")
                return
        if not self.root.agent(version).exists():
            if on_trial:
                self.rollback(state, f"{self.root.agent(version)} is missing")
            else:
                say(f"{self.root.agent(version)} is missing; nothing to run (retrying)")
                self._pause(self.restart_s)
            return
        child = self._spawn(version)
        stamp = self.root.state_stamp()
        while True:
            if self.stopping.is_set():
                child.stop(self.stop_timeout_s)
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
                        child.stop(self.stop_timeout_s)
                        why = child.why()
                        self.rollback(
                            state,
                            f"no acknowledged birth within {trial_s:g} s"
                            + (f"; last error: {why}" if why else ""),
                        )
                        return
            if rc is not None:
                child.stop(self.stop_timeout_s)
                say(f"agent {version} exited with status {rc}")
                if on_trial and self.trial is not None:
                    cand, started, exits = self.trial
                    self.trial = (cand, started, exits + 1)
                    most = int(state.get("max_failures", DEFAULT_MAX_FAILURES))
                    if exits + 1 >= most:
                        why = child.why()
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
                    say(f"state now names version {wanted}; stopping agent {version}")
                    child.stop(self.stop_timeout_s)
                    return
                on_trial = state["status"] == "trial"
            self.stopping.wait(self.poll_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ciot-launcher", description="Run and supervise the commune-iot agent.")
    p.add_argument("--root", type=Path, default=Path("/opt/commune-iot"), help="install root")
    p.add_argument(
        "--restart-s", type=float, default=5.0, help="pause before restarting an agent that exited"
    )
    p.add_argument("--stop-timeout-s", type=float, default=20.0, help="SIGTERM to SIGKILL")
    p.add_argument("--poll-s", type=float, default=0.5, help="how often the state and the marker are read")
    p.add_argument("args", nargs=argparse.REMAINDER, help="after --: arguments of commune-iot (edge run ...)")
    ns = p.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    launcher = Launcher(
        Root(ns.root.resolve()),
        args or ["edge", "run"],
        restart_s=ns.restart_s,
        stop_timeout_s=ns.stop_timeout_s,
        poll_s=ns.poll_s,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: launcher.stopping.set())
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())
