"""Schema migrations (Alembic), on SQLite and PostgreSQL: a database made by the previous
release upgrades in place with its data intact and the app working on it; the migrations
make exactly the tables the code defines; workers starting together migrate once."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cloud.api.app import create_app
from cloud.audit.trail import AuditTrail
from cloud.auth.users import UserStore
from cloud.config import load_config
from cloud.events.store import EventFilter, EventStore
from cloud.runtime import Runtime
from cloud.storage import schema
from cloud.storage.alerts_sql import AlertStore
from cloud.storage.migrations import all_metadata
from cloud.storage.notice_outbox import SqlNoticeQueue
from cloud.storage.sql import BatchUpdate, NodeDelta, SqlStore

TESTDATA = Path(__file__).parent / "testdata"
RELEASES = sorted(
    p.name.removeprefix("release-").removesuffix(".json") for p in TESTDATA.glob("release-*.json")
)


def _engine(sql_url: str) -> str:
    return make_url(sql_url).get_backend_name()


def _load_dump(sql_url: str, dump: Path) -> None:
    """Restore a dump the way an operator would (sqlite3's script, or psql's statements)."""
    u = make_url(sql_url)
    if u.get_backend_name() == "sqlite":
        with contextlib.closing(sqlite3.connect(str(u.database))) as db:
            db.executescript(dump.read_text(encoding="utf-8"))
        return
    import psycopg

    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database, autocommit=True
    ) as conn:
        conn.execute(dump.read_text(encoding="utf-8").encode())


@pytest.mark.parametrize("release", RELEASES)
async def test_a_database_of_the_previous_release_upgrades_with_its_data_and_the_app_works(
    sql_url: str, release: str, tmp_path: Path
) -> None:
    meta = json.loads((TESTDATA / f"release-{release}.json").read_text(encoding="utf-8"))
    want, made = meta["expected"], meta["made"][_engine(sql_url)]
    _load_dump(sql_url, TESTDATA / f"release-{release}.{_engine(sql_url)}.sql")

    sql = SqlStore(sql_url)  # the first store to meet the database upgrades it
    assert schema.current(sql.engine) == schema.head()
    # The data, as the new code reads it.
    states = sql.node_states()
    ap = states["dr-ap-01"]
    assert (ap["messages"], ap["gaps"], ap["status"]) == tuple(want["nodes"]["dr-ap-01"].values())
    assert states["dr-cam-01"]["messages"] == want["nodes"]["dr-cam-01"]["messages"]
    (dead,) = sql.dead_letter_rows()
    assert (dead["topic"], dead["reason"]) == tuple(want["dead_letter"].values())
    assert bytes(dead["payload"]).startswith(b'{"v":1') and b"\x00\xff" in bytes(dead["payload"])
    events = EventStore(sql.engine)
    (ev,) = events.search(EventFilter()).events
    assert (ev.device, ev.event_id) == (want["event"]["device"], want["event"]["event_id"])
    assert ev.keep and ev.exports == 1 and ev.reviewed_by == "ca-daron"
    assert ev.snapshot_sha256 == made["snapshot_sha256"] and ev.boxes == [
        {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}
    ]
    assert [n.text for n in events.notes_of(ev.id)] == [want["event"]["note"]]
    # Migration 0008: an event stored before it says nothing of its picture's origin.
    assert (ev.snapshot_source, ev.snapshot_width_px, ev.snapshot_fallback) == (None, None, None)
    alerts = AlertStore(sql.engine)
    (still_open,) = alerts.unresolved()
    assert (still_open.subject, still_open.state, still_open.acked_by) == (
        want["alerts"]["open"],
        "acknowledged",
        "kỹ thuật viên Hùng",
    )
    (resolved,) = alerts.query(state="resolved")
    assert resolved.subject == want["alerts"]["resolved"] and resolved.duration_s == 800.0
    assert [w.weekdays for w in alerts.windows()] == [frozenset({1, 3})]
    assert [r["state"] for r in SqlNoticeQueue(sql.engine).log(still_open.id)] == ["pending"]
    users = UserStore(sql.engine)
    for name, password in want["users"].items():
        assert users.authenticate(name, password, "127.0.0.1") is not None, name
    audit = AuditTrail(sql.engine)
    assert audit.verify() == (want["audit_rows"], None)

    # The app on it: the release's API token still works, and new data goes in.
    cfg = load_config(
        None,
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "upgrade-test"},
        influx={"spool_dir": tmp_path / "spool"},
        sql={"url": sql_url},
        snapshots_dir=tmp_path / "snapshots",
        events={"exports_dir": tmp_path / "exports"},
    )
    rt = Runtime(cfg)
    app = create_app(rt, manage_runtime=False)
    headers = {"Authorization": f"Bearer {made['token']}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    ) as c:
        r = await c.get("/api/v1/alerts")
        assert r.status_code == 200 and {a["subject"] for a in r.json()} == set(want["alerts"].values())
        r = await c.get("/api/v1/events")
        assert r.status_code == 200 and [e["event_id"] for e in r.json()["events"]] == [ev.event_id]
        old = r.json()["events"][0]
        assert (old["snapshot_source"], old["snapshot_width_px"], old["snapshot_fallback"]) == (
            None,
            None,
            False,
        )
        r = await c.post(f"/api/v1/alerts/{still_open.id}/silence", json={"for_s": 600})
        assert r.status_code == 200
        r = await c.post(f"/api/v1/events/{ev.id}/notes", json={"text": "sau nâng cấp"})
        assert r.status_code == 201
        r = await c.get("/api/v1/reports")
        assert [(x["kind"], x["period"], x["state"]) for x in r.json()] == [tuple(want["report"])]
        r = await c.get("/api/v1/audit/verify")  # the old links and the ones just added
        chain = r.json()
        assert chain["intact"] and chain["rows"] > want["audit_rows"], chain
    rt.journal.close()
    await rt.influx.aclose()
    rt.sql.dispose()
    sql.apply(BatchUpdate(nodes={"dr-ap-01": NodeDelta("da-ron", True, messages=9, last_seen=time.time())}))
    assert sql.node_states()["dr-ap-01"]["messages"] == want["nodes"]["dr-ap-01"]["messages"] + 9
    # The audit trail stays append-only after the upgrade (on PostgreSQL since migration 0002).
    for stmt in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), sql.engine.begin() as conn:
            conn.execute(text(stmt))
    sql.dispose()


def test_the_migrations_make_exactly_the_tables_the_code_defines(sql_url: str) -> None:
    """A table or column changed in code without a migration shows up here (and the message
    says how to write the migration)."""
    sql = SqlStore(sql_url)
    with sql.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, all_metadata())  # type: ignore[arg-type]
    sql.dispose()
    assert diff == [], (
        "the tables in code and the migrations disagree; write a migration with "
        '`commune-iot db revision -m "what changed"` (cloud/storage/README.md)'
    )


_START = """
import sys
from cloud.storage.sql import SqlStore
from cloud.auth.users import UserStore
print("ready", flush=True)
sys.stdin.readline()
sql = SqlStore(sys.argv[1])
UserStore(sql.engine)
"""


def test_workers_starting_together_migrate_once(sql_url: str) -> None:
    """Four processes meet an empty database at the same instant: one migrates, the others
    wait for it and find the schema done; none fails."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _START, sql_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for p in procs:  # every interpreter started and imported: then all at once
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err.decode()[-1500:] for _, err in outputs]
    upgraded = [err for _, err in outputs if b"upgraded from revision (none)" in err]
    assert len(upgraded) == 1, [err.decode()[-500:] for _, err in outputs]
    sql = SqlStore(sql_url)
    assert schema.current(sql.engine) == schema.head()
    sql.dispose()


