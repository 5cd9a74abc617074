"""The board's control plane: desired configuration and commands in, reports and replies out.

Wired by the agent (``edge.runtime``) to its MQTT link (the ``config`` and ``cmd`` topics of
this node) and to its outbox (``reported`` and ``reply`` go out like all data, so nothing
is lost to a dropped link). Configurations are applied one at a time, live where the
collector allows; a version on trial is watched every second until it proves good or its
time runs out and the last good one comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edge.collectors.base import JobState
from edge.config import EdgeConfig, reported
from edge.control.commands import CommandRunner
from edge.control.logbuf import LogBuffer
from edge.control.state import ControlState, board_key
from edge.control.twin import Apply, Ignore, Refuse, Twin
from wire import CommandReply, ConfigReport, crypto, encode
from wire.topics import Channel, topic_for
from wire.version import __version__

if TYPE_CHECKING:
    from edge.runtime import Agent

log = logging.getLogger(__name__)


class Control:
    def __init__(self, local: EdgeConfig) -> None:
        self.local = local
        self.cfg = local.control
        self.state = ControlState(local.state_dir)
        self.key = board_key(local.state_dir)
        self.public_key = crypto.board_public_b64(self.key)
        self.twin = Twin(local, self.state, self.key, self.cfg.cloud_public_key)
        self.logs = LogBuffer(self.cfg.log_lines) if self.cfg.log_lines else None
        self.config_topic = topic_for(local.commune, local.node, Channel.CONFIG)
        self.cmd_topic = topic_for(local.commune, local.node, Channel.CMD)
        self._agent: Agent | None = None
        self.runner: CommandRunner | None = None
        self._apply_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._trial: asyncio.Task[None] | None = None

    @property
    def topics(self) -> list[str]:
        return [self.config_topic, self.cmd_topic]

    @property
    def version(self) -> int:
        return self.twin.st.running

    def startup_config(self) -> EdgeConfig:
        return self.twin.startup()

    # -- lifecycle (event loop) ----------------------------------------------------------------

    def start(self, agent: Agent) -> None:
        self._agent = agent
        if self.logs is not None:
            logging.getLogger().addHandler(self.logs)
        self.runner = CommandRunner(
            agent, self.state, self._reply, verify_key=self.cfg.cloud_public_key, logs=self.logs
        )
        self.runner.resume()
        self.report()
        self._trial = asyncio.create_task(self._watch(), name="config-trial")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
        for task in [*self._tasks, *([self._trial] if self._trial else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.logs is not None:
            logging.getLogger().removeHandler(self.logs)

    def close(self) -> None:
        self.state.close()

    # -- messages from the link ----------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.cmd_topic and self.runner is not None:
            self.runner.receive(payload)
        elif topic == self.config_topic:
            task = asyncio.get_running_loop().create_task(self._desired(payload), name="config-apply")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _desired(self, payload: bytes) -> None:
        agent = self._agent
        assert agent is not None
        async with self._apply_lock:
            decision = self.twin.receive(payload)
            if isinstance(decision, Ignore):
                return
            if isinstance(decision, Refuse):
                log.warning(
                    "configuration version %d %s: %s", decision.version, decision.state, decision.error
                )
                self.twin.refused(decision)
                self.report()
                return
            await self._apply(agent, decision)

    async def _apply(self, agent: Agent, decision: Apply) -> None:
        failing_before = [s.detail for s in self.job_states() if s.ok is False]
        previous = agent.cfg
        try:
            await agent.apply_config(decision.config)
        except Exception as exc:
            log.exception(
                "configuration version %d could not be applied; keeping the previous one", decision.version
            )
            with contextlib.suppress(Exception):
                await agent.apply_config(previous)
            self.twin.rejected(decision.version, f"apply failed: {type(exc).__name__}: {exc}"[:2000])
            self.report()
            return
        # On trial only when the board was doing its job before: a change made while (say) the
        # camera is off cannot be judged by the camera, and must not be reverted for it.
        trial = not failing_before
        self.twin.applied(decision.version, decision.doc, trial=trial)
        how = (
            f"; on trial for up to {self.cfg.revert_after_s:g} s"
            if trial
            else f" (no trial: the board was already failing: {'; '.join(failing_before)})"
        )
        log.info("configuration version %d applied%s", decision.version, how)
        self.report()

    # -- last known good -----------------------------------------------------------------------

    def job_states(self) -> list[JobState]:
        agent = self._agent
        if agent is None:
            return []
        states = [c.job_state() for c in agent.collectors()]
        broker = agent.link.connected
        states.append(JobState(broker, "" if broker else f"broker unreachable at {agent.link.url}"))
        return states

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.cfg.revert_after_s / 4))
            async with self._apply_lock:
                if self.twin.on_trial:
                    await self._judge()

    async def _judge(self) -> None:
        agent = self._agent
        assert agent is not None
        states = self.job_states()
        version = self.twin.st.running
        if all(s.ok is True for s in states):
            self.twin.confirm()
            log.info("configuration version %d is good: the board does its job with it", version)
            self.report()
            return
        since = self.twin.st.trial_since or time.time()
        if time.time() - since < self.cfg.revert_after_s:
            return
        problems = "; ".join(s.detail for s in states if s.ok is not True) or "not confirmed"
        lkg = self.twin.st.lkg
        reason = (
            f"version {version} left the board unable to do its job for {self.cfg.revert_after_s:g} s "
            f"({problems}); back to the last good version {lkg}"
        )
        log.error("reverting configuration: %s", reason, extra={"config_version": lkg})
        cfg = self.twin.revert(reason)
        try:
            await agent.apply_config(cfg)
        except Exception:
            log.exception("could not apply the last good configuration; restarting the agent with it")
            agent.request_restart()
        self.report()

    # -- what goes out -------------------------------------------------------------------------

    def report(self) -> None:
        agent = self._agent
        if agent is None:
            return
        st = self.twin.st
        msg = ConfigReport(
            node=self.local.node,
            session=agent.session,
            seq=0,
            ts=datetime.now(UTC),
            state=st.state,
            version=st.version,
            running=st.running,
            tried=st.tried,
            good=st.good,
            error=st.error,
            config=reported(agent.cfg.managed()),
            board_key=self.public_key,
            agent_version=__version__,
        )
        agent.emit_control(Channel.REPORTED, encode(msg))

    def _reply(self, command_id: str, name: str, state: str, **fields: Any) -> None:
        agent = self._agent
        assert agent is not None
        msg = CommandReply(
            node=self.local.node,
            session=agent.session,
            seq=0,
            ts=datetime.now(UTC),
            id=command_id,
            name=name,
            state=state,
            **fields,
        )
        agent.emit_control(Channel.REPLY, encode(msg))
