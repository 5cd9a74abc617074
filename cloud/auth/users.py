"""Users, login sessions, API tokens and login throttling, in the cloud's SQL database.

Secrets are never stored: a session cookie and an API token are random 256-bit strings
of which only the SHA-256 is kept, so a copy of the database lets nobody log in. A
disabled user's sessions and tokens stop working at once (checked on every request);
disabling a user or changing the password also ends the sessions and revokes the API
tokens for good, so neither re-enabling nor the old password brings them back.

Failed logins slow down the name under attack progressively, but an address the user
has logged in from before is judged on its own failures only: a stranger who knows the
name cannot lock the user out of their usual place.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cloud.auth.passwords import (
    DUMMY_HASH,
    check_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from cloud.auth.principal import Principal
from cloud.auth.roles import Role, parse_roles
from cloud.storage.schema import ensure_schema

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(128), nullable=False, default=""),
    Column("roles", String(128), nullable=False),  # comma-separated Role values
    Column("communes", Text, nullable=False, default=""),  # comma-separated; police scope
    Column("password_hash", Text, nullable=False),
    Column("disabled", Integer, nullable=False, server_default="0"),
    Column("lang", String(8), nullable=False, server_default="vi"),
    Column("created_at", Float, nullable=False),
    Column("password_changed_at", Float, nullable=False),
)

sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the cookie value
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("ip", String(64), nullable=False, default=""),
    Column("user_agent", String(256), nullable=False, default=""),
)

tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("last_used", Float),
    Column("revoked", Integer, nullable=False, server_default="0"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("username", String(64), nullable=False, index=True),
    Column("ip", String(64), nullable=False, index=True),
)

login_addresses = Table(
    "login_addresses",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("ip", String(64), primary_key=True),
    Column("last_ok", Float, nullable=False),
)

TOKEN_PREFIX = "ciot_"


class UserError(ValueError):
    """A user command that cannot be done (unknown user, duplicate name, weak password)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    roles: frozenset[Role]
    communes: frozenset[str]
    disabled: bool
    lang: str
    created_at: float

    @classmethod
    def from_row(cls, r: Any) -> User:
        return cls(
            id=r.id,
            username=r.username,
            display_name=r.display_name,
            roles=parse_roles(r.roles),
            communes=frozenset(c for c in r.communes.split(",") if c),
            disabled=bool(r.disabled),
            lang=r.lang,
            created_at=r.created_at,
        )