def test_a_table_without_its_migration_stops_the_start_with_the_fix_in_the_message(sql_url: str) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table

    meta = MetaData()
    Table("device_twins", meta, Column("id", Integer, primary_key=True))
    sql = SqlStore(sql_url)
    with pytest.raises(schema.SchemaError, match=r"lacks table device_twins.*commune-iot db revision"):
        schema.ensure_schema(sql.engine, meta)
    sql.dispose()


def test_a_database_from_a_newer_release_is_refused_not_touched(sql_url: str) -> None:
    sql = SqlStore(sql_url)
    with sql.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    sql.dispose()
    with pytest.raises(schema.SchemaError, match="revision 0999, which this release does not know"):
        SqlStore(sql_url)


def test_db_revision_writes_the_migration_a_new_table_needs(
    sql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented way to add a migration (cloud/storage/README.md), end to end, on a copy
    of the migrations: a table added in code -> `db revision` -> the database gets it."""
    import shutil

    from sqlalchemy import Column, Integer, MetaData, String, Table, inspect

    import cloud.storage.migrations as migrations

    copy = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS, copy)
    extra = MetaData()
    Table("device_twins", extra, Column("id", Integer, primary_key=True), Column("node", String(64)))
    monkeypatch.setattr(schema, "MIGRATIONS", copy)
    monkeypatch.setattr(migrations, "all_metadata", lambda: [*all_metadata(), extra])
    schema._history.cache_clear()
    following = f"{int(schema.head()) + 1:04d}"
    try:
        path = schema.new_revision("fleet: device twins")
        assert path.parent == copy / "versions" and path.name.startswith(f"{following}_fleet")
        assert re.search(r"op\.create_table\(\s*['\"]device_twins", path.read_text())
        schema._history.cache_clear()
        sql = SqlStore(sql_url)
        schema.ensure_schema(sql.engine, extra)  # no SchemaError: the migration made it
        assert (
            schema.current(sql.engine) == following
            and "device_twins" in inspect(sql.engine).get_table_names()
        )
        sql.dispose()
    finally:
        schema._history.cache_clear()


def test_every_table_module_is_known_to_the_migrations() -> None:
    """A module that defines tables (``metadata = MetaData()``) must be listed in
    ``cloud.storage.migrations.all_metadata``, or autogenerate and the check above miss it."""
    import importlib

    repo = Path(__file__).resolve().parents[2]
    known = {id(m) for m in all_metadata()}
    missing = []
    for path in sorted((repo / "cloud").rglob("*.py")):
        if "migrations" in path.parts or not re.search(r"^\w+ = MetaData\(\)", path.read_text(), re.M):
            continue
        module = importlib.import_module(".".join(path.relative_to(repo).with_suffix("").parts))
        tables = [v for v in vars(module).values() if isinstance(v, MetaData)]
        missing += [module.__name__ for m in tables if id(m) not in known]
    assert not missing, f"add {missing} to all_metadata() in cloud/storage/migrations/__init__.py"
