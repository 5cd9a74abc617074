"""Must-show 4 of the event log: replayed messages never duplicate an event, and retention
deletes old events and their snapshots but keeps exported and kept ones."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from web_helpers import camera_event, publish, replayed
from web_portal import Portal

from cloud.events.evidence import EvidenceExports
from cloud.events.retention import run_retention
from cloud.events.signing import EvidenceSigner
from cloud.events.store import EventFilter, EventRecord, EventStore
from cloud.storage.snapshots import SnapshotStore
from cloud.storage.sql import SqlStore


def _wait(portal: Portal, event_id: str, pred: object, timeout: float = 20.0) -> dict[str, object]:
    admin = portal.api("admin")
    deadline = time.monotonic() + timeout
    while True:
        _, page = admin.get("/api/v1/events?device=dr-cam-04&limit=500")
        mine = [e for e in page["events"] if e["event_id"] == event_id]
        if mine and pred(mine[0]):  # type: ignore[operator]
            assert len(mine) == 1, mine
            return mine[0]
        assert time.monotonic() < deadline, f"{event_id}: never stored as expected: {mine}"
        time.sleep(0.1)


def test_replayed_and_reordered_messages_update_one_event(portal: Portal) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    ev = camera_event("da-ron", "dr-cam-04", 900, start, 30.0, session="0a0b0c0d")
    end_msg = [m for m in ev.messages if "/event" in m[0]][-1]
    others = [m for m in ev.messages if m is not end_msg]
    # The end arrives first (the agent's outbox drains newest-first after a long outage)...
    publish(portal.broker.port, [end_msg])
    first = _wait(portal, ev.event_id, lambda e: e["end"] is not None)
    # ...then the rest, then everything again as replayed from the outbox, twice.
    publish(portal.broker.port, others + replayed(ev) + replayed(ev))
    deadline = time.monotonic() + 20
    while True:
        sql = SqlStore(portal.sql_url)
        with sql.engine.connect() as conn:
            messages = conn.execute(
                text("SELECT messages FROM events WHERE event_id = :id"), {"id": ev.event_id}
            ).scalar_one()
        sql.dispose()
        if messages >= 9 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # read the API once all nine are merged (read before, it may show the row a message earlier)
    _, page = portal.api("admin").get("/api/v1/events?device=dr-cam-04&limit=500")
    mine = [e for e in page["events"] if e["event_id"] == ev.event_id]
    assert messages == 9  # 3 messages x 3 deliveries, all merged into the one row
    assert len(mine) == 1 and mine[0]["id"] == first["id"]
    e = mine[0]
    assert e["start"].startswith(start.isoformat().replace("+00:00", ""))
    assert e["duration_s"] == 30.0 and e["peak_area_pct"] == 9.25  # from the end message
    assert e["snapshot_sha256"] == ev.sha256 and e["has_snapshot"]
    assert len(e["boxes"]) == 1


def _record(device: str, n: int, start: float, node: str | None = None) -> EventRecord:
    return EventRecord(
        device=device,
        event_id=f"{device}-x-{n}",
        node=node or device,
        commune="da-ron",
        site="dr-spot-01",
        phase="end",
        start=start,
        end=start + 10,
        msg_ts=start + 10,
        peak_area_pct=5.0,
        boxes=[],
        zones=[],
        score=None,
        frames=12,
        snapshot_sha256=None,
        received_at=start + 11,
    )


def test_a_board_cannot_overwrite_another_cameras_event(sql_url: str) -> None:
    sql = SqlStore(sql_url)
    store = EventStore(sql.engine)
    from cloud.storage.sql import BatchUpdate

    t = time.time()
    sql.apply(BatchUpdate(events=[_record("dr-cam-05", 1, t)]))
    forged = _record("dr-cam-05", 1, t - 1000, node="dr-cam-06")  # another board, same ids
    forged.peak_area_pct = 99.0
    sql.apply(BatchUpdate(events=[forged]))
    (ev,) = store.search(EventFilter()).events
    assert ev.node == "dr-cam-05" and ev.peak_area_pct == 5.0 and ev.start == t
    sql.dispose()


def test_retention_deletes_old_events_but_keeps_exported_and_kept_ones(tmp_path: Path, sql_url: str) -> None:
    sql = SqlStore(sql_url)
    snaps = SnapshotStore(tmp_path / "snapshots")
    store = EventStore(sql.engine)
    exports = EvidenceExports(
        sql.engine, store, snaps, tmp_path / "exports", EvidenceSigner(tmp_path / "keys" / "k.pem")
    )
    from cloud.storage.sql import BatchUpdate

    now = time.time()
    old, recent = now - 40 * 86400, now - 3 * 86400
    recs = []
    for i, start in enumerate([old, old + 60, old + 120, old + 180, recent]):
        r = _record("dr-cam-07", i, start)
        r.snapshot_sha256 = snaps.put(f"jpeg-{i}".encode())
        recs.append(r)
    sql.apply(BatchUpdate(events=recs))
    evs = {e.event_id: e for e in store.search(EventFilter(), limit=100).events}
    ids = [evs[r.event_id].id for r in recs]
    exports.create(store.get_many([ids[0]], None), "ca-daron", reason="vụ việc")
    store.set_keep(ids[1], True)

    res = run_retention(store, snaps, None, days=30, now=now)

    left = {e.id for e in store.search(EventFilter(), limit=100).events}
    assert left == {ids[0], ids[1], ids[4]}  # exported, kept, recent
    assert res.events_deleted == 2 and res.snapshots_deleted == 2
    for r, pk in zip(recs, ids, strict=True):
        assert snaps.path_for(r.snapshot_sha256 or "").exists() == (pk in left)
    sql.dispose()


def test_retention_keeps_a_picture_an_alert_still_shows_and_deletes_old_alert_pictures(
    tmp_path: Path, sql_url: str
) -> None:
    """Tampered cameras' alert pictures (``alerts.snapshot_sha256``) live in the same store as
    event snapshots: kept while an event or an alert still within the period shows them, deleted
    with the alerts resolved before it (the alert row stays)."""
    from cloud.storage.alerts_sql import alerts
    from cloud.storage.sql import BatchUpdate

    sql = SqlStore(sql_url)
    snaps = SnapshotStore(tmp_path / "snapshots")
    store = EventStore(sql.engine)
    now = time.time()
    old, recent = now - 40 * 86400, now - 3 * 86400
    pic = {name: snaps.put(f"jpeg-{name}".encode()) for name in ("shared", "old", "recent", "open", "event")}

    def alert(i: int, sha: str, resolved_at: float | None) -> dict[str, object]:
        return _tamper_alert(f"dr-cam-0{i}", sha, old, resolved_at)

    with sql.engine.begin() as conn:
        conn.execute(
            alerts.insert(),
            [
                alert(1, pic["shared"], recent),  # resolved 3 days ago: its picture stays
                alert(2, pic["old"], old + 3600),  # resolved 40 days ago: its picture goes
                alert(3, pic["recent"], recent),
                alert(4, pic["open"], None),  # covered for 40 days and counting: stays
            ],
        )
    shared, plain = _record("dr-cam-07", 1, old), _record("dr-cam-07", 2, old)
    shared.snapshot_sha256, plain.snapshot_sha256 = pic["shared"], pic["event"]
    sql.apply(BatchUpdate(events=[shared, plain]))

    res = run_retention(store, snaps, None, days=30, now=now)

    assert res.events_deleted == 2 and res.snapshots_deleted == 2
    left = {name for name, sha in pic.items() if snaps.path_for(sha).exists()}
    assert left == {"shared", "recent", "open"}
    with sql.engine.connect() as conn:
        kept = conn.execute(alerts.select().with_only_columns(alerts.c.snapshot_sha256)).scalars().all()
    assert sorted(kept) == sorted([pic["shared"], pic["old"], pic["recent"], pic["open"]])  # rows stay
    assert run_retention(store, snaps, None, days=30, now=now).snapshots_deleted == 0  # nothing left to do
    sql.dispose()


def _tamper_alert(device: str, sha: str, started: float, resolved_at: float | None) -> dict[str, object]:
    """An ``alerts`` row of a tampered camera with its picture, as the alerter writes it."""
    return {
        "key": f"device:{device}:tampering",
        "active_key": None if resolved_at else f"device:{device}:tampering",
        "scope": "device",
        "subject": device,
        "commune": "da-ron",
        "cause": "device",
        "severity": "warning",
        "problem": "tampering",
        "detail": "covered",
        "state": "resolved" if resolved_at else "open",
        "started_at": started,
        "opened_at": started,
        "resolved_at": resolved_at,
        "flaps": 0,
        "down": 0,
        "total": 0,
        "members": "",
        "suppressed": 0,
        "reminders": 0,
        "snapshot_sha256": sha,
    }


def test_the_alert_page_says_an_old_picture_was_deleted_and_a_new_one_is_on_its_way(portal: Portal) -> None:
    """A technician opening an alert whose picture retention deleted is told so, not that it is
    still on its way."""
    from cloud.storage.alerts_sql import alerts

    now = time.time()
    sql = SqlStore(portal.sql_url)
    with sql.engine.begin() as conn:
        old_id, new_id = (
            conn.execute(alerts.insert().values(**row).returning(alerts.c.id)).scalar_one()
            for row in (
                _tamper_alert("dr-cam-08", "ab" * 32, now - 50 * 86400, now - 40 * 86400),
                _tamper_alert("dr-cam-09", "cd" * 32, now - 60, None),
            )
        )
    sql.dispose()
    tech = portal.api("kythuat")
    status, html = tech.get(f"/alerts/{old_id}")
    assert status == 200
    page = html.decode()
    assert 'id="alert-picture-expired"' in page and "đã được xóa khi hết thời hạn lưu giữ" in page
    assert "ab" * 32 in page and 'id="alert-picture-pending"' not in page
    status, html = tech.get(f"/alerts/{new_id}")
    assert status == 200 and 'id="alert-picture-pending"' in html.decode()


def test_the_snapshot_origin_follows_the_picture_and_goes_into_the_evidence_export(
    tmp_path: Path, sql_url: str
) -> None:
    """Where a picture came from is merged with the picture: a fallback noted on an earlier
    snapshot does not stick to the full-resolution one that replaced it, whatever order the
    messages arrive in; the export's manifests and printable page say it, Vietnamese first."""
    import csv
    import io
    import json
    import zipfile
    from dataclasses import replace

    from cloud.storage.sql import BatchUpdate

    sql = SqlStore(sql_url)
    snaps = SnapshotStore(tmp_path / "snapshots")
    store = EventStore(sql.engine)
    t = time.time() - 600
    small, full = snaps.put(b"jpeg-640"), snaps.put(b"jpeg-1920")
    why = "HTTP 401 Unauthorized (check username/password_file)"
    fallback = {
        "snapshot_source": "detect",
        "snapshot_wanted": "http",
        "snapshot_width_px": 640,
        "snapshot_height_px": 360,
        "snapshot_fallback": why,
    }
    hires = {"snapshot_source": "http", "snapshot_width_px": 1920, "snapshot_height_px": 1080}
    base = _record("dr-cam-08", 1, t)
    start = replace(base, phase="start", end=None, msg_ts=t + 1)
    first = replace(base, phase="update", end=None, msg_ts=t + 2, snapshot_sha256=small, **fallback)
    better = replace(base, phase="update", end=None, msg_ts=t + 5, snapshot_sha256=full, **hires)
    end = replace(base, msg_ts=t + 10, snapshot_sha256=full, **hires)
    for msg in (start, first, better, end):  # a fallback picture, then a full-resolution one
        sql.apply(BatchUpdate(events=[msg]))
    only_fallback = replace(_record("dr-cam-08", 2, t + 60), snapshot_sha256=small, **fallback)
    plain = replace(_record("dr-cam-08", 3, t + 120), snapshot_sha256=snaps.put(b"jpeg-plain"))
    sql.apply(BatchUpdate(events=[only_fallback, plain]))

    got = {e.event_id: e for e in store.search(EventFilter(device="dr-cam-08")).events}
    ev, fb, old = got[base.event_id], got[only_fallback.event_id], got[plain.event_id]
    assert ev.snapshot_sha256 == full and ev.snapshot_source == "http" and ev.snapshot_size == "1920×1080"
    assert ev.snapshot_fallback is None and ev.snapshot_wanted is None and not ev.snapshot_fell_back
    assert fb.snapshot_fell_back and (fb.snapshot_wanted, fb.snapshot_fallback) == ("http", why)
    assert old.snapshot_source is None and old.snapshot_size == "" and not old.snapshot_fell_back
    # A fallback message redelivered late (older than what is stored) changes nothing.
    sql.apply(BatchUpdate(events=[first]))
    again = store.get(ev.id, None)
    assert again is not None and again.messages == ev.messages + 1
    assert replace(again, messages=ev.messages) == ev

    exports = EvidenceExports(
        sql.engine, store, snaps, tmp_path / "exports", EvidenceSigner(tmp_path / "keys" / "k.pem")
    )
    rec = exports.create(store.get_many([ev.id, fb.id, old.id], None), "ca-daron", reason="vụ việc")
    with zipfile.ZipFile(exports.path(rec)) as z:
        rows = {r["id"]: r for r in json.loads(z.read("manifest.json"))["events"]}
        table = {r["id"]: r for r in csv.DictReader(io.StringIO(z.read("manifest.csv").decode("utf-8-sig")))}
        summary = z.read("summary.html").decode()
    cols = ("snapshot_source", "snapshot_width_px", "snapshot_height_px", "snapshot_fallback")
    assert [rows[ev.id][c] for c in cols] == ["http", 1920, 1080, ""]
    assert [rows[fb.id][c] for c in cols] == ["detect", 640, 360, f"http: {why}"]
    assert [rows[old.id][c] for c in cols] == ["", "", "", ""]
    assert [table[str(fb.id)][c] for c in cols] == ["detect", "640", "360", f"http: {why}"]
    assert (
        "Ảnh: ảnh HTTP của camera 1920×1080 / Picture: the camera&#x27;s HTTP snapshot 1920×1080" in summary
    )
    assert (
        f"Ảnh thay thế: khung phát hiện 640×360 (không lấy được ảnh HTTP: {why}) / "
        f"Fallback picture: detection frame 640×360 (the HTTP snapshot could not be fetched: {why})"
    ) in summary
    sql.dispose()
