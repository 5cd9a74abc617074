"""The fleet's SQL state: each board's twin, the history of its desired versions, commands.

Keyed by node id (the board), so an inventory in SQL can join it later. Secrets never
reach these tables in clear: a desired document holds them sealed for the board (which
the cloud cannot open) or ``REDACTED``; the history keeps the same documents and the
names of the secrets each version set.

Command states: ``queued`` (stored; sent whenever the board is online, again every
``resend_s`` until it answers), ``delivered`` (the board accepted it; ``progress`` while
it runs), then ``done`` (with ``result``), ``failed`` (with ``error``: a handler error, a
refusal, or withdrawn before any board took it) or ``expired`` (its time-to-live ran out
before any board took it, or the board found it expired). Final states never change.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
    update,
)

from cloud.storage.schema import ensure_schema

metadata = MetaData()

twins = Table(
    "fleet_twins",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("commune", String(64), nullable=False, default=""),
    # desired (set in the cloud)
    Column("desired_version", Integer, nullable=False, default=0),
    Column("desired", Text),  # JSON, secrets sealed or REDACTED
    Column("desired_at", Float),
    Column("desired_by", String(64)),
    Column("published_at", Float),  # the broker acknowledged the retained message
    # reported (by the board)
    Column("report_state", String(16)),  # applied | rejected | reverted | stale
    Column("report_version", Integer),  # the version the last report answers
    Column("running_version", Integer),
    Column("tried_version", Integer),  # the highest version the board answered
    Column("good", Boolean),
    Column("report_error", Text),
    Column("reported", Text),  # JSON, secrets REDACTED
    Column("reported_at", Float),
    Column("board_key", String(64)),
    Column("agent_version", String(64)),
)

history = Table(
    "fleet_config_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node", String(64), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("config", Text, nullable=False),
    Column("secrets", Text, nullable=False, default="[]"),  # paths set as sealed secrets
    Column("at", Float, nullable=False),
    Column("by", String(64), nullable=False),
    Column("outcome", String(16)),  # what the board answered for this version
    Column("outcome_error", Text),
    Column("outcome_at", Float),
    UniqueConstraint("node", "version", name="uq_fleet_history_version"),
)

commands = Table(
    "fleet_commands",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("node", String(64), nullable=False, index=True),
    Column("commune", String(64), nullable=False, default=""),
    Column("name", String(32), nullable=False),
    Column("args", Text, nullable=False, default="{}"),
    Column("issued_by", String(64), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("sent_at", Float),
    Column("sends", Integer, nullable=False, default=0),
    Column("delivered_at", Float),
    Column("finished_at", Float),
    Column("progress", Text),
    Column("result", Text),
    Column("error", Text),
)

FINAL = frozenset({"done", "failed", "expired"})


@dataclass(frozen=True, slots=True)
class Twin:
    node: str
    commune: str
    desired_version: int
    desired: dict[str, Any] | None
    desired_at: float | None
    desired_by: str | None
    published_at: float | None
    report_state: str | None
    report_version: int | None
    running_version: int | None
    good: bool | None
    report_error: str | None
    reported: dict[str, Any] | None
    reported_at: float | None
    board_key: str | None
    agent_version: str | None

    @property
    def in_sync(self) -> bool:
        return self.desired_version == (self.running_version or 0) and bool(self.good)


@dataclass(frozen=True, slots=True)
class Version:
    node: str
    version: int
    config: dict[str, Any]
    secrets: list[str]
    at: float
    by: str
    outcome: str | None
    outcome_error: str | None
    outcome_at: float | None


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: str
    node: str
    commune: str
    name: str
    args: dict[str, Any]
    issued_by: str
    issued_at: float
    expires_at: float
    state: str
    sent_at: float | None
    sends: int
    delivered_at: float | None
    finished_at: float | None
    progress: str | None
    result: dict[str, Any] | None
    error: str | None


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _twin(r: Any) -> Twin:
    return Twin(
        node=r.node,
        commune=r.commune,
        desired_version=r.desired_version or 0,
        desired=_json(r.desired),
        desired_at=r.desired_at,
        desired_by=r.desired_by,
        published_at=r.published_at,
        report_state=r.report_state,
        report_version=r.report_version,
        running_version=r.running_version,
        good=r.good,
        report_error=r.report_error,
        reported=_json(r.reported),
        reported_at=r.reported_at,
        board_key=r.board_key,
        agent_version=r.agent_version,
    )


def _command(r: Any) -> CommandRow:
    return CommandRow(
        id=r.id,
        node=r.node,
        commune=r.commune,
        name=r.name,
        args=json.loads(r.args or "{}"),
        issued_by=r.issued_by,
        issued_at=r.issued_at,
        expires_at=r.expires_at,
        state=r.state,
        sent_at=r.sent_at,
        sends=r.sends or 0,
        delivered_at=r.delivered_at,
        finished_at=r.finished_at,
        progress=r.progress,
        result=_json(r.result),
        error=r.error,
    )


class FleetStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine, metadata)

    # -- twins -----------------------------------------------------------------------------

    def twin(self, node: str) -> Twin | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(twins).where(twins.c.node == node)).first()
        return _twin(r) if r is not None else None

    def twins(self) -> list[Twin]:
        with self.engine.connect() as conn:
            return [_twin(r) for r in conn.execute(select(twins).order_by(twins.c.node))]

    def _ensure(self, conn: Any, node: str, commune: str) -> None:
        if conn.execute(select(twins.c.node).where(twins.c.node == node)).first() is None:
            conn.execute(twins.insert().values(node=node, commune=commune, desired_version=0))

    def set_desired(
        self, node: str, commune: str, config: dict[str, Any], by: str, secrets: list[str]
    ) -> int:
        """Store a new desired version and return its number: above every version the board or
        the cloud has used, so the board never takes it for a stale one."""
        now = time.time()
        with self.engine.begin() as conn:
            self._ensure(conn, node, commune)
            r = conn.execute(select(twins).where(twins.c.node == node).with_for_update()).one()
            used = conn.execute(select(func.max(history.c.version)).where(history.c.node == node)).scalar()
            version = (
                max(r.desired_version or 0, r.running_version or 0, r.report_version or 0, used or 0) + 1
            )
            body = json.dumps(config, ensure_ascii=False)
            conn.execute(
                update(twins)
                .where(twins.c.node == node)
                .values(
                    commune=commune,
                    desired_version=version,
                    desired=body,
                    desired_at=now,
                    desired_by=by[:64],
                    published_at=None,
                )
            )
            conn.execute(
                history.insert().values(
                    node=node, version=version, config=body, secrets=json.dumps(secrets), at=now, by=by[:64]
                )
            )
        return version

    def published(self, node: str, version: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(twins)
                .where(and_(twins.c.node == node, twins.c.desired_version == version))
                .values(published_at=time.time())
            )

    def reported(
        self,
        node: str,
        commune: str,
        *,
        state: str,
        version: int,
        running: int,
        tried: int,
        good: bool,
        error: str | None,
        config: dict[str, Any],
        board_key: str | None,
        agent_version: str,
        at: float,
    ) -> None:
        with self.engine.begin() as conn:
            self._ensure(conn, node, commune)
            conn.execute(
                update(twins)
                .where(twins.c.node == node)
                .values(
                    report_state=state,
                    report_version=version,
                    running_version=running,
                    tried_version=tried,
                    good=good,
                    report_error=error,
                    reported=json.dumps(config, ensure_ascii=False),
                    reported_at=at,
                    board_key=board_key,
                    agent_version=agent_version[:64],
                )
            )
            h = history.c
            if version:
                outcome = "on_trial" if state == "applied" and not good else state
                conn.execute(
                    update(history)
                    .where(and_(h.node == node, h.version == version))
                    .values(outcome=outcome, outcome_error=error, outcome_at=at)
                )
            if good and running:  # a trial that ended well
                conn.execute(
                    update(history)
                    .where(and_(h.node == node, h.version == running, h.outcome == "on_trial"))
                    .values(outcome="applied", outcome_at=at)
                )

    def history(self, node: str, limit: int = 50) -> list[Version]:
        q = select(history).where(history.c.node == node).order_by(history.c.version.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                Version(
                    node=r.node,
                    version=r.version,
                    config=json.loads(r.config),
                    secrets=json.loads(r.secrets or "[]"),
                    at=r.at,
                    by=r.by,
                    outcome=r.outcome,
                    outcome_error=r.outcome_error,
                    outcome_at=r.outcome_at,
                )
                for r in conn.execute(q)
            ]

    # -- commands --------------------------------------------------------------------------

    def add_command(
        self,
        *,
        command_id: str,
        node: str,
        commune: str,
        name: str,
        args: dict[str, Any],
        issued_by: str,
        issued_at: float,
        expires_at: float,
    ) -> tuple[CommandRow, bool]:
        """Store a command; with an id already stored, the stored one and False (issued twice)."""
        body = json.dumps(args, sort_keys=True)
        with self.engine.begin() as conn:
            r = conn.execute(select(commands).where(commands.c.id == command_id)).first()
            if r is not None:
                return _command(r), False
            conn.execute(
                commands.insert().values(
                    id=command_id,
                    node=node,
                    commune=commune,
                    name=name,
                    args=body,
                    issued_by=issued_by[:64],
                    issued_at=issued_at,
                    expires_at=expires_at,
                    state="queued",
                    sends=0,
                )
            )
            r = conn.execute(select(commands).where(commands.c.id == command_id)).one()
        return _command(r), True

    def command(self, command_id: str) -> CommandRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(commands).where(commands.c.id == command_id)).first()
        return _command(r) if r is not None else None

    def commands(self, node: str | None = None, *, limit: int = 100) -> list[CommandRow]:
        q = select(commands)
        if node is not None:
            q = q.where(commands.c.node == node)
        q = q.order_by(commands.c.issued_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_command(r) for r in conn.execute(q)]

    def open_counts(self) -> dict[str, int]:
        """Commands queued or under way, per node."""
        c = commands.c
        q = select(c.node, func.count()).where(c.state.in_(("queued", "delivered"))).group_by(c.node)
        with self.engine.connect() as conn:
            return {node: int(n) for node, n in conn.execute(q)}

    def to_send(self, node: str | None, now: float, resend_s: float) -> list[CommandRow]:
        """Queued, unexpired commands (of ``node``) never sent or sent more than ``resend_s`` ago."""
        c = commands.c
        q = select(commands).where(and_(c.state == "queued", c.expires_at > now))
        if node is not None:
            q = q.where(c.node == node)
        q = q.where((c.sent_at.is_(None)) | (c.sent_at < now - resend_s)).order_by(c.issued_at)
        with self.engine.connect() as conn:
            return [_command(r) for r in conn.execute(q)]

    def sent(self, command_id: str, at: float) -> bool:
        """Note a send about to happen; False when the command is no longer queued (withdrawn,
        expired or answered meanwhile): then it must not go out."""
        c = commands.c
        with self.engine.begin() as conn:
            res = conn.execute(
                update(commands)
                .where(and_(c.id == command_id, c.state == "queued"))
                .values(sent_at=at, sends=c.sends + 1)
            )
        return bool(res.rowcount)

    def withdraw(self, command_ids: list[str], why: str) -> int:
        """Commands never sent to their board become ``failed`` and never will be; returns how
        many. One already sent stays as it is: it may wait in the broker's queue for its board
        or be running there (its reply still on the way), so only the board can say how it ends."""
        if not command_ids:
            return 0
        c = commands.c
        with self.engine.begin() as conn:
            res = conn.execute(
                update(commands)
                .where(and_(c.id.in_(command_ids), c.state == "queued", c.sent_at.is_(None)))
                .values(state="failed", finished_at=time.time(), error=f"withdrawn: {why}: never run"[:2000])
            )
        return int(res.rowcount or 0)

    def expire(self, now: float) -> list[CommandRow]:
        """Queued commands whose time ran out: ``expired``, never to be sent. Returns them."""
        c = commands.c
        with self.engine.begin() as conn:
            rows = [
                _command(r)
                for r in conn.execute(select(commands).where(and_(c.state == "queued", c.expires_at <= now)))
            ]
            for r in rows:
                conn.execute(
                    update(commands)
                    .where(and_(c.id == r.id, c.state == "queued"))
                    .values(
                        state="expired",
                        finished_at=now,
                        error="not delivered within its time-to-live (board offline?): never run",
                    )
                )
        return rows

    def replied(
        self,
        command_id: str,
        node: str,
        state: str,
        *,
        at: float,
        progress: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> CommandRow | None:
        """Apply a board's reply; None when the command is unknown, of another node, or final."""
        c = commands.c
        with self.engine.begin() as conn:
            r = conn.execute(select(commands).where(c.id == command_id)).first()
            if r is None or r.node != node or r.state in FINAL:
                return None
            values: dict[str, Any] = {}
            if state in ("accepted", "running"):
                values = {"state": "delivered", "delivered_at": r.delivered_at or at}
                if progress is not None:
                    values["progress"] = progress
            elif state == "done":
                values = {"state": "done", "finished_at": at, "result": json.dumps(result or {})}
            elif state in ("failed", "refused"):
                values = {"state": "failed", "finished_at": at, "error": f"{state}: {error or ''}"[:2000]}
            elif state == "expired":
                values = {"state": "expired", "finished_at": at, "error": error}
            if not values:
                return None
            values.setdefault("delivered_at", r.delivered_at or at)
            conn.execute(update(commands).where(c.id == command_id).values(**values))
            r = conn.execute(select(commands).where(c.id == command_id)).one()
        return _command(r)
