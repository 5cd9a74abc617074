"""Writes ``testdata/release-<rev>.{sqlite,postgresql}.sql``: a database made by a previous
release, with rows in every table, for ``test_migrations.py``.

The rows are made by that release's own code (extracted with ``git archive``, run in a
child process with it first on ``sys.path``), on SQLite and on a PostgreSQL cluster of our
own, then dumped. Run it from the repository root, with git history and PostgreSQL's
binaries; it is needed again only to add the dump of a later release:

    .venv/bin/python tests/storage/make_release_dumps.py e75567e

What the test expects to find (``EXPECTED``) is written here, beside the code that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TESTDATA = HERE / "testdata"

T0 = 1_790_000_000.0  # 2026-09-21, the rows' own times (people's actions use the clock)
ADMIN_PASSWORD = "release-admin-password-1"  # test data only
POLICE_PASSWORD = "release-police-password-1"
SNAPSHOT = b"\xff\xd8\xff\xe0 release jpeg \x00\x01\x02 \xff\xd9"
GARBAGE = b'{"v":1,"node":"dr-ap-01",\x00\xff garbage'

EXPECTED: dict[str, Any] = {
    "nodes": {"dr-ap-01": {"messages": 41, "gaps": 2, "status": "online"}, "dr-cam-01": {"messages": 7}},
    "dead_letter": {"topic": "ciot/v1/da-ron/dr-ap-01/health", "reason": "payload: Invalid JSON"},
    "event": {"device": "dr-cam-01", "event_id": "ev-release-1", "note": "Đã xem: người đi bộ"},
    "alerts": {"open": "dr-ap-02", "resolved": "tt-ap-01"},
    "users": {"admin": ADMIN_PASSWORD, "ca-daron": POLICE_PASSWORD},
    "audit_rows": 3,
    "report": ("wifi", "2026-08", "failed"),
}


def fill(url: str, state: Path) -> dict[str, Any]:
    """Rows in every table, through the release's stores (imported from ``sys.path``)."""
    import cloud  # the release's, not the working tree's

    assert Path(cloud.__file__).resolve().parent.parent != REPO, cloud.__file__
    from cloud.alerting.engine import Cause, Change, Scope, Severity
    from cloud.alerting.maintenance import Window
    from cloud.audit.trail import AuditTrail
    from cloud.auth.roles import Role
    from cloud.auth.users import UserStore
    from cloud.events.evidence import EvidenceExports
    from cloud.events.store import EventFilter, EventRecord, EventStore
    from cloud.notify.messages import Notice
    from cloud.reports.store import ReportStore
    from cloud.storage.alerts_sql import AlertStore
    from cloud.storage.notice_outbox import SqlNoticeQueue
    from cloud.storage.snapshots import SnapshotStore
    from cloud.storage.sql import (
        BatchUpdate,
        DeadLetter,
        NodeDelta,
        SessionDelta,
        SnapshotRecord,
        SqlStore,
        StatusUpdate,
    )

    sql = SqlStore(url)
    snaps = SnapshotStore(state / "snapshots")
    sha = snaps.put(SNAPSHOT)
    event = EventRecord(
        device="dr-cam-01",
        event_id="ev-release-1",
        node="dr-cam-01",
        commune="da-ron",
        site="dr-spot-01",
        phase="end",
        start=T0,
        end=T0 + 12.5,
        msg_ts=T0 + 12.5,
        peak_area_pct=7.25,
        boxes=[{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}],
        zones=["gate"],
        score=0.5,
        frames=30,
        snapshot_sha256=sha,
        received_at=T0 + 13,
    )
    sql.apply(
        BatchUpdate(
            nodes={
                "dr-ap-01": NodeDelta(
                    "da-ron",
                    True,
                    messages=41,
                    last_seen=T0 + 60,
                    last_msg_ts=T0 + 59,
                    session="a1b2c3d4",
                    last_seq=43,
                ),
                "dr-cam-01": NodeDelta("da-ron", True, messages=7, last_seen=T0 + 20, last_msg_ts=T0 + 19),
            },
            sessions={
                ("dr-ap-01", "a1b2c3d4"): SessionDelta(first_seq=1, max_seq=43, received=41, first_seen=T0)
            },
            statuses=[StatusUpdate("dr-ap-01", "da-ron", True, "online", "birth", T0, "0.1.0", "a1b2c3d4")],
            dead=[
                DeadLetter("ciot/v1/da-ron/dr-ap-01/health", "dr-ap-01", "payload: Invalid JSON", GARBAGE, T0)
            ],
            snapshots=[SnapshotRecord(sha, "dr-cam-01", "ev-release-1", len(SNAPSHOT), T0 + 14)],
            events=[event],
        )
    )
    events = EventStore(sql.engine)
    (ev,) = events.search(EventFilter()).events
    events.add_note(ev.id, "ca-daron", "Đã xem: người đi bộ", at=T0 + 100)
    events.set_reviewed(ev.id, "ca-daron", at=T0 + 101)
    events.set_keep(ev.id, True)
    EvidenceExports(sql.engine, events, snaps, state / "exports").create(
        [ev], "ca-daron", reason="vụ việc 12"
    )

    alerts = AlertStore(sql.engine)
    queue = SqlNoticeQueue(sql.engine)

    def change(kind: str, subject: str, commune: str, at: float) -> Any:
        key = f"node:{subject}"
        return Change(kind, key, Scope.NODE, subject, commune, Cause.SILENT, Severity.CRITICAL, T0 + 100, at)

    opened = alerts.apply(change("open", "dr-ap-02", "da-ron", T0 + 200))
    assert opened is not None
    alerts.acknowledge(opened.id, "kỹ thuật viên Hùng", T0 + 260, "đang đi kiểm tra")
    first = alerts.apply(change("open", "tt-ap-01", "tu-tra", T0 + 300))
    assert first is not None
    alerts.apply(change("resolve", "tt-ap-01", "tu-tra", T0 + 900))
    notice = Notice(
        "open", opened.id, opened.key, "node", "dr-ap-02", "da-ron", "silent", "critical", T0, T0 + 200
    )
    queue.put("webhook", notice, T0 + 200)
    alerts.add_window(
        Window("node", "lx-ap-01", T0, weekdays=frozenset({1, 3}), local_start="02:00", duration_s=3600.0)
    )
    assert alerts.try_lease("alert-evaluator", "ciot-cloud-1", T0, 15.0)

    users = UserStore(sql.engine)
    users.add("admin", ADMIN_PASSWORD, frozenset({Role.ADMIN}), display_name="Quản trị")
    users.add("ca-daron", POLICE_PASSWORD, frozenset({Role.POLICE}), communes=frozenset({"da-ron"}))
    token = users.create_token("admin", "release-script")
    admin = users.by_name("admin")
    assert admin is not None
    users.open_session(admin, "127.0.0.1", "release-browser")
    assert users.authenticate("ca-daron", "wrong password", "10.0.0.9") is None

    audit = AuditTrail(sql.engine)
    audit.record("admin", "login", ip="127.0.0.1", user_agent="release-browser")
    audit.record("ca-daron", "event_review", f"event:{ev.id}", commune="da-ron", detail={"reviewed": True})
    audit.record("ca-daron", "export_create", "export:1", commune="da-ron", detail={"events": [ev.id]})

    reports = ReportStore(sql.engine, state / "reports")
    claimed = reports.claim("wifi", "2026-08", "", "2026-08-01", "2026-08-31", origin="monthly", holder="w1")
    assert claimed is not None
    reports.fail(claimed, "InfluxDB unreachable")
    sql.dispose()
    return {"token": token, "snapshot_sha256": sha}


