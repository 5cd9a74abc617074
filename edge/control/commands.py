"""Commands from the cloud: checked, run once, answered (wire.control).

Before anything runs: the command must be for this board, signed by its cloud when the
board has the cloud's key, not expired (a command is never run late: it is answered
``expired``), of a known name with valid arguments, and of an id never taken before (the
id is stored durably first, so a command sent twice, redelivered after a reconnect or
replayed runs once). Then ``accepted``, the handler, and ``done`` with its result or
``failed`` with the error. Replies go through the outbox like all data, so an answer is
never lost to a dropped link.

A handler may hand its command over to the next agent process (raise :class:`Deferred`,
state ``running``): ``restart`` does, and so does ``update`` once its version is on trial
(the launcher, not this agent, restarts into it). At start, :meth:`CommandRunner.resume`
finishes such commands through the handler's ``resume``; any other command cut short by
a restart is answered ``failed``. Adding a command: its argument model in
``wire.control.COMMANDS`` and a ``Handler`` in ``HANDLERS`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import platform
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from edge.collectors.base import Collector, Sink, Unsupported
from edge.config import EdgeConfig
from edge.control.logbuf import LogBuffer
from edge.control.state import CommandRecord, ControlState
from edge.ping import ping
from edge.update import apply_update
from edge.update.config import MAX_TRIAL_S
from edge.update.layout import Layout
from wire import Command, WireError, command_args, crypto, decode_as
from wire.control import DeviceArgs, LogsArgs, PingArgs
from wire.messages import MAX_JSON_BYTES, check_snapshot
from wire.release import UpdateArgs
from wire.version import __version__

log = logging.getLogger(__name__)

#: Longest a handler may take before it is answered ``failed`` (unless it says otherwise).
HANDLER_TIMEOUT_S = 120.0
#: The ``logs`` result stays well inside the contract's JSON limit.
LOGS_MAX_BYTES = MAX_JSON_BYTES - 8 * 1024
#: An update downloads over 3G (tens of minutes for a bundle with dependencies) and installs
#: (pip, at most 30 min) before the launcher takes over. Past this it is answered failed: the
#: download stops at once, an install under way finishes first.
UPDATE_TIMEOUT_S = 3 * 3600.0
#: How often the next agent process looks whether the launcher kept the new version.
UPDATE_POLL_S = 1.0


class Board(Protocol):
    """What command handlers may use of the agent."""

    @property
    def cfg(self) -> EdgeConfig: ...

    @property
    def session(self) -> str: ...

    @property
    def sink(self) -> Sink: ...

    def collectors(self) -> list[Collector]: ...

    def emit_snapshot(self, suffix: str, jpeg: bytes) -> None: ...

    def diagnostics(self) -> dict[str, Any]: ...

    def rebirth(self) -> None: ...

    def request_restart(self) -> None: ...


class Deferred(Exception):
    """The command continues in the next agent process (``resume`` finishes it with
    ``handover``, which the board keeps with the command)."""

    def __init__(self, why: str, handover: dict[str, Any] | None = None) -> None:
        super().__init__(why)
        self.handover = handover


class Failed(Exception):
    """The command failed for the reason its text gives in full (answered without a type name)."""


@dataclass
class Context:
    board: Board
    command: Command
    args: BaseModel
    logs: LogBuffer | None
    progress: Callable[[str], None]


HandlerFn = Callable[[Context], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Handler:
    run: HandlerFn
    #: Finishes a command a previous agent process deferred (in the next process, which may be
    #: a new version); None: such a command is answered failed.
    resume: Callable[[Board, CommandRecord], Awaitable[dict[str, Any]]] | None = None
    #: Longest ``run`` may take (a download over 3G needs far more than a ping).
    timeout_s: float = HANDLER_TIMEOUT_S
    #: Longest ``resume`` may take; None: ``timeout_s``.
    resume_timeout_s: float | None = None


def _collector_for(board: Board, device: str | None, what: str) -> tuple[Collector, str]:
    """The collector serving ``device`` (the only device when None)."""
    pairs = [(c, d) for c in board.collectors() for d in (c.options.device_ids() or [c.device])]
    if device is None:
        if len(pairs) != 1:
            devices = ", ".join(d for _, d in pairs) or "none"
            raise Unsupported(f"this board serves several devices ({devices}): name one for {what}")
        return pairs[0]
    for c, d in pairs:
        if d == device:
            return c, d
    raise Unsupported(f"this board does not serve device {device}")


async def _snapshot(ctx: Context) -> dict[str, Any]:
    assert isinstance(ctx.args, DeviceArgs)
    collector, device = _collector_for(ctx.board, ctx.args.device, "a snapshot")
    jpeg = await collector.snapshot(device)
    width, height = check_snapshot(jpeg)
    ctx.board.emit_snapshot(ctx.command.id, jpeg)
    return {
        "device": device,
        "snapshot_sha256": hashlib.sha256(jpeg).hexdigest(),
        "bytes": len(jpeg),
        "width": width,
        "height": height,
    }


async def _poll(ctx: Context) -> dict[str, Any]:
    assert isinstance(ctx.args, DeviceArgs)
    collector, device = _collector_for(ctx.board, ctx.args.device, "a poll")
    return await collector.poll_now(device, ctx.board.sink)


async def _ping(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    assert isinstance(args, PingArgs)
    targets: dict[str, str] = {}  # host -> what it is
    if args.host is not None:
        targets[args.host] = args.host
    else:
        for c in ctx.board.collectors():
            for device, host in c.addresses().items():
                if args.device is None or device == args.device:
                    targets[host] = device
        if args.device is None and ctx.board.cfg.broker.host:
            targets.setdefault(ctx.board.cfg.broker.host, "broker")
        if not targets:
            raise Unsupported(f"no address known for {args.device or 'any device of this board'}")
    results: dict[str, Any] = {}
    for host, what in list(targets.items())[:16]:
        replies, unknown = 0, False
        for _ in range(args.count):
            ok = await ping(host, 1.0)
            unknown |= ok is None
            replies += bool(ok)
        results[host] = {"of": what, "sent": args.count, "replies": replies, "reachable": replies > 0}
        if unknown and not replies:
            results[host]["reachable"] = None  # ping cannot run on this board
    return {"hosts": results}


async def _diag(ctx: Context) -> dict[str, Any]:
    out = ctx.board.diagnostics()
    now = datetime.now(UTC)
    out["clock"] = {
        "board_utc": now.isoformat().replace("+00:00", "Z"),
        # board clock minus the cloud's at issue time, plus the delivery delay (an upper bound)
        "offset_s": round((now - ctx.command.issued_at).total_seconds(), 3),
    }
    return out


async def _logs(ctx: Context) -> dict[str, Any]:
    assert isinstance(ctx.args, LogsArgs)
    if ctx.logs is None:
        raise Unsupported("this board keeps no log lines (control.log_lines is 0)")
    lines, cut = ctx.logs.tail(ctx.args.lines, LOGS_MAX_BYTES)
    return {"lines": lines, "truncated": cut}


async def _rebirth(ctx: Context) -> dict[str, Any]:
    ctx.board.rebirth()
    return {"session": ctx.board.session}


async def _restart(ctx: Context) -> dict[str, Any]:
    ctx.progress("restarting the agent")
    ctx.board.request_restart()
    raise Deferred("restarting")


async def _restarted(board: Board, record: CommandRecord) -> dict[str, Any]:
    return {"session": board.session, "restarted_after_s": round(time.time() - record.received_at, 1)}


async def _update(ctx: Context) -> dict[str, Any]:
    """Download, check and install the release (``edge.update``); once it is on trial the
    launcher stops this agent and starts the new version, whose ``resume`` answers."""
    args = ctx.args
    assert isinstance(args, UpdateArgs)
    cfg = ctx.board.cfg
    secret = cfg.broker.secret()
    auth = (cfg.broker.username, secret) if cfg.broker.username and secret is not None else None
    loop = asyncio.get_running_loop()

    def progress(text: str) -> None:  # from the update's thread
        with contextlib.suppress(RuntimeError):  # the loop closed: the agent stopped
            loop.call_soon_threadsafe(ctx.progress, text)

    ctx.progress(f"updating {__version__} to {args.version} from {args.url}")
    cancel = threading.Event()
    work = asyncio.ensure_future(
        apply_update(
            args.url,
            args.version,
            args.manifest_sha256,
            cfg=cfg.update,
            auth=auth,
            cancel=cancel,
            progress=progress,
        )
    )
    try:
        result = await asyncio.shield(work)
    except asyncio.CancelledError:
        # Stopped or out of time: the download stops now. If the trial began meanwhile (the
        # launcher stops this agent as soon as it sees it), the next process answers.
        cancel.set()
        result = await work
        if result.state != "trial":
            raise
    if not result.ok:
        raise Failed(result.error)
    summary: dict[str, Any] = {
        "version": args.version,
        "from": __version__,
        "signed_by": result.signed_by,
        "seconds": result.seconds,
        "files": result.files,
    }
    if result.state == "trial":
        ctx.progress(f"{args.version} installed and on trial: the launcher restarts the agent into it")
        raise Deferred("on trial", handover=summary)
    return summary | {"state": result.state}


async def _updated(board: Board, record: CommandRecord) -> dict[str, Any]:
    """In the next agent process: the launcher's verdict on the version the command installed
    (this process is that version, or the old one again after a rollback)."""
    layout = Layout.from_env()
    if layout is None:
        raise Failed("this agent was not started by the launcher: it cannot tell how the update went")
    version = str(record.args.get("version"))
    while True:
        report = await asyncio.to_thread(layout.report, __version__)
        # an outcome older than the command is an earlier update's (second-resolution stamps)
        if report is None or report.version != version or report.ts.timestamp() < record.received_at - 2:
            raise Failed(f"the agent stopped before {version} was installed; nothing changed")
        if report.state == "active":
            return (record.handover or {}) | {"state": "active", "session": board.session}
        if report.state == "rolled_back":
            raise Failed(f"rolled back to {__version__}: {report.error}")
        if report.state == "failed":
            raise Failed(report.error or "failed")
        await asyncio.sleep(UPDATE_POLL_S)  # on trial: the launcher decides within update.trial_s


HANDLERS: dict[str, Handler] = {
    "snapshot": Handler(_snapshot),
    "poll": Handler(_poll),
    "ping": Handler(_ping),
    "diag": Handler(_diag),
    "logs": Handler(_logs),
    "rebirth": Handler(_rebirth),
    "restart": Handler(_restart, resume=_restarted),
    "update": Handler(
        _update, resume=_updated, timeout_s=UPDATE_TIMEOUT_S, resume_timeout_s=MAX_TRIAL_S + 600
    ),
}

Reply = Callable[..., None]


class CommandRunner:
    """Takes command payloads (event loop), answers through ``reply(id, name, state, **fields)``."""

    def __init__(
        self,
        board: Board,
        state: ControlState,
        reply: Reply,
        *,
        verify_key: str | None,
        logs: LogBuffer | None,
    ) -> None:
        self.board = board
        self.state = state
        self.reply = reply
        self.verify_key = verify_key
        self.logs = logs
        self.tasks: set[asyncio.Task[None]] = set()
        self.ran = 0

    def receive(self, payload: bytes) -> None:
        try:
            cmd = decode_as(Command, payload)
        except WireError as exc:
            log.error("ignoring a malformed command: %s", exc)
            return
        refused = self._check(cmd, payload)
        if refused is not None:
            log.warning("refused command %s (%s) from %s: %s", cmd.id, cmd.name, cmd.issued_by, refused)
            self.reply(cmd.id, cmd.name, "refused", error=refused)
            return
        expires = cmd.expires_at.timestamp()
        if not self.state.take(cmd.id, cmd.name, expires, cmd.args):
            log.warning(
                "refused command %s (%s): this id was taken before (sent twice or replayed)", cmd.id, cmd.name
            )
            self.reply(
                cmd.id,
                cmd.name,
                "refused",
                error="command id already used: run once, never again",
                result={"duplicate": True},
            )
            return
        if time.time() > expires:
            log.warning(
                "command %s (%s) expired at %s before it reached the board: not run",
                cmd.id,
                cmd.name,
                cmd.expires_at.isoformat(),
            )
            self.state.set_state(cmd.id, "expired", final=True)
            self.reply(cmd.id, cmd.name, "expired", error=f"expired at {cmd.expires_at.isoformat()}: not run")
            return
        task = asyncio.get_running_loop().create_task(self._run(cmd), name=f"cmd-{cmd.name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _check(self, cmd: Command, payload: bytes) -> str | None:
        if cmd.node != self.board.cfg.node:
            return f"command for node {cmd.node} reached board {self.board.cfg.node}"
        if self.verify_key is not None:
            try:
                crypto.verify(self.verify_key, json.loads(payload))
            except crypto.CryptoError as exc:
                return str(exc)
        if cmd.name not in HANDLERS:
            return f"unknown command {cmd.name!r} (this agent knows {', '.join(sorted(HANDLERS))})"
        try:
            command_args(cmd.name, cmd.args, strict=True)
        except WireError as exc:
            return str(exc)
        return None

    async def _run(self, cmd: Command) -> None:
        args = command_args(cmd.name, cmd.args, strict=True)
        self.reply(cmd.id, cmd.name, "accepted")
        log.info(
            "running command %s (%s) from %s",
            cmd.id,
            cmd.name,
            cmd.issued_by,
            extra={"command": cmd.name, "id": cmd.id},
        )

        def progress(text: str) -> None:
            self.state.set_state(cmd.id, "running")
            self.reply(cmd.id, cmd.name, "running", progress=text[:500])

        ctx = Context(self.board, cmd, args, self.logs, progress)
        handler = HANDLERS[cmd.name]
        self.ran += 1
        try:
            # in this task, so a handler that must hand over even when stopped (an update whose
            # trial began) can answer a cancellation with Deferred
            async with asyncio.timeout(handler.timeout_s):
                result = await handler.run(ctx)
        except Deferred as exc:
            self.state.defer(cmd.id, exc.handover)
            return
        except asyncio.CancelledError:
            self.state.set_state(cmd.id, "failed", final=True)
            self.reply(cmd.id, cmd.name, "failed", error="the agent stopped while the command ran")
            raise
        except TimeoutError:
            error = f"did not finish within {handler.timeout_s:.0f} s"
        except (Unsupported, Failed) as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("command %s (%s) failed", cmd.id, cmd.name)
            error = f"{type(exc).__name__}: {exc}"
        else:
            self.state.set_state(cmd.id, "done", final=True)
            self.reply(cmd.id, cmd.name, "done", result=result)
            return
        log.warning("command %s (%s) failed: %s", cmd.id, cmd.name, error)
        self.state.set_state(cmd.id, "failed", final=True)
        self.reply(cmd.id, cmd.name, "failed", error=error[:2000])

    def resume(self) -> None:
        """Finish what a previous agent process left: deferred commands through their handler's
        ``resume`` (on their own tasks), anything else cut short as ``failed``."""
        for rec in self.state.unfinished():
            handler = HANDLERS.get(rec.name)
            if rec.state == "running" and handler is not None and handler.resume is not None:
                task = asyncio.get_running_loop().create_task(
                    self._resume(handler, rec), name=f"resume-{rec.name}"
                )
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                continue
            self.state.set_state(rec.id, "failed", final=True)
            self.reply(rec.id, rec.name, "failed", error="the agent stopped while the command ran")

    async def _resume(self, handler: Handler, rec: CommandRecord) -> None:
        assert handler.resume is not None
        limit = handler.resume_timeout_s or handler.timeout_s
        try:
            async with asyncio.timeout(limit):
                result = await handler.resume(self.board, rec)
        except asyncio.CancelledError:
            raise  # the agent stops again: the next process resumes it
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                error = f"did not finish within {limit:.0f} s"
            elif isinstance(exc, Unsupported | Failed):
                error = str(exc)
            else:
                error = f"{type(exc).__name__}: {exc}"
            log.warning("command %s (%s) failed: %s", rec.id, rec.name, error)
            self.state.set_state(rec.id, "failed", final=True)
            self.reply(rec.id, rec.name, "failed", error=error[:2000])
            return
        self.state.set_state(rec.id, "done", final=True)
        self.reply(rec.id, rec.name, "done", result=result)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def diagnostics_base() -> dict[str, Any]:
    """Versions of what runs (the rest of ``diag`` comes from the agent)."""
    return {
        "agent_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
    }
