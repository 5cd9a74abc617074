"""Alert lifecycle, maintenance windows and the evaluator lease in SQL.

Lifecycle: open -> acknowledged (by whom, when, comment) -> resolved (with the outage's
duration). Writes are idempotent so that a second evaluator, a restart or a replayed
change cannot duplicate an alert: at most one unresolved row per alert key is enforced by
a unique index on ``active_key`` (the key while unresolved, NULL once resolved; both
SQLite and PostgreSQL allow many NULLs). One evaluator at a time holds the lease row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cloud.alerting.engine import Cause, Change, Scope, Severity
from cloud.alerting.maintenance import Window
from cloud.storage.schema import ensure_schema

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(160), nullable=False, index=True),
    Column("active_key", String(160)),  # = key while unresolved, NULL after
    Column("scope", String(16), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("commune", String(64), nullable=False, index=True),
    Column("cause", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("problem", String(64), nullable=False, default=""),
    Column("detail", String(160), nullable=False, server_default=""),  # device problems: the figures
    Column("state", String(16), nullable=False),  # open | acknowledged | resolved
    Column("started_at", Float, nullable=False),  # outage start: just after the last message heard
    Column("opened_at", Float, nullable=False),
    Column("resolved_at", Float),  # when the recovery was confirmed (recovery_s after ended_at)
    Column("ended_at", Float),  # outage end: the first message after it (NULL on rows before it was kept)
    Column("duration_s", Float),  # ended_at - started_at
    Column("flaps", Integer, nullable=False, default=0),
    Column("down", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False, default=0),
    Column("members", Text, nullable=False, default=""),  # commune alerts: the nodes down, comma-separated
    Column("acked_by", String(128)),
    Column("acked_at", Float),
    Column("ack_comment", Text),
    Column("silenced_until", Float),
    Column("suppressed", Integer, nullable=False, default=0),  # opened during maintenance or silence
    Column("notified_at", Float),  # last notice sent (open or reminder); NULL: never announced
    Column("reminders", Integer, nullable=False, default=0),
    # device alerts: the picture that shows the problem (a tampered camera's), in the snapshot store
    Column("snapshot_sha256", String(64)),
    Index("ux_alerts_active_key", "active_key", unique=True),
)

maintenance = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_kind", String(16), nullable=False),
    Column("target", String(64), nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float),
    Column("weekdays", String(16), nullable=False, default=""),  # "1,3" = Tue, Thu
    Column("local_start", String(5), nullable=False, default=""),
    Column("duration_s", Float, nullable=False, default=0.0),
    Column("tz", String(64), nullable=False),
    Column("comment", Text, nullable=False, default=""),
)

leases = Table(
    "alert_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    key: str
    scope: str
    subject: str
    commune: str
    cause: str
    severity: str
    problem: str
    detail: str
    state: str
    started_at: float
    opened_at: float
    resolved_at: float | None
    ended_at: float | None
    duration_s: float | None
    flaps: int
    down: int
    total: int
    members: tuple[str, ...]
    acked_by: str | None
    acked_at: float | None
    ack_comment: str | None
    silenced_until: float | None
    suppressed: bool
    notified_at: float | None
    reminders: int
    snapshot_sha256: str | None = None

    @property
    def end(self) -> float | None:
        """When the outage ended (None while it lasts); rows resolved before ``ended_at`` was
        kept end at their resolution."""
        return self.ended_at if self.ended_at is not None else self.resolved_at

    @classmethod
    def of(cls, row: Any) -> AlertRow:
        m = dict(row._mapping)
        m.pop("active_key", None)
        m["suppressed"] = bool(m["suppressed"])
        m["members"] = tuple(x for x in (m["members"] or "").split(",") if x)
        return cls(**m)

    def as_change(self) -> Change:
        """The engine's view of an alert still open (to restore it after a restart)."""
        return Change(
            "open",
            self.key,
            Scope(self.scope),
            self.subject,
            self.commune,
            Cause(self.cause),
            Severity(self.severity),
            self.started_at,
            self.opened_at,
            flaps=self.flaps,
            down=self.down,
            total=self.total,
            problem=self.problem,
            detail=self.detail,
            members=self.members,
            snapshot_sha256=self.snapshot_sha256 or "",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: What follows from a recorded change, in its transaction (see ``AlertStore.apply``).
Then = Callable[[Connection, AlertRow], None]


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine, metadata)

    # ------------------------------------------------------------------ lifecycle
    def apply(self, change: Change, *, suppressed: bool = False, then: Then | None = None) -> AlertRow | None:
        """Record an engine change; returns the row, or None when it was already recorded.

        ``then`` runs inside the same transaction with the recorded row, so what follows
        from the change (queueing its notices) is committed with it or not at all.
        """
        if change.kind == "open":
            try:
                with self.engine.begin() as conn:
                    res = conn.execute(
                        alerts.insert().values(
                            key=change.key,
                            active_key=change.key,
                            scope=change.scope.value,
                            subject=change.subject,
                            commune=change.commune,
                            cause=change.cause.value,
                            severity=change.severity.value,
                            problem=change.problem,
                            detail=change.detail,
                            state="open",
                            started_at=change.started_at,
                            opened_at=change.at,
                            flaps=change.flaps,
                            down=change.down,
                            total=change.total,
                            members=",".join(change.members),
                            suppressed=int(suppressed),
                            snapshot_sha256=change.snapshot_sha256 or None,
                        )
                    )
                    pk = res.inserted_primary_key
                    assert pk is not None
                    row = AlertRow.of(conn.execute(select(alerts).where(alerts.c.id == pk[0])).one())
                    if then is not None:
                        then(conn, row)
                    return row
            except IntegrityError:
                return None  # another evaluator (or an earlier run) opened it already
        with self.engine.begin() as conn:
            active = alerts.c.active_key == change.key
            current = conn.execute(select(alerts).where(active)).one_or_none()
            if current is None:
                return None
            if change.kind == "update":
                conn.execute(
                    update(alerts)
                    .where(active)
                    .values(
                        flaps=change.flaps,
                        down=change.down,
                        total=change.total,
                        members=",".join(change.members),
                    )
                )
            else:
                conn.execute(
                    update(alerts)
                    .where(active)
                    .values(
                        active_key=None,
                        state="resolved",
                        resolved_at=change.at,
                        ended_at=change.ended_at,
                        duration_s=change.duration_s,
                        flaps=change.flaps,
                    )
                )
            recorded = AlertRow.of(conn.execute(select(alerts).where(alerts.c.id == current.id)).one())
            if then is not None:
                then(conn, recorded)
            return recorded

    def acknowledge(self, alert_id: int, by: str, at: float, comment: str = "") -> AlertRow | None:
        """Acknowledge an open alert (reminders stop); None when there is no such open alert."""
        with self.engine.begin() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id, alerts.c.state == "open")
                .values(state="acknowledged", acked_by=by, acked_at=at, ack_comment=comment)
            )
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one_or_none()
        return AlertRow.of(row) if row is not None else None

    def silence(self, alert_id: int, until: float) -> AlertRow | None:
        with self.engine.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(silenced_until=until))
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one_or_none()
        return AlertRow.of(row) if row is not None else None

    @staticmethod
    def set_suppressed(conn: Connection, alert_id: int) -> None:
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(suppressed=1))

    @staticmethod
    def set_notified(conn: Connection, alert_id: int, at: float, *, reminder: bool = False) -> None:
        values: dict[str, Any] = {"notified_at": at}
        if reminder:
            values["reminders"] = alerts.c.reminders + 1
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))

    def transaction(self, body: Callable[[Connection], None]) -> None:
        with self.engine.begin() as conn:
            body(conn)

    # ------------------------------------------------------------------ reads
    def get(self, alert_id: int) -> AlertRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one_or_none()
        return AlertRow.of(row) if row is not None else None

    def unresolved(self) -> list[AlertRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts).where(alerts.c.active_key.is_not(None)).order_by(alerts.c.id))
            return [AlertRow.of(r) for r in rows]

    def query(
        self,
        *,
        state: str | None = None,
        commune: str | None = None,
        scope: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        limit: int = 100,
        communes: frozenset[str] | None = None,
    ) -> list[AlertRow]:
        """Newest first; ``state='active'`` means open or acknowledged; ``communes``: only
        these (a scoped caller's), None: all."""
        q = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if state == "active":
            q = q.where(alerts.c.active_key.is_not(None))
        elif state is not None:
            q = q.where(alerts.c.state == state)
        if commune is not None:
            q = q.where(alerts.c.commune == commune)
        if scope is not None:
            q = q.where(alerts.c.scope == scope)
        if subject is not None:
            q = q.where(alerts.c.subject == subject)
        if since is not None:
            q = q.where(or_(alerts.c.resolved_at.is_(None), alerts.c.resolved_at >= since))
        if communes is not None:
            q = q.where(alerts.c.commune.in_(sorted(communes)))
        with self.engine.connect() as conn:
            return [AlertRow.of(r) for r in conn.execute(q)]

    # ------------------------------------------------------------------ maintenance
    def add_window(self, w: Window) -> Window:
        with self.engine.begin() as conn:
            res = conn.execute(
                maintenance.insert().values(
                    target_kind=w.target_kind,
                    target=w.target,
                    starts_at=w.starts_at,
                    ends_at=w.ends_at,
                    weekdays=",".join(str(d) for d in sorted(w.weekdays)),
                    local_start=w.local_start,
                    duration_s=w.duration_s,
                    tz=w.tz,
                    comment=w.comment,
                )
            )
            pk = res.inserted_primary_key
        assert pk is not None
        return Window(**{**_window_fields(w), "id": int(pk[0])})

    def update_window(self, w: Window) -> bool:
        """Replace window ``w.id`` with ``w``; False when there is no such window."""
        fields = {k: v for k, v in _window_fields(w).items() if k != "id"}
        fields["weekdays"] = ",".join(str(d) for d in sorted(w.weekdays))
        with self.engine.begin() as conn:
            res = conn.execute(update(maintenance).where(maintenance.c.id == w.id).values(**fields))
            return bool(res.rowcount)

    def delete_window(self, window_id: int) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(maintenance.delete().where(maintenance.c.id == window_id)).rowcount)

    def windows(self, now: float | None = None) -> list[Window]:
        """All windows; with ``now``, only those not over yet."""
        q = select(maintenance).order_by(maintenance.c.id)
        if now is not None:
            q = q.where(or_(maintenance.c.ends_at.is_(None), maintenance.c.ends_at > now))
        with self.engine.connect() as conn:
            return [
                Window(
                    target_kind=r.target_kind,
                    target=r.target,
                    starts_at=r.starts_at,
                    ends_at=r.ends_at,
                    weekdays=frozenset(int(d) for d in r.weekdays.split(",") if d),
                    local_start=r.local_start,
                    duration_s=r.duration_s,
                    tz=r.tz,
                    comment=r.comment,
                    id=r.id,
                )
                for r in conn.execute(q)
            ]

    # ------------------------------------------------------------------ lease
    def try_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        """Take or renew the lease ``name``; True while ``holder`` is the one evaluator."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(leases)
                .where(
                    leases.c.name == name,
                    or_(leases.c.holder == holder, leases.c.expires_at < now),
                )
                .values(holder=holder, expires_at=now + ttl_s)
            )
            if res.rowcount:
                return True
            exists = conn.execute(select(leases.c.name).where(leases.c.name == name)).first()
            if exists is not None:
                return False
        try:
            with self.engine.begin() as conn:
                conn.execute(leases.insert().values(name=name, holder=holder, expires_at=now + ttl_s))
        except IntegrityError:
            return False  # another worker created it in between
        return True

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(leases.delete().where(and_(leases.c.name == name, leases.c.holder == holder)))


def _window_fields(w: Window) -> dict[str, Any]:
    return {f: getattr(w, f) for f in Window.__dataclass_fields__}
