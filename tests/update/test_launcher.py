"""The launcher (firmware_config/launcher/ciot_launcher.py) as a real process tree, with small
stand-in agents (scripts at each version's ``venv/bin/commune-iot``) so that each rule runs in
seconds: a healthy version is kept, a crashing one and a silent one are rolled back, a trial
survives power cuts but not forever, and SIGTERM stops agent and launcher in order.

The state is written by the update client's own functions (edge/update), so these also pin
the contract between the two, which share no code."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from update_helpers import SYSTEM_PYTHON, LauncherProcess, read_state, wait_until

from edge.update.config import UpdateConfig
from edge.update.install import make_stable, start_trial
from edge.update.layout import Layout

AGENT = """#!{python}
import json, os, signal, sys, time
root, version, behaviour = os.environ["CIOT_LAUNCHER_ROOT"], {version!r}, {behaviour!r}
def note(text):
    with open(os.path.join(root, "runs.log"), "a") as f:
        f.write(text + "\\n")
note(f"{{version}} started {{os.getpid()}}")
if behaviour == "crash":
    print("Traceback (most recent call last):", file=sys.stderr)
    print(f"RuntimeError: boom in {{version}}", file=sys.stderr)
    sys.exit(1)
def stop(*_):
    note(f"{{version}} stopped")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
if behaviour == "good":  # what the agent does once the broker acknowledged its birth
    tmp = os.path.join(root, ".healthy.tmp")
    with open(tmp, "w") as f:
        json.dump({{"version": version, "session": "0123abcd"}}, f)
    os.replace(tmp, os.path.join(root, "healthy.json"))
while True:
    signal.pause()
"""


def _root(tmp: Path, behaviours: dict[str, str]) -> Layout:
    layout = Layout(tmp / "root")
    for version, behaviour in behaviours.items():
        exe = layout.version_dir(version) / "venv" / "bin" / "commune-iot"
        exe.parent.mkdir(parents=True)
        exe.write_text(AGENT.format(python=SYSTEM_PYTHON, version=version, behaviour=behaviour))
        exe.chmod(0o755)
    make_stable(layout, "a")
    return layout


def _runs(layout: Layout) -> list[str]:
    path = layout.root / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[list[LauncherProcess]]:
    started: list[LauncherProcess] = []
    yield started
    for p in started:
        p.kill()


def _start(launch: list[LauncherProcess], layout: Layout, tmp: Path) -> LauncherProcess:
    p = LauncherProcess(layout.root, ["edge", "run"], tmp / "launcher.log", restart_s=0.2)
    launch.append(p)
    return p


def _trial(layout: Layout, version: str, **cfg: float) -> None:
    start_trial(layout, read_state(layout.root), version, UpdateConfig(**cfg))  # type: ignore[arg-type]


def test_a_version_that_proves_healthy_is_kept(tmp_path: Path, launch: list[LauncherProcess]) -> None:
    layout = _root(tmp_path, {"a": "good", "b": "good"})
    launcher = _start(launch, layout, tmp_path)
    wait_until(lambda: any(r.startswith("a started") for r in _runs(layout)), 10, "agent a")
    _trial(layout, "b", trial_s=30)
    state = wait_until(
        lambda: (s := read_state(layout.root))["status"] == "stable" and s["version"] == "b" and s,
        10,
        "b kept",
    )
    assert state["last"]["state"] == "active" and state["previous"] == "a"
    assert os.readlink(layout.current) == "versions/b"
    runs = _runs(layout)
    assert runs.index("a stopped") < next(i for i, r in enumerate(runs) if r.startswith("b started"))
    assert launcher.stop() == 0  # SIGTERM: the launcher stops its agent, then itself
    assert _runs(layout)[-1] == "b stopped"


def test_a_version_that_crashes_at_start_is_rolled_back(
    tmp_path: Path, launch: list[LauncherProcess]
) -> None:
    layout = _root(tmp_path, {"a": "good", "b": "crash"})
    _start(launch, layout, tmp_path)
    wait_until(lambda: any(r.startswith("a started") for r in _runs(layout)), 10, "agent a")
    began = time.monotonic()
    _trial(layout, "b", trial_s=60, max_start_failures=3)
    state = wait_until(lambda: (s := read_state(layout.root))["status"] == "stable" and s, 20, "rollback")
    took = time.monotonic() - began
    assert state["version"] == "a"
    assert state["last"]["version"] == "b" and state["last"]["state"] == "rolled_back"
    assert "exited 3 times" in state["last"]["error"] and "RuntimeError: boom in b" in state["last"]["error"]
    assert os.readlink(layout.current) == "versions/a"
    wait_until(lambda: _runs(layout)[-1].startswith("a started"), 10, "agent a back")
    assert sum(r.startswith("b started") for r in _runs(layout)) == 3
    assert took < 20, f"rolled back after {took:.1f} s, well before the 60 s window"


def test_a_version_that_never_proves_healthy_is_rolled_back_at_the_deadline(
    tmp_path: Path, launch: list[LauncherProcess]
) -> None:
    layout = _root(tmp_path, {"a": "good", "b": "silent"})
    _start(launch, layout, tmp_path)
    wait_until(lambda: any(r.startswith("a started") for r in _runs(layout)), 10, "agent a")
    began = time.monotonic()
    _trial(layout, "b", trial_s=2)
    state = wait_until(lambda: (s := read_state(layout.root))["status"] == "stable" and s, 20, "rollback")
    took = time.monotonic() - began
    assert state["version"] == "a" and state["last"]["state"] == "rolled_back"
    assert state["last"]["error"].startswith("no acknowledged birth within 2 s")
    assert 2 <= took < 8, took
    wait_until(lambda: _runs(layout)[-1].startswith("a started"), 10, "agent a back")
    assert "b stopped" in _runs(layout)  # the silent version got an orderly SIGTERM


def test_a_trial_survives_power_cuts_but_not_forever(tmp_path: Path, launch: list[LauncherProcess]) -> None:
    """Each launcher start during a trial counts; the third rolls back (a board that keeps
    rebooting on a new version must not stay on it)."""
    layout = _root(tmp_path, {"a": "good", "b": "silent"})
    _start(launch, layout, tmp_path)
    wait_until(lambda: any(r.startswith("a started") for r in _runs(layout)), 10, "agent a")
    _trial(layout, "b", trial_s=600)
    for boot in (1, 2):
        wait_until(lambda: _runs(layout)[-1].startswith("b started"), 10, "agent b")
        launch[-1].kill()  # power cut: launcher and agent die at once
        _start(launch, layout, tmp_path)
        wait_until(lambda b=boot: read_state(layout.root).get("boots") == b, 10, f"boot {boot} counted")
        assert read_state(layout.root)["status"] == "trial"
    wait_until(lambda: _runs(layout)[-1].startswith("b started"), 10, "agent b")
    launch[-1].kill()
    _start(launch, layout, tmp_path)
    state = wait_until(lambda: (s := read_state(layout.root))["status"] == "stable" and s, 10, "rollback")
    assert state["version"] == "a" and "restarted 3 times during the trial" in state["last"]["error"]
    wait_until(lambda: _runs(layout)[-1].startswith("a started"), 10, "agent a back")
