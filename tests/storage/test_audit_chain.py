"""The audit trail on both engines: append-only in the database itself, and never forked by
two processes appending at once (two cloud nodes, or the ``users`` command beside the cloud)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cloud.audit.trail import AuditTrail
from cloud.storage.sql import SqlStore


def test_audit_log_refuses_changes_and_truncation(sql_url: str) -> None:
    sql = SqlStore(sql_url)
    audit = AuditTrail(sql.engine)
    audit.record("admin", "login")
    statements = ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"]
    if make_url(sql_url).get_backend_name() == "postgresql":
        statements.append("TRUNCATE audit_log")
    for stmt in statements:
        with pytest.raises(DBAPIError, match="append-only"), sql.engine.begin() as conn:
            conn.execute(text(stmt))
    assert audit.verify() == (1, None)
    sql.dispose()


_APPEND = """
import sys, time
from cloud.audit.trail import AuditTrail
from cloud.storage.sql import SqlStore
audit = AuditTrail(SqlStore(sys.argv[1]).engine)
print("ready", flush=True)
sys.stdin.readline()
n, end = 0, time.monotonic() + 1.5
while time.monotonic() < end:
    audit.record(sys.argv[2], "login")
    n += 1
print(n)
"""


def test_two_processes_appending_at_once_never_fork_the_chain(sql_url: str) -> None:
    SqlStore(sql_url).dispose()  # migrated before the race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPEND, sql_url, f"node-{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in (1, 2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-1500:] for _, err in outputs]
    appended = [int(out) for out, _ in outputs]
    assert min(appended) > 0, appended  # both really wrote
    sql = SqlStore(sql_url)
    assert AuditTrail(sql.engine).verify() == (sum(appended), None)
    sql.dispose()
