"""The launcher in systemd's watchdog protocol (``WatchdogSec``, ``Type=notify``,
``NotifyAccess=main`` in firmware_config/systemd/commune-iot-edge.service).

There is no systemd on the test machine, so systemd's side is played by a real unix datagram
socket with ``SO_PASSCRED`` (:class:`update_helpers.SystemdNotifySocket`): the launcher gets it
as ``$NOTIFY_SOCKET`` with ``$WATCHDOG_USEC``, exactly as systemd starts it, and each message
arrives with its sender's pid from the kernel. systemd's watchdog fires when no ``WATCHDOG=1``
from the main pid arrived for ``WatchdogSec``; these tests measure those silences:

* while the launcher swaps versions, pauses between restarts and waits for a slow agent to
  start, the silences stay under WatchdogSec/2 (systemd never fires on a board doing its job);
* an agent whose event loop hangs stops reaching systemd (the launcher relays its pings, it does
  not invent them), and the launcher aborts and restarts it before WatchdogSec;
* an agent that never pings (a release older than the watchdog) is vouched for, not killed;
* a launcher that is itself stopped leaves a silence longer than WatchdogSec: systemd fires.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from update_helpers import (
    REPO,
    SYSTEM_PYTHON,
    LauncherProcess,
    SystemdNotifySocket,
    longest_gap,
    read_state,
    wait_until,
)

from edge.config import EdgeConfig
from edge.update.config import UpdateConfig
from edge.update.install import make_stable, start_trial
from edge.update.layout import Layout

#: A stand-in agent on the system python: slow to start, then pings every 0.5 s like the agent's
#: loop tick (edge/watchdog.py), non-blocking as the agent does. Every step is noted with
#: CLOCK_MONOTONIC, which the test reads on the same clock.
AGENT = """#!{python}
import json, os, signal, socket, sys, time
root, version = os.environ["CIOT_LAUNCHER_ROOT"], {version!r}
start_delay, pings, healthy, crash = {start_delay!r}, {pings!r}, {healthy!r}, {crash!r}
def note(text):
    with open(os.path.join(root, "runs.log"), "a") as f:
        f.write(f"{{time.monotonic():.3f}} {{version}} {{text}}\\n")
note(f"started {{os.getpid()}}")
if crash:
    print("RuntimeError: boom", file=sys.stderr)
    sys.exit(1)
signal.signal(signal.SIGTERM, lambda *_: (note("stopped"), sys.exit(0)))
time.sleep(start_delay)  # imports and opening the outbox on a slow board
if healthy:
    tmp = os.path.join(root, ".healthy.tmp")
    with open(tmp, "w") as f:
        json.dump({{"version": version, "session": "0123abcd"}}, f)
    os.replace(tmp, os.path.join(root, "healthy.json"))
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
while True:
    if pings and os.environ.get("WATCHDOG_USEC"):
        try:
            sock.sendto(b"WATCHDOG=1", socket.MSG_DONTWAIT, os.environ["NOTIFY_SOCKET"])
            note("ping")
        except OSError as exc:
            note(f"ping refused {{exc}}")
    time.sleep(0.5)
"""

#: The agent's own ping code (edge/watchdog.py's LoopWatchdog.beat on an asyncio loop); its
#: first run blocks the loop 1.5 s after it started. Its own hang limit is out of reach
#: (watchdog_s: 3600, or a hang that holds the GIL): the launcher's backstop is under test.
REAL_BEAT_AGENT = """#!{python}
import asyncio, os, time
from edge.watchdog import LoopWatchdog
root, version = os.environ["CIOT_LAUNCHER_ROOT"], {version!r}
def note(text):
    with open(os.path.join(root, "runs.log"), "a") as f:
        f.write(f"{{time.monotonic():.3f}} {{version}} {{text}}\\n")
note(f"started {{os.getpid()}}")
marker = os.path.join(root, "hung-once")
first_run = not os.path.exists(marker)
dog = LoopWatchdog(3600.0, lambda: 3600.0, lambda: None)
def blocked_in_a_wedged_call():
    note("hanging")
    while True:
        time.sleep(1)
async def main():
    dog.start()
    asyncio.create_task(dog.beat())
    await asyncio.sleep(1.5)
    if first_run:
        open(marker, "w").close()
        blocked_in_a_wedged_call()
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _agent(layout: Layout, version: str, text: str) -> None:
    exe = layout.version_dir(version) / "venv" / "bin" / "commune-iot"
    exe.parent.mkdir(parents=True)
    exe.write_text(text)
    exe.chmod(0o755)


