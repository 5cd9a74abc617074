"""Staged rollouts: a canary board first, then commune by commune, paused when a board fails.

A rollout is a list of stages (``[canary]``, then each commune's boards in the order
given); the next stage starts only when every board of this one has updated. Each board
gets its own ``update`` command, one of the fleet's commands: issued through an
``UpdateSender`` (the serve process binds it to ``FleetService.issue``: signed, queued
until the board is online, expiring, audited) and judged by its state in the fleet's
``commands`` table, the board's answer to exactly that command: ``done`` once the new
version runs and its launcher kept it; ``failed`` when the board refused the release,
could not install it, rolled back (the old version answers, with the launcher's reason) or
does not know the command (an older agent); ``expired`` when the board stayed offline. No
answer within ``timeout_s`` fails the board too. The first failure pauses the whole
rollout, so a bad release stops at the canary instead of reaching 59 boards. ``resume``
tries the failed boards again with new commands (or leaves them behind with
``skip_failed``), ``abort`` ends it and withdraws the commands that were never sent (their
boards stayed offline).

Which version a board runs comes from the ``nodes`` table (the ingest keeps each node's
last birth): a board already running the version counts as updated. Everything is in SQL,
so a restart of the cloud picks a rollout up where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, Text, select, update

from cloud.fleet.releases import ReleaseStore
from cloud.fleet.store import FleetStore
from cloud.inventory import Inventory
from cloud.storage.schema import ensure_schema
from wire.release import UpdateArgs

log = logging.getLogger(__name__)

metadata = MetaData()

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # running | paused | done | aborted
    Column("stage", Integer, nullable=False),
    Column("stages", Integer, nullable=False),
    Column("canary", String(64)),
    Column("timeout_s", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

rollout_nodes = Table(
    "rollout_nodes",
    metadata,
    Column("rollout_id", Integer, primary_key=True),
    Column("node", String(64), primary_key=True),
    Column("commune", String(64), nullable=False),
    Column("stage", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | updated | failed | skipped
    Column("from_version", String(64)),
    Column("sent_at", Float),
    Column("done_at", Float),
    Column("detail", Text, nullable=False),
    Column("command", String(64)),  # the id of its update command (GET /api/v1/fleet/commands/{id})
)

ACTIVE: Final = ("running", "paused")
#: Who issues the update commands (the command's ``issued_by``).
ISSUER: Final = "rollout"


class RolloutError(ValueError):
    """A rollout that cannot be started or changed; the text says why (API: 409/422)."""


class UpdateSender(Protocol):
    """Issues the ``update`` command to one board on the fleet's command channel; returns the
    command's id."""

    def __call__(
        self, node: str, commune: str, args: UpdateArgs, ttl_s: float, *, rollout: int
    ) -> Awaitable[str]: ...


NodeStates = Callable[[], dict[str, dict[str, Any]]]