def _postgres_dump(url: str, out: Path) -> None:
    from sqlalchemy.engine import make_url

    from commune_iot.localsvc import _postgres_bin

    u = make_url(url)
    argv = [_postgres_bin("pg_dump"), "--no-owner", "--no-privileges", "--inserts", "--no-comments"]
    argv += ["-h", str(u.host), "-p", str(u.port), "-U", str(u.username), str(u.database)]
    dump = subprocess.run(
        argv, env=dict(os.environ, PGPASSWORD=str(u.password)), check=True, capture_output=True, text=True
    ).stdout
    # psql meta-commands (\restrict, from newer pg_dump) and settings are the loader's business.
    lines = [ln for ln in dump.splitlines() if not ln.startswith("\\") and not ln.startswith("SET ")]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revision", help="the release's commit")
    ap.add_argument("--fill", metavar="URL", help=argparse.SUPPRESS)  # the child's part
    ap.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fill:
        print(json.dumps(fill(args.fill, args.state)))
        return 0

    from commune_iot.localsvc import PostgreSQL

    TESTDATA.mkdir(exist_ok=True)
    rev = args.revision
    with tempfile.TemporaryDirectory(prefix="ciot-release-") as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
        pg = PostgreSQL(Path(tmp) / "postgres").start()
        try:
            secrets: dict[str, Any] = {}
            for engine, url in (
                ("sqlite", f"sqlite:///{tmp}/release.db"),
                ("postgresql", pg.create_database("release")),
            ):
                state = Path(tmp) / engine
                child = subprocess.run(
                    [sys.executable, __file__, rev, "--fill", url, "--state", str(state)],
                    env=dict(os.environ, PYTHONPATH=str(code)),
                    cwd=tmp,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                secrets[engine] = json.loads(child.stdout.strip().splitlines()[-1])
                out = TESTDATA / f"release-{rev}.{engine}.sql"
                if engine == "sqlite":
                    with sqlite3.connect(f"{tmp}/release.db") as db:
                        out.write_text("\n".join(db.iterdump()) + "\n", encoding="utf-8")
                else:
                    _postgres_dump(url, out)
                print(f"wrote {out.relative_to(REPO)} ({out.stat().st_size:,} bytes)")
        finally:
            pg.stop()
    meta = TESTDATA / f"release-{rev}.json"
    meta.write_text(json.dumps({"expected": EXPECTED, "made": secrets}, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {meta.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