def _standin(
    layout: Layout,
    version: str,
    *,
    start_delay: float = 0.0,
    pings: bool = True,
    healthy: bool = True,
    crash: bool = False,
) -> None:
    _agent(
        layout,
        version,
        AGENT.format(
            python=SYSTEM_PYTHON,
            version=version,
            start_delay=start_delay,
            pings=pings,
            healthy=healthy,
            crash=crash,
        ),
    )


def _runs(layout: Layout) -> list[tuple[float, str, str]]:
    path = layout.root / "runs.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        at, version, text = line.split(" ", 2)
        out.append((float(at), version, text))
    return out


def _noted(layout: Layout, version: str, text: str) -> list[float]:
    return [at for at, v, t in _runs(layout) if v == version and t.startswith(text)]


@pytest.fixture
def systemd() -> Iterator[list[SystemdNotifySocket]]:
    made: list[SystemdNotifySocket] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def launch() -> Iterator[list[LauncherProcess]]:
    started: list[LauncherProcess] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            os.kill(p.proc.pid, signal.SIGCONT)
        p.kill()


def _start(
    launch: list[LauncherProcess],
    layout: Layout,
    tmp: Path,
    sd: SystemdNotifySocket,
    restart_s: float,
    *extra: str,
) -> LauncherProcess:
    env = dict(sd.env(), PYTHONPATH=str(REPO))  # the real-beat agent imports edge.watchdog
    p = LauncherProcess(
        layout.root, ["edge", "run"], tmp / "launcher.log", restart_s=restart_s, env=env, extra=list(extra)
    )
    launch.append(p)
    return p


def _trial(layout: Layout, version: str, **cfg: float) -> None:
    start_trial(layout, read_state(layout.root), version, UpdateConfig(**cfg))  # type: ignore[arg-type]


def test_pings_reach_systemd_through_slow_starts_a_rollback_and_a_swap(
    tmp_path: Path, launch: list[LauncherProcess], systemd: list[SystemdNotifySocket]
) -> None:
    """WatchdogSec 4 s: from the launcher's start to its stop, through an agent that takes 3 s
    to ping, a candidate that crashes three times (2.5 s pauses) and is rolled back, and a swap
    to a slow-starting good one, systemd never waits more than WatchdogSec/2 for a ping (each
    of those steps alone is longer than that)."""
    sd = SystemdNotifySocket(watchdog_s=4.0)
    systemd.append(sd)
    layout = Layout(tmp_path / "root")
    _standin(layout, "a", start_delay=3.0)
    _standin(layout, "b", start_delay=3.0)
    _standin(layout, "c", crash=True)
    make_stable(layout, "a")
    began = time.monotonic()
    launcher = _start(launch, layout, tmp_path, sd, 2.5, "--start-s", "10")
    wait_until(lambda: _noted(layout, "a", "ping"), 15, "agent a's first ping")
    _trial(layout, "c", trial_s=60, max_start_failures=3)
    rolled_back = lambda: (read_state(layout.root).get("last") or {}).get("state") == "rolled_back"  # noqa: E731
    wait_until(rolled_back, 30, "c rolled back")
    wait_until(lambda: len(_noted(layout, "a", "started")) == 2, 10, "agent a back")
    _trial(layout, "b", trial_s=30)
    wait_until(lambda: read_state(layout.root)["version"] == "b", 20, "b kept")
    b_pinged = wait_until(lambda: _noted(layout, "b", "ping"), 10, "agent b's pings")[0]
    wait_until(lambda: any(t > b_pinged + 2.0 for t in sd.pings()), 10, "pings relayed from b")
    assert launcher.stop() == 0
    ended = min(n.at for n in sd.seen("STOPPING=1"))

    assert len(_noted(layout, "c", "started")) == 3
    pings = sd.pings()
    first = pings[0]
    assert first - began < 2.0, "the launcher pings from its start, before any agent does"
    a, b = longest_gap(pings, first, ended)
    print(f"{len(pings)} pings over {ended - first:.1f} s, longest silence {b - a:.2f} s")
    assert b - a <= sd.watchdog_s / 2, f"systemd waited {b - a:.2f} s for a ping (at {a - began:.1f} s)"
    # only the main process talks to systemd (NotifyAccess=main): the agents' pings are relayed
    assert sd.senders() == {launcher.proc.pid}
    ready = sd.seen("READY=1")
    assert len(ready) == 1 and ready[0].at >= _noted(layout, "a", "ping")[0], "READY=1 once a's loop ran"
    statuses = [n.text for n in sd.seen("STATUS=")]
    assert any("rolling back from c to a" in s for s in statuses), statuses


