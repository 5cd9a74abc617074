"""Rotating OAuth tokens of a notifier (Zalo OA) in SQL, one row per notifier.

Zalo's refresh token is single-use: each refresh spends it and returns the next one, and
losing that one means re-authorising the app by hand. So the row is the only copy, and
it changes by compare-and-swap on ``generation``:

* a worker **claims** the row for one refresh (``claimed_by``/``claimed_until``, set only
  where the generation is the one it read and no live claim exists), so two workers, or
  two processes after a restart, never spend the same refresh token;
* the answer is **stored** in one UPDATE guarded by that generation, which bumps it;
* a claim whose worker died lapses after ``hold_s`` and the next worker goes on.

A worker killed between Zalo's answer and that UPDATE loses the new refresh token: the
next refresh is refused and reported as a problem (README: re-authorise).

The row also holds the notifier's current **problem** (refresh refused or failing); it is
set and cleared by conditional UPDATEs, and the hook that queues the notices about it runs
in the same transaction, so every worker sees the problem and exactly one announces it.
Tokens are never logged; the row's ``repr`` leaves them out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cloud.storage.schema import ensure_schema

metadata = MetaData()

oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("name", String(64), primary_key=True),  # the notifier's name
    Column("refresh_token", Text, nullable=False, default=""),
    Column("access_token", Text, nullable=False, default=""),
    Column("expires_at", Float, nullable=False, default=0.0),  # of the access token
    Column("seed_sha256", String(64), nullable=False, default=""),  # the configured token last taken
    Column("generation", Integer, nullable=False, default=0),
    Column("claimed_by", String(128), nullable=False, default=""),
    Column("claimed_until", Float, nullable=False, default=0.0),
    Column("refreshed_at", Float),
    Column("problem", String(64), nullable=False, default=""),  # "" while fine
    Column("problem_detail", Text, nullable=False, default=""),
    Column("problem_since", Float),
)


@dataclass(frozen=True, slots=True)
class TokenRow:
    name: str
    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    expires_at: float
    seed_sha256: str
    generation: int
    claimed_by: str
    claimed_until: float
    refreshed_at: float | None
    problem: str
    problem_detail: str
    problem_since: float | None


#: Runs inside the transaction that opens or clears a problem: queue the notices about it.
#: Gets the row as it was while the problem was open (problem, detail, since).
ProblemHook = Callable[[Connection, Literal["open", "resolve"], TokenRow, float], None]


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OAuthTokenStore:
    """Blocking SQL: call it from a thread, never on the event loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine, metadata)

    def load(self, name: str) -> TokenRow | None:
        with self.engine.begin() as conn:
            return self._row(conn, name)

    @staticmethod
    def _row(conn: Connection, name: str, *, lock: bool = False) -> TokenRow | None:
        query = select(oauth_tokens).where(oauth_tokens.c.name == name)
        row = conn.execute(query.with_for_update() if lock else query).one_or_none()
        return TokenRow(**row._mapping) if row is not None else None

    def seed(self, name: str, refresh_token: str) -> TokenRow:
        """Take the configured refresh token unless this one was taken before.

        A token seen before (same SHA-256) is spent or rotated already and is ignored; a
        new one (the technician re-authorised) replaces the stored chain at once.
        """
        digest = fingerprint(refresh_token)
        t = oauth_tokens.c
        fresh = {
            "refresh_token": refresh_token,
            "access_token": "",
            "expires_at": 0.0,
            "seed_sha256": digest,
            "claimed_by": "",
            "claimed_until": 0.0,
        }
        row = self.load(name)
        if row is not None and row.seed_sha256 == digest:
            return row  # the usual case: a read, no write
        if row is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(oauth_tokens.insert().values(name=name, generation=1, **fresh))
            except IntegrityError:  # another worker seeded it first
                pass
        with self.engine.begin() as conn:
            conn.execute(
                update(oauth_tokens)
                .where(t.name == name, t.seed_sha256 != digest)
                .values(generation=t.generation + 1, **fresh)
            )
            row = self._row(conn, name)
        assert row is not None
        return row

    def claim(self, name: str, generation: int, holder: str, now: float, hold_s: float) -> bool:
        """Take the row for one refresh; False when it changed or another worker holds it."""
        t = oauth_tokens.c
        with self.engine.begin() as conn:
            res = conn.execute(
                update(oauth_tokens)
                .where(
                    t.name == name,
                    t.generation == generation,
                    (t.claimed_until < now) | (t.claimed_by == holder),
                )
                .values(claimed_by=holder, claimed_until=now + hold_s)
            )
        return res.rowcount == 1

    def rotated(
        self,
        name: str,
        generation: int,
        *,
        access_token: str,
        refresh_token: str,
        expires_at: float,
        now: float,
        hook: ProblemHook | None = None,
    ) -> bool:
        """Store a refresh's answer (and clear any problem); False if the row moved meanwhile."""
        t = oauth_tokens.c
        with self.engine.begin() as conn:
            res = conn.execute(
                update(oauth_tokens)
                .where(t.name == name, t.generation == generation)
                .values(
                    refresh_token=refresh_token,
                    access_token=access_token,
                    expires_at=expires_at,
                    generation=generation + 1,
                    claimed_by="",
                    claimed_until=0.0,
                    refreshed_at=now,
                )
            )
            if res.rowcount != 1:
                return False
            self._clear_problem(conn, name, now, hook)
        return True

    def failed(
        self,
        name: str,
        holder: str,
        now: float,
        *,
        problem: str = "",
        detail: str = "",
        hook: ProblemHook | None = None,
    ) -> None:
        """A refresh did not succeed: release the claim and, when given, record the problem."""
        t = oauth_tokens.c
        with self.engine.begin() as conn:
            conn.execute(
                update(oauth_tokens)
                .where(t.name == name, t.claimed_by == holder)
                .values(claimed_by="", claimed_until=0.0)
            )
            if problem:
                self._set_problem(conn, name, problem, detail, now, hook)

    @staticmethod
    def _set_problem(
        conn: Connection, name: str, problem: str, detail: str, now: float, hook: ProblemHook | None
    ) -> None:
        t = oauth_tokens.c
        values = {"problem": problem, "problem_detail": detail[:300]}
        opened = conn.execute(
            update(oauth_tokens).where(t.name == name, t.problem == "").values(problem_since=now, **values)
        )
        if opened.rowcount != 1:  # already open: keep its start, say what is wrong now
            conn.execute(update(oauth_tokens).where(t.name == name).values(**values))
            return
        row = OAuthTokenStore._row(conn, name)
        if hook is not None and row is not None:
            hook(conn, "open", row, now)

    @staticmethod
    def _clear_problem(conn: Connection, name: str, now: float, hook: ProblemHook | None) -> None:
        row = OAuthTokenStore._row(conn, name, lock=True)
        if row is None or not row.problem:
            return
        t = oauth_tokens.c
        cleared = conn.execute(
            update(oauth_tokens)
            .where(t.name == name, t.problem != "")
            .values(problem="", problem_detail="", problem_since=None)
        )
        if cleared.rowcount == 1 and hook is not None:
            hook(conn, "resolve", row, now)
