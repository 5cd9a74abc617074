"""The ``update`` command's second half, in the next agent process: the board's command log
says an update was handed over, the launcher's ``state.json`` says how it went.

Real parts: the board's command log (``ControlState``, SQLite), the install root's state file
as the launcher writes it, the command runner and its ``update`` handler. The agent is a small
stand-in (the runner needs only its session here); the end-to-end test with real agents under
the real launcher is ``test_update_e2e.py``. In seconds, so each verdict has its own case."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from edge.control.commands import CommandRunner
from edge.control.state import ControlState
from edge.update.layout import ROOT_ENV, Layout, now_iso
from wire.version import __version__

COMMAND = "update-0123456789abcdef"
HANDOVER = {"version": "9.9.9", "from": __version__, "files": {"w.whl": {"size": 10, "resumes": 3}}}


class Agent:
    """What the runner uses of the agent when it resumes a command."""

    session = "0123456789abcdef"


class Board:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
        self.layout = Layout(tmp / "root")
        self.layout.root.mkdir()
        monkeypatch.setenv(ROOT_ENV, str(self.layout.root))
        self.state = ControlState(tmp / "state")
        args = {"url": "https://ciot.example.vn/api/v1/releases/x/", "version": version}
        assert self.state.take(COMMAND, "update", time.time() + 600, args)
        self.state.defer(COMMAND, HANDOVER | {"version": version})  # what the handler did before
        self.replies: list[tuple[str, dict[str, Any]]] = []
        self.answered = asyncio.Event()

    def write(self, **doc: Any) -> None:
        """``state.json`` as the launcher leaves it."""
        self.layout.write_state(doc)

    def _reply(self, _id: str, _name: str, state: str, **fields: Any) -> None:
        self.replies.append((state, fields))
        self.answered.set()

    async def resume(self) -> tuple[str, dict[str, Any]]:
        """A new agent process starting: the runner resumes the command; its final answer."""
        runner = CommandRunner(
            Agent(),  # type: ignore[arg-type]
            self.state,
            self._reply,
            verify_key=None,
            logs=None,
        )
        runner.resume()
        try:
            await asyncio.wait_for(self.answered.wait(), 10)
        finally:
            await runner.stop()
        record = self.state.command(COMMAND)
        assert record is not None and record.state == self.replies[-1][0]
        return self.replies[-1]


async def test_the_new_version_answers_done_once_its_launcher_kept_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The candidate is this process's version; done only after the trial ended well."""
    board = Board(tmp_path, monkeypatch, __version__)
    trial = {"version": __version__, "state": "trial", "error": "", "ts": now_iso()}
    board.write(status="trial", version="0.0.1", candidate=__version__, since=now_iso(), last=trial)
    running = asyncio.create_task(board.resume())
    await asyncio.sleep(1.5)  # the launcher has not decided yet: polled, and no answer
    assert not board.replies and not running.done()
    board.write(
        status="stable",
        version=__version__,
        candidate=None,
        last={"version": __version__, "state": "active", "error": "", "ts": now_iso()},
    )
    state, fields = await running
    assert state == "done"
    assert fields["result"] == HANDOVER | {
        "version": __version__,
        "state": "active",
        "session": Agent.session,
    }


async def test_the_old_version_answers_failed_with_the_launchers_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = Board(tmp_path, monkeypatch, "9.9.9")
    why = "exited 3 times before a healthy birth (status 1); last error: ModuleNotFoundError: No module 'x'"
    board.write(
        status="stable",
        version=__version__,
        candidate=None,
        last={"version": "9.9.9", "state": "rolled_back", "error": why, "ts": now_iso()},
    )
    assert await board.resume() == ("failed", {"error": f"rolled back to {__version__}: {why}"})


async def test_an_update_cut_short_before_its_trial_is_failed_not_taken_for_an_older_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent was stopped while it downloaded: state.json still holds an earlier update's
    outcome (even of the same version), which is not this command's."""
    board = Board(tmp_path, monkeypatch, "9.9.9")
    earlier = {"version": "9.9.9", "state": "failed", "error": "bad signature", "ts": "2026-12-01T08:00:00Z"}
    board.write(status="stable", version=__version__, candidate=None, last=earlier)
    assert await board.resume() == (
        "failed",
        {"error": "the agent stopped before 9.9.9 was installed; nothing changed"},
    )


async def test_an_agent_not_started_by_the_launcher_cannot_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = Board(tmp_path, monkeypatch, "9.9.9")
    monkeypatch.delenv(ROOT_ENV)
    state, fields = await board.resume()
    assert state == "failed" and "not started by the launcher" in fields["error"]