def test_a_hung_agent_stops_reaching_systemd_and_the_launcher_restarts_it_before_watchdogsec(
    tmp_path: Path, launch: list[LauncherProcess], systemd: list[SystemdNotifySocket]
) -> None:
    """The agent's real ping code; its loop blocks. The launcher stops relaying (systemd sees
    the silence begin), aborts it after --agent-silence-s 6 with its stack in the journal,
    restarts it and pings again, all within WatchdogSec 10 s: systemd does not fire."""
    sd = SystemdNotifySocket(watchdog_s=10.0)
    systemd.append(sd)
    layout = Layout(tmp_path / "root")
    _agent(layout, "a", REAL_BEAT_AGENT.format(python=sys.executable, version="a"))
    make_stable(layout, "a")
    launcher = _start(launch, layout, tmp_path, sd, 0.5, "--agent-silence-s", "6", "--start-s", "10")
    hung = wait_until(lambda: _noted(layout, "a", "hanging"), 15, "the agent's loop blocked")[0]
    restarted = wait_until(lambda: _noted(layout, "a", "started")[1:], 20, "agent a restarted")[0]
    wait_until(lambda: any(t > restarted + 2.0 for t in sd.pings()), 10, "pings after the restart")
    assert launcher.stop() == 0

    aborted = next(n.at for n in sd.seen("STATUS=") if "aborting" in n.text)
    assert 6.0 - 1.0 <= aborted - hung <= 6.0 + 1.5, f"aborted {aborted - hung:.1f} s after the hang"
    pings = sd.pings()
    # the launcher relays: once the agent's last ping is 2.5 s old, no more WATCHDOG=1 until it acts
    silent = [t for t in pings if hung + 2.5 + 0.3 < t < aborted]
    assert not silent, f"pings while the agent was hung: {[round(t - hung, 2) for t in silent]}"
    a, b = longest_gap(pings, pings[0], max(pings))
    print(f"aborted {aborted - hung:.2f} s after the hang; longest silence {b - a:.2f} s")
    assert b - a < sd.watchdog_s, f"systemd would have fired ({b - a:.1f} s without a ping)"
    assert b - a > 2.0, "the hang showed at systemd's socket"
    assert [t for t in pings if t > restarted], "pings resumed from the new agent"
    log = (tmp_path / "launcher.log").read_text()
    assert "sent no watchdog ping for" in log
    assert "in blocked_in_a_wedged_call" in log, "faulthandler put the hung agent's stack in the journal"
    assert "exited with status -6" in log


def test_an_agent_that_never_pings_is_vouched_for_and_a_silent_start_is_restarted_once(
    tmp_path: Path, launch: list[LauncherProcess], systemd: list[SystemdNotifySocket]
) -> None:
    """A release older than the watchdog (or ``watchdog_s: 0``) never pings: after --start-s
    the launcher pings on its behalf and says READY=1, so the board is not killed in a loop. A
    version that pinged before (watchdog.json) and is silent at start is restarted, once."""
    sd = SystemdNotifySocket(watchdog_s=2.0)
    systemd.append(sd)
    layout = Layout(tmp_path / "root")
    _standin(layout, "a", pings=False)
    make_stable(layout, "a")
    (layout.root / "watchdog.json").write_text(json.dumps({"pinging": ["a"]}))
    began = time.monotonic()
    launcher = _start(launch, layout, tmp_path, sd, 0.5, "--start-s", "2")
    wait_until(lambda: len(_noted(layout, "a", "started")) == 2, 15, "the silent start restarted")
    wait_until(lambda: sd.seen("READY=1"), 10, "READY=1")
    second = _noted(layout, "a", "started")[1]
    wait_until(lambda: any(t > second + 4.0 for t in sd.pings()), 10, "pings for the legacy agent")
    assert launcher.stop() == 0

    assert len(_noted(layout, "a", "started")) == 2, "taken as legacy after one silent restart"
    log = (tmp_path / "launcher.log").read_text()
    assert "within 2 s of its start (earlier runs did)" in log
    assert "taken as a version without watchdog support" in log
    assert json.loads((layout.root / "watchdog.json").read_text())["pinging"] == []
    ready = sd.seen("READY=1")[0].at
    assert 2.0 <= ready - began <= 4.0
    pings = sd.pings()
    # the first (hung) start: silence from start_s until the abort, under WatchdogSec
    a, b = longest_gap(pings, pings[0], max(pings))
    assert b - a < sd.watchdog_s
    print(f"READY=1 {ready - began:.2f} s after the launcher's start; longest silence {b - a:.2f} s")
    a, b = longest_gap(pings, second + 2.5, max(pings))
    assert b - a <= sd.watchdog_s / 2, "legacy agent: the launcher vouches at its pace"