@dataclass(frozen=True, slots=True)
class LoginLimits:
    window_s: float = 900.0
    per_user: int = 5  # failures of one name in the window before each attempt must wait
    per_ip: int = 20  # failures from one address in the window before it is locked out
    backoff_s: float = 30.0  # the first wait; doubled per further failure, capped at window_s


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class UserStore:
    def __init__(
        self, engine: Engine, *, session_ttl_s: float = 12 * 3600, limits: LoginLimits | None = None
    ):
        self.engine = engine
        self.session_ttl_s = session_ttl_s
        self.limits = limits or LoginLimits()
        ensure_schema(engine, metadata)

    # ------------------------------------------------------------------ users
    def add(
        self,
        username: str,
        password: str,
        roles: frozenset[Role],
        *,
        communes: frozenset[str] = frozenset(),
        display_name: str = "",
        lang: str = "vi",
    ) -> User:
        if not username or len(username) > 64 or not username.replace("-", "").replace(".", "").isalnum():
            raise UserError("user name: 1-64 letters, digits, '-' or '.'")
        if Role.POLICE in roles and not communes:
            raise UserError("a police user needs at least one commune (--commune)")
        try:
            check_policy(password)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        now = time.time()
        try:
            with self.engine.begin() as conn:
                res = conn.execute(
                    users.insert().values(
                        username=username,
                        display_name=display_name or username,
                        roles=",".join(sorted(r.value for r in roles)),
                        communes=",".join(sorted(communes)),
                        password_hash=hash_password(password),
                        lang=lang,
                        created_at=now,
                        password_changed_at=now,
                    )
                )
        except IntegrityError:
            raise UserError(f"user {username!r} exists") from None
        pk = res.inserted_primary_key
        assert pk is not None
        user = self.get(int(pk[0]))
        assert user is not None
        return user

    def get(self, user_id: int) -> User | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(users).where(users.c.id == user_id)).first()
        return User.from_row(r) if r is not None else None

    def by_name(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(users).where(users.c.username == username)).first()
        return User.from_row(r) if r is not None else None

    def all(self) -> list[User]:
        with self.engine.connect() as conn:
            return [User.from_row(r) for r in conn.execute(select(users).order_by(users.c.username))]

    def _need(self, username: str) -> User:
        u = self.by_name(username)
        if u is None:
            raise UserError(f"no user {username!r}")
        return u

    def set_disabled(self, username: str, disabled: bool = True) -> int:
        """Disable (sessions end, API tokens revoked: re-enabling revives none) or enable.

        Returns the number of tokens revoked."""
        u = self._need(username)
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == u.id).values(disabled=int(disabled)))
            if not disabled:
                return 0
            return _end_logins(conn, u.id)

    def set_password(self, username: str, password: str) -> int:
        """New password; every session ends and every API token is revoked (whoever stole the old
        password keeps nothing). Returns the number of tokens revoked."""
        u = self._need(username)
        try:
            check_policy(password)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        with self.engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == u.id)
                .values(password_hash=hash_password(password), password_changed_at=time.time())
            )
            return _end_logins(conn, u.id)

    def set_lang(self, user_id: int, lang: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(lang=lang))

    # ------------------------------------------------------------------ login
    def throttled(self, username: str, ip: str, now: float | None = None) -> float:
        """Seconds until a login for ``username`` from ``ip`` may be tried again; 0: allowed.

        From an address the user logged in from before, only that address's failures for the
        name count; from anywhere else, all failures of the name do."""
        now = time.time() if now is None else now
        lim = self.limits
        since = now - lim.window_s
        f, k = login_failures.c, login_addresses.c
        username, ip = username[:64], ip[:64]
        with self.engine.connect() as conn:
            known = conn.execute(select(k.last_ok).where(k.username == username, k.ip == ip)).first()
            by_user_q = select(func.count(), func.max(f.at)).where(f.username == username, f.at >= since)
            if known is not None:
                by_user_q = by_user_q.where(f.ip == ip)
            by_user = conn.execute(by_user_q).one()
            by_ip = conn.execute(select(func.count(), func.min(f.at)).where(f.ip == ip, f.at >= since)).one()
        waits = [0.0]
        if by_user[0] >= lim.per_user:
            delay = min(lim.window_s, lim.backoff_s * 2 ** min(by_user[0] - lim.per_user, 30))
            waits.append(by_user[1] + delay - now)
        if by_ip[0] >= lim.per_ip:
            waits.append(by_ip[1] + lim.window_s - now)
        return max(waits)

    def authenticate(self, username: str, password: str, ip: str) -> User | None:
        """The user when name and password match and the user is enabled; failures are counted."""
        with self.engine.connect() as conn:
            r = conn.execute(select(users).where(users.c.username == username)).first()
        ok = verify_password(r.password_hash if r is not None else DUMMY_HASH, password)
        now = time.time()
        if r is None or not ok or r.disabled:
            with self.engine.begin() as conn:
                conn.execute(login_failures.insert().values(at=now, username=username[:64], ip=ip[:64]))
                conn.execute(delete(login_failures).where(login_failures.c.at < now - 86400))
            return None
        if needs_rehash(r.password_hash):
            with self.engine.begin() as conn:
                conn.execute(
                    update(users).where(users.c.id == r.id).values(password_hash=hash_password(password))
                )
        f, k = login_failures.c, login_addresses.c
        with self.engine.begin() as conn:
            # A success clears this address's failures for the name (not a stranger's elsewhere)
            # and makes the address one the user is known to log in from.
            conn.execute(delete(login_failures).where(f.username == r.username, f.ip == ip[:64]))
            seen = conn.execute(
                update(login_addresses).where(k.username == r.username, k.ip == ip[:64]).values(last_ok=now)
            )
        if not seen.rowcount:
            # (a concurrent login from the same place may have recorded it: that is as good)
            with contextlib.suppress(IntegrityError), self.engine.begin() as conn:
                conn.execute(login_addresses.insert().values(username=r.username, ip=ip[:64], last_ok=now))
        return User.from_row(r)

    # ------------------------------------------------------------------ sessions
    def open_session(self, user: User, ip: str, user_agent: str) -> tuple[str, str]:
        """A new session: (cookie value, CSRF token). Only the cookie's hash is stored."""
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                sessions.insert().values(
                    id=_sha(cookie),
                    user_id=user.id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + self.session_ttl_s,
                    last_seen=now,
                    ip=ip[:64],
                    user_agent=user_agent[:256],
                )
            )
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
        return cookie, csrf

    def session_principal(self, cookie: str) -> Principal | None:
        now = time.time()
        sid = _sha(cookie)
        q = (
            select(sessions.c.csrf, sessions.c.last_seen, users)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.id == sid, sessions.c.expires_at > now, users.c.disabled == 0)
        )
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        if r is None:
            return None
        if now - r.last_seen > 60:  # keep writes rare: last_seen to the minute
            with self.engine.begin() as conn:
                conn.execute(update(sessions).where(sessions.c.id == sid).values(last_seen=now))
        u = User.from_row(r)
        return _principal(u, "session", session_id=sid, csrf=r.csrf)

    def close_session(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id == session_id))

    # ------------------------------------------------------------------ API tokens
    def create_token(self, username: str, name: str, ttl_s: float | None = None) -> str:
        """A new API token for scripts; shown once, stored as its hash."""
        u = self._need(username)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                tokens.insert().values(
                    hash=_sha(token),
                    user_id=u.id,
                    name=name[:64],
                    created_at=now,
                    expires_at=now + ttl_s if ttl_s else None,
                )
            )
        return token

    def revoke_tokens(self, username: str, name: str | None = None) -> int:
        u = self._need(username)
        cond = [tokens.c.user_id == u.id]
        if name is not None:
            cond.append(tokens.c.name == name)
        with self.engine.begin() as conn:
            return int(conn.execute(update(tokens).where(and_(*cond)).values(revoked=1)).rowcount or 0)

    def token_principal(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        now = time.time()
        q = (
            select(tokens.c.id.label("token_id"), tokens.c.expires_at, tokens.c.last_used, users)
            .join(users, users.c.id == tokens.c.user_id)
            .where(tokens.c.hash == _sha(token), tokens.c.revoked == 0, users.c.disabled == 0)
        )
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        if r is None or (r.expires_at is not None and r.expires_at <= now):
            return None
        if r.last_used is None or now - r.last_used > 60:
            with self.engine.begin() as conn:
                conn.execute(update(tokens).where(tokens.c.id == r.token_id).values(last_used=now))
        return _principal(User.from_row(r), "token")


def _end_logins(conn: Any, user_id: int) -> int:
    """End every session of the user and revoke every token; the number of tokens revoked."""
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
    res = conn.execute(
        update(tokens).where(tokens.c.user_id == user_id, tokens.c.revoked == 0).values(revoked=1)
    )
    return int(res.rowcount or 0)


def _principal(u: User, via: Any, *, session_id: str | None = None, csrf: str | None = None) -> Principal:
    return Principal(
        user_id=u.id,
        username=u.username,
        display_name=u.display_name,
        roles=u.roles,
        communes=u.communes,
        via=via,
        session_id=session_id,
        csrf_token=csrf,
        lang=u.lang,
    )