class Rollouts:
    def __init__(
        self,
        engine: Engine,
        inventory: Inventory,
        releases: ReleaseStore,
        node_states: NodeStates,
        *,
        public_url: str,
        timeout_s: float,
        unavailable: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.inventory = inventory
        self.releases = releases
        self.node_states = node_states
        self.public_url = public_url.rstrip("/")
        self.timeout_s = timeout_s
        #: Why no rollout can run with this configuration (the fleet service is off); "": they can.
        self.unavailable = unavailable
        self.clock = clock
        self.commands = FleetStore(engine)
        ensure_schema(engine, metadata)

    # -- reads --------------------------------------------------------------------------------

    def get(self, rollout_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).first()
            if row is None:
                return None
            nodes = conn.execute(
                select(rollout_nodes)
                .where(rollout_nodes.c.rollout_id == rollout_id)
                .order_by(rollout_nodes.c.stage, rollout_nodes.c.node)
            ).all()
        doc = dict(row._mapping)
        doc["nodes"] = [dict(n._mapping) for n in nodes]
        doc["counts"] = {
            s: sum(n.state == s for n in nodes) for s in ("pending", "sent", "updated", "failed", "skipped")
        }
        return doc

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            ids = (
                conn.execute(select(rollouts.c.id).order_by(rollouts.c.id.desc()).limit(limit))
                .scalars()
                .all()
            )
        return [d for d in (self.get(i) for i in ids) if d is not None]

    def latest(self) -> dict[str, Any] | None:
        found = self.recent(1)
        return found[0] if found else None

    def _active(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(rollouts.c.id).where(rollouts.c.state.in_(ACTIVE))).scalars())

    # -- changes ------------------------------------------------------------------------------

    def stages(self, canary: str | None, communes: list[str] | None) -> list[list[tuple[str, str]]]:
        """[[canary]], then each commune's boards: (node, commune) pairs."""
        known = [c.id for c in self.inventory.communes]
        order = communes if communes is not None else known
        unknown = [c for c in order if c not in known]
        if unknown:
            raise RolloutError(f"unknown commune(s) {', '.join(unknown)} (known: {', '.join(known)})")
        out: list[list[tuple[str, str]]] = []
        if canary is not None:
            node = self.inventory.node(canary)
            if node is None:
                raise RolloutError(f"unknown canary board {canary!r}")
            out.append([(node.id, node.commune)])
        for commune in order:
            stage = [
                (n.id, n.commune) for n in self.inventory.nodes if n.commune == commune and n.id != canary
            ]
            if stage:
                out.append(stage)
        if not out:
            raise RolloutError("no board to update")
        return out

    def create(
        self,
        version: str,
        *,
        canary: str | None,
        communes: list[str] | None = None,
        timeout_s: float | None = None,
        created_by: str,
    ) -> dict[str, Any]:
        if self.unavailable:
            raise RolloutError(self.unavailable)
        rel = self.releases.get(version)
        if rel is None:
            raise RolloutError(f"version {version} is not published (commune-iot release publish BUNDLE)")
        if not self.public_url:
            raise RolloutError("releases.public_url is not set: boards would not know where to download")
        busy = self._active()
        if busy:
            raise RolloutError(f"rollout {busy[0]} is still running or paused; resume or abort it first")
        stages = self.stages(canary, communes)
        now = self.clock()
        with self.engine.begin() as conn:
            inserted = conn.execute(
                rollouts.insert().values(
                    version=version,
                    state="running",
                    stage=0,
                    stages=len(stages),
                    canary=canary,
                    timeout_s=timeout_s or self.timeout_s,
                    reason="",
                    url=f"{self.public_url}/api/v1/releases/{version}/",
                    manifest_sha256=rel.manifest_sha256,
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                )
            )
            rid = int(inserted.inserted_primary_key[0])  # type: ignore[index]
            conn.execute(
                rollout_nodes.insert(),
                [
                    {
                        "rollout_id": rid,
                        "node": node,
                        "commune": commune,
                        "stage": i,
                        "state": "pending",
                        "detail": "",
                    }
                    for i, stage in enumerate(stages)
                    for node, commune in stage
                ],
            )
        log.info("rollout %s of %s started by %s: %d stage(s)", rid, version, created_by, len(stages))
        doc = self.get(int(rid))
        assert doc is not None
        return doc

    def _set(self, rollout_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(rollouts).where(rollouts.c.id == rollout_id).values(updated_at=self.clock(), **values)
            )

    def resume(self, rollout_id: int, actor: str, *, skip_failed: bool = False) -> dict[str, Any]:
        doc = self.get(rollout_id)
        if doc is None:
            raise RolloutError(f"no rollout {rollout_id}")
        if doc["state"] != "paused":
            raise RolloutError(f"rollout {rollout_id} is {doc['state']}, not paused")
        if self.unavailable:
            raise RolloutError(self.unavailable)
        if self._active() != [rollout_id]:
            raise RolloutError("another rollout is active")
        with self.engine.begin() as conn:
            conn.execute(
                update(rollout_nodes)
                .where(
                    (rollout_nodes.c.rollout_id == rollout_id)
                    & (rollout_nodes.c.stage == doc["stage"])
                    & (rollout_nodes.c.state == "failed")
                )
                .values(
                    {"state": "skipped"}
                    if skip_failed
                    else {"state": "pending", "detail": "", "sent_at": None, "command": None}
                )
            )
        self._set(rollout_id, state="running", reason="")
        log.info(
            "rollout %s resumed by %s%s", rollout_id, actor, " (failed boards skipped)" if skip_failed else ""
        )
        out = self.get(rollout_id)
        assert out is not None
        return out

    def abort(self, rollout_id: int, actor: str) -> dict[str, Any]:
        doc = self.get(rollout_id)
        if doc is None:
            raise RolloutError(f"no rollout {rollout_id}")
        if doc["state"] not in ACTIVE:
            raise RolloutError(f"rollout {rollout_id} is already {doc['state']}")
        self._set(rollout_id, state="aborted", reason=f"aborted by {actor}")
        sent = [n["command"] for n in doc["nodes"] if n["state"] == "sent" and n["command"]]
        withdrawn = self.commands.withdraw(sent, f"rollout {rollout_id} aborted by {actor}")
        if withdrawn:
            log.info("rollout %s: %d update command(s) never sent withdrawn", rollout_id, withdrawn)
        out = self.get(rollout_id)
        assert out is not None
        return out

    # -- the engine ----------------------------------------------------------------------------

    async def advance(self, send: UpdateSender) -> None:
        """One step of every running rollout: send, judge, pause or move to the next stage."""
        for rid in self._active():
            doc = self.get(rid)
            if doc is None or doc["state"] != "running":
                continue
            states = await asyncio.to_thread(self.node_states)
            await self._step(doc, states, send)

    def halt(self) -> None:
        """Pause running rollouts when they cannot run here (``unavailable``): the reason shows."""
        for rid in self._active():
            doc = self.get(rid)
            if doc is not None and doc["state"] == "running":
                self._set(rid, state="paused", reason=self.unavailable)
                log.error("rollout %s paused: %s", rid, self.unavailable, extra={"rollout": rid})

    async def _step(self, doc: dict[str, Any], states: dict[str, dict[str, Any]], send: UpdateSender) -> None:
        rid, version, stage = doc["id"], doc["version"], doc["stage"]
        args = UpdateArgs(url=doc["url"], version=version, manifest_sha256=doc["manifest_sha256"])
        now = self.clock()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rollout_nodes).where(
                    (rollout_nodes.c.rollout_id == rid) & (rollout_nodes.c.stage == stage)
                )
            ).all()
        for row in rows:
            st = states.get(row.node, {})
            if row.state == "pending":
                if st.get("agent_version") == version and st.get("status") == "online":
                    self._node(rid, row.node, state="updated", done_at=now, detail="already runs it")
                    continue
                try:
                    # the command expires with the board's time: it must not run days later,
                    # outside any rollout
                    command = await send(row.node, row.commune, args, doc["timeout_s"], rollout=rid)
                except Exception as exc:  # the database may be busy: try again next step
                    log.warning("rollout %s: cannot issue the update to %s yet: %s", rid, row.node, exc)
                    continue
                self._node(
                    rid,
                    row.node,
                    state="sent",
                    sent_at=now,
                    from_version=st.get("agent_version"),
                    command=command,
                )
                log.info(
                    "rollout %s: update to %s issued to %s as command %s (stage %s)",
                    rid,
                    version,
                    row.node,
                    command,
                    stage,
                )
            elif row.state == "sent":
                verdict = self._judge(version, row, st, now, doc["timeout_s"])
                if verdict is not None:
                    state, detail = verdict
                    self._node(rid, row.node, state=state, done_at=now, detail=detail)
                    if state == "failed" and row.command:  # never sent: a resume sends a new one
                        self.commands.withdraw([row.command], f"rollout {rid}: board {row.node} failed")
                    log.log(
                        logging.INFO if state == "updated" else logging.WARNING,
                        "rollout %s: %s %s%s",
                        rid,
                        row.node,
                        state,
                        f": {detail}" if detail else "",
                        extra={"node": row.node, "rollout": rid},
                    )
        self._conclude(rid, stage, doc["stages"])

    def _judge(
        self, version: str, row: Any, st: dict[str, Any], now: float, timeout_s: float
    ) -> tuple[str, str] | None:
        cmd = self.commands.command(row.command) if row.command else None
        if cmd is not None and cmd.state == "done":
            return "updated", ""
        if cmd is not None and cmd.state in ("failed", "expired"):
            # the board's words as stored: "failed: ...", "refused: ..." (an older agent)
            return "failed", f"update command {cmd.error or cmd.state}"
        if now - float(row.sent_at) > timeout_s:
            runs = st.get("agent_version") or "nothing reported"
            seen = st.get("status") or "never seen"
            where = "missing" if cmd is None else cmd.state + (f": {cmd.progress}" if cmd.progress else "")
            return (
                "failed",
                f"did not finish the update to {version} within {timeout_s:g} s "
                f"(its command {where}; runs {runs}, {seen})",
            )
        return None

    def _node(self, rid: int, node: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(rollout_nodes)
                .where((rollout_nodes.c.rollout_id == rid) & (rollout_nodes.c.node == node))
                .values(**values)
            )

    def _conclude(self, rid: int, stage: int, stages: int) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rollout_nodes).where(
                    (rollout_nodes.c.rollout_id == rid) & (rollout_nodes.c.stage == stage)
                )
            ).all()
        failed = [r for r in rows if r.state == "failed"]
        if failed:
            first = failed[0]
            reason = f"board {first.node} failed: {first.detail}"
            self._set(rid, state="paused", reason=reason)
            log.error("rollout %s paused at stage %s: %s", rid, stage, reason, extra={"rollout": rid})
        elif all(r.state in ("updated", "skipped") for r in rows):
            if stage + 1 >= stages:
                self._set(rid, state="done", stage=stage + 1)
                log.info("rollout %s done", rid)
            else:
                self._set(rid, stage=stage + 1)
                log.info("rollout %s: stage %s done, starting stage %s", rid, stage, stage + 1)


async def run_rollouts(rollouts_: Rollouts, send: UpdateSender, interval_s: float) -> None:
    """The cloud service's rollout task (the ``serve`` process, with the fleet service)."""
    while True:
        try:
            await rollouts_.advance(send)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rollout step failed; trying again in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
