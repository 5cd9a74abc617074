"""The audit trail's rules without a server (issue 17): the hash chain covers the user agent
while older rows keep verifying, refusals are counted rather than flooded, CSV cells cannot
run as formulas, and failed logins slow a name down without locking its owner out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert, text

from cloud.audit.refusals import Refusal, RefusalLog
from cloud.audit.trail import AuditTrail, audit
from cloud.auth.roles import Role
from cloud.auth.users import LoginLimits, UserStore
from cloud.csvcells import safe_cell
from cloud.storage.sql import SqlStore


@pytest.fixture
def engine(sql_url: str) -> Iterator[Engine]:
    sql = SqlStore(sql_url)
    yield sql.engine
    sql.dispose()


def test_the_chain_covers_the_user_agent_and_old_rows_still_verify(engine: Engine) -> None:
    trail = AuditTrail(engine)
    # A row as the previous release wrote it: hash without the user agent, no version column value.
    body = json.dumps(["0" * 64, repr(1.5), "ca-daron", "login", "user:ca-daron", "", "{}", "10.0.0.7"])
    old_hash = hashlib.sha256(body.encode()).hexdigest()
    with engine.begin() as conn:
        conn.execute(
            insert(audit).values(
                at=1.5,
                actor="ca-daron",
                action="login",
                target="user:ca-daron",
                commune="",
                detail="{}",
                ip="10.0.0.7",
                user_agent="Firefox",
                prev_hash="0" * 64,
                hash=old_hash,
            )
        )
    trail.record("ca-daron", "event_view", "event:1", ip="10.0.0.7", user_agent="Mozilla/5.0 (Android)")
    assert trail.verify() == (2, None)
    with engine.begin() as conn:  # behind the application's back: the triggers are dropped first
        on = " ON audit_log" if engine.dialect.name == "postgresql" else ""
        conn.execute(text(f"DROP TRIGGER audit_log_no_update{on}"))
        conn.execute(text("UPDATE audit_log SET user_agent = 'curl/8' WHERE id = 2"))
    assert trail.verify() == (2, 2)


def test_refusals_are_counted_in_windows_and_the_chain_stays_intact(engine: Engine) -> None:
    trail = AuditTrail(engine)
    now = [1000.0]
    log = RefusalLog(trail, window_s=600, max_rows=100, clock=lambda: now[0])

    def refusal(target: str, actor: str = "ca-daron") -> Refusal:
        return Refusal(
            actor, "10.0.0.7", "ua", "GET", "/api/v1/events/{event_pk}", "/x", target, 404, "out_of_scope"
        )

    for _ in range(1000):
        log.record(refusal("event:7"))
    for i in range(150):
        log.record(refusal(f"event:{100 + i}", actor="ca-tutra"))
    assert trail.count(action="access_denied") == 1 + 100
    now[0] += 599
    log.flush()
    assert trail.count(action="access_denied_repeat") == 0  # the window is still open
    now[0] += 1
    log.flush()
    (repeat,) = trail.entries(action="access_denied_repeat")
    first = trail.entries(action="access_denied", actor="ca-daron")[0]
    assert repeat.detail["repeats"] == 999 and repeat.detail["first"] == first.id
    (more,) = trail.entries(action="access_denied_more")
    assert more.actor == "ca-tutra" and more.detail["refusals"] == 50
    log.record(refusal("event:7"))  # a new window: a new first row
    assert trail.count(action="access_denied", actor="ca-daron") == 2
    log.record(refusal("event:7"))
    log.close()  # shutdown writes what is pending
    assert trail.count(action="access_denied_repeat") == 2
    assert trail.verify() == (trail.count(), None)


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    for evil in ("=1+1", "+cmd", "-2+3", "@SUM(A1)", "\t=x", "\r=x", '=HYPERLINK("http://x")'):
        assert safe_cell(evil) == "'" + evil
    for plain in ("da-ron", "Công an", "-12.5", "+84", "1e-3", "", 42, -3.5, None):
        assert safe_cell(plain) == plain


def test_failed_logins_slow_the_name_but_never_lock_out_its_usual_address(engine: Engine) -> None:
    users = UserStore(engine, limits=LoginLimits(window_s=900, per_user=5, per_ip=20, backoff_s=30))
    users.add("ca-daron", "cong-an-da-ron-1", frozenset({Role.POLICE}), communes=frozenset({"da-ron"}))
    home, stranger = "10.1.1.1", "203.0.113.9"
    assert users.authenticate("ca-daron", "cong-an-da-ron-1", home) is not None  # the usual address
    for _ in range(5):
        assert users.authenticate("ca-daron", "guess", stranger) is None
    assert 0 < users.throttled("ca-daron", stranger) <= 30  # progressive: 30 s first
    assert users.throttled("ca-daron", "198.51.100.1") > 0  # any unknown address waits too
    assert users.throttled("ca-daron", home) == 0  # the owner's usual address is not locked
    for _ in range(3):
        assert users.authenticate("ca-daron", "guess", stranger) is None
    assert 200 < users.throttled("ca-daron", stranger) <= 240  # 30 s doubled three times
    for _ in range(5):
        users.authenticate("ca-daron", "typo", home)
    assert users.throttled("ca-daron", home) > 0  # the usual address is judged on its own failures