def test_a_stopped_launcher_leaves_systemd_a_silence_longer_than_watchdogsec(
    tmp_path: Path, launch: list[LauncherProcess], systemd: list[SystemdNotifySocket]
) -> None:
    """SIGSTOP the launcher while its agent runs and pings: nothing reaches systemd for longer
    than WatchdogSec (2 s), so systemd would fire (SIGABRT, restart). The agent's own pings
    never reach systemd's socket, the agent is not blocked by the launcher's full socket, and
    a launcher that resumes does not take its healthy agent for hung (7 s > --agent-silence-s 4),
    nor after both were frozen together (``systemctl freeze``, a debugger stopping the group)."""
    sd = SystemdNotifySocket(watchdog_s=2.0)
    systemd.append(sd)
    layout = Layout(tmp_path / "root")
    _standin(layout, "a")
    make_stable(layout, "a")
    launcher = _start(launch, layout, tmp_path, sd, 0.5, "--start-s", "10", "--agent-silence-s", "4")
    wait_until(lambda: len(_noted(layout, "a", "ping")) >= 3, 15, "agent a pinging")
    wait_until(lambda: len(sd.pings()) >= 3, 5, "pings relayed")
    os.kill(launcher.proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    time.sleep(7.0)  # the fault under test is time passing with the launcher stopped
    os.kill(launcher.proc.pid, signal.SIGCONT)
    resumed = time.monotonic()
    wait_until(lambda: any(t > resumed + 1.0 for t in sd.pings()), 10, "pings after SIGCONT")
    os.killpg(launcher.proc.pid, signal.SIGSTOP)  # launcher and agent: no ping queued meanwhile
    time.sleep(5.0)
    # The launcher thaws first and judges before the agent can ping: it must give the agent
    # its time again (or it aborts a healthy agent: "aborting" shows at systemd's socket).
    os.kill(launcher.proc.pid, signal.SIGCONT)
    thawed = time.monotonic()
    wait_until(
        lambda: any(t > thawed for t in sd.pings()) or any("aborting" in n.text for n in sd.seen("STATUS=")),
        10,
        "the thawed launcher's first judgement",
    )
    os.killpg(launcher.proc.pid, signal.SIGCONT)
    wait_until(lambda: any(t > thawed + 4.5 for t in sd.pings()), 10, "pings after the thaw")
    assert launcher.stop() == 0

    pings = sd.pings()
    before = max(t for t in pings if t < stopped)
    after = min(t for t in pings if t > stopped)
    print(f"silence at systemd's socket {after - before:.2f} s for a {resumed - stopped:.2f} s stop")
    assert after - before > sd.watchdog_s, f"only {after - before:.1f} s without a ping"
    assert after >= resumed
    assert sd.senders() == {launcher.proc.pid}, "the agent's pings went to systemd directly"
    agent_pings = [t for t in _noted(layout, "a", "ping") if stopped < t < resumed]
    assert len(agent_pings) >= 12, "the agent kept its pace while the launcher's socket filled up"
    assert _noted(layout, "a", "ping refused"), "past 10 queued datagrams the agent's send fails at once"
    assert len(_noted(layout, "a", "started")) == 1, "the resumed launcher restarted a healthy agent"
    assert "aborting" not in (tmp_path / "launcher.log").read_text()


UNIT = REPO / "firmware_config" / "systemd" / "commune-iot-edge.service"


def _unit() -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            keys[key] = value
    return keys


def test_the_shipped_unit_runs_the_watchdog_with_numbers_that_hold_together() -> None:
    """systemd accepts every line, and the chain the unit's comments explain holds: the agent
    ends itself first, the launcher restarts it before systemd fires, and READY=1 (at most
    --start-s) comes before the start timeout."""
    unit = _unit()
    assert (unit["Type"], unit["NotifyAccess"]) == ("notify", "main")
    argv = unit["ExecStart"].split()
    opt = {argv[i]: float(argv[i + 1]) for i, a in enumerate(argv) if a in ("--start-s", "--agent-silence-s")}
    watchdog_s = EdgeConfig.model_fields["watchdog_s"].default
    assert watchdog_s < opt["--agent-silence-s"] <= float(unit["WatchdogSec"]) - 20
    assert opt["--start-s"] + 30 <= float(unit["TimeoutStartSec"])
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    done = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    complaints = [ln for ln in (done.stdout + done.stderr).splitlines() if UNIT.name in ln]
    assert not complaints, complaints
