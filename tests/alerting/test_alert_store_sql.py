"""Alert lifecycle, maintenance windows, the evaluator lease and availability, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from alerting_helpers import inventory

from cloud.alerting.engine import Cause, Change, Scope, Severity
from cloud.alerting.maintenance import Window, in_maintenance
from cloud.alerting.outages import availability, devices_of
from cloud.storage.alerts_sql import AlertStore
from cloud.storage.sql import SqlStore

T0 = 1_800_000_000.0


@pytest.fixture
def store(sql_url: str) -> Iterator[AlertStore]:
    sql = SqlStore(sql_url)
    yield AlertStore(sql.engine)
    sql.dispose()


def _open(node: str = "dr-cam-01", at: float = T0) -> Change:
    key = f"node:{node}"
    return Change("open", key, Scope.NODE, node, "da-ron", Cause.SILENT, Severity.CRITICAL, at - 18, at)


def test_open_ack_resolve_keeps_who_when_and_duration(store: AlertStore) -> None:
    row = store.apply(_open())
    assert row is not None and row.state == "open"
    acked = store.acknowledge(row.id, "kỹ thuật viên Hùng", T0 + 60, "đang đi kiểm tra")
    assert acked is not None
    assert (acked.state, acked.acked_by, acked.acked_at, acked.ack_comment) == (
        "acknowledged",
        "kỹ thuật viên Hùng",
        T0 + 60,
        "đang đi kiểm tra",
    )
    resolved = store.apply(replace(_open(), kind="resolve", at=T0 + 300))
    assert resolved is not None
    assert (resolved.state, resolved.resolved_at, resolved.duration_s) == ("resolved", T0 + 300, 318)
    assert resolved.acked_by == "kỹ thuật viên Hùng"
    assert store.unresolved() == []


def test_opening_twice_is_one_alert_and_a_new_outage_is_a_new_one(store: AlertStore) -> None:
    first = store.apply(_open())
    assert first is not None
    assert store.apply(_open()) is None  # a second evaluator, or a restart, opening it again
    store.apply(replace(_open(), kind="resolve", at=T0 + 30))
    again = store.apply(_open(at=T0 + 100))
    assert again is not None and again.id != first.id
    assert [r.id for r in store.query(subject="dr-cam-01")] == [again.id, first.id]
    assert [r.id for r in store.query(state="active")] == [again.id]
    assert store.query(commune="tu-tra") == []


def test_lease_has_one_holder_until_it_lapses(store: AlertStore) -> None:
    assert store.try_lease("eval", "worker-a", T0, 15)
    assert not store.try_lease("eval", "worker-b", T0 + 1, 15)
    assert store.try_lease("eval", "worker-a", T0 + 10, 15)  # renewed
    assert not store.try_lease("eval", "worker-b", T0 + 20, 15)
    assert store.try_lease("eval", "worker-b", T0 + 26, 15)  # worker-a stopped renewing
    assert not store.try_lease("eval", "worker-a", T0 + 27, 15)


def test_one_off_and_recurring_windows(store: AlertStore) -> None:
    inv = inventory()
    store.add_window(Window("commune", "tu-tra", T0, T0 + 3600, comment="thay cáp quang"))
    # every Tuesday 22:00-01:00 local time, for one device (and so its board)
    store.add_window(Window("device", "dr-cam-02", T0, None, frozenset({1}), "22:00", 3 * 3600))
    windows = store.windows(T0)
    assert len(windows) == 2
    assert in_maintenance(windows, "node", "tt-ap-01", inv, T0 + 10)
    assert in_maintenance(windows, "commune", "tu-tra", inv, T0 + 10)
    assert not in_maintenance(windows, "node", "tt-ap-01", inv, T0 + 3600)
    assert not in_maintenance(windows, "node", "dr-cam-01", inv, T0 + 10)
    vn = ZoneInfo("Asia/Ho_Chi_Minh")
    tuesday_2330 = datetime(2027, 1, 19, 23, 30, tzinfo=vn).timestamp()  # 19 Jan 2027 is a Tuesday
    wednesday_0030 = datetime(2027, 1, 20, 0, 30, tzinfo=vn).timestamp()  # runs past midnight
    wednesday_0100 = datetime(2027, 1, 20, 1, 0, tzinfo=vn).timestamp()
    assert in_maintenance(windows, "node", "dr-cam-02", inv, tuesday_2330)
    assert in_maintenance(windows, "device", "dr-cam-02", inv, wednesday_0030)
    assert not in_maintenance(windows, "node", "dr-cam-02", inv, wednesday_0100)
    assert store.delete_window(windows[0].id)
    assert len(store.windows()) == 1


def test_availability_counts_overlapping_outages_once() -> None:
    day = 86_400.0
    assert availability([], 0, day) == 1.0
    assert availability([(0, 3600), (1800, 5400)], 0, day) == pytest.approx(1 - 5400 / day)
    assert availability([(-100, 100), (day - 50, None)], 0, day) == pytest.approx(1 - 150 / day)


def test_a_commune_alert_stands_for_the_devices_of_the_nodes_it_counted() -> None:
    inv = inventory()
    assert devices_of("commune", "tu-tra", ["tt-ap-01", "tt-ap-02"], inv) == [
        ("tt-ap-01", "tt-ap-01"),
        ("tt-ap-02", "tt-ap-02"),
    ]
    assert devices_of("node", "not-in-inventory", [], inv) == [("not-in-inventory", "not-in-inventory")]


def test_a_database_from_before_the_baseline_gains_the_columns_added_since(sql_url: str) -> None:
    """A deployment keeps its database across upgrades: a database made before migrations
    (no version) and before a column was added gets the column without losing the alerts
    already recorded (tests/storage tests the upgrade from the baseline release itself)."""
    from alembic import command
    from sqlalchemy import text

    from cloud.storage.schema import alembic_config

    url = sql_url
    old_engine = SqlStore.engine_for(url)
    with old_engine.begin() as conn:  # what an older release created: the baseline, without `detail`
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("ALTER TABLE alerts DROP COLUMN detail"))
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(
            text(
                "INSERT INTO alerts (key, active_key, scope, subject, commune, cause, severity, problem, "
                "state, started_at, opened_at, flaps, down, total, members, suppressed, reminders) VALUES "
                "('node:dr-cam-02', 'node:dr-cam-02', 'node', 'dr-cam-02', 'da-ron', 'silent', 'critical', "
                "'', 'open', :t, :t, 0, 0, 0, '', 0, 0)"
            ),
            {"t": T0},
        )
        kept_id = conn.execute(text("SELECT id FROM alerts")).scalar_one()
    old_engine.dispose()

    upgraded = AlertStore(SqlStore(url).engine)
    problem = Change(
        "open", "device:dr-cam-01:fps_low", Scope.DEVICE, "dr-cam-01", "da-ron",
        Cause.DEVICE, Severity.WARNING, T0, T0, problem="fps_low", detail="3.0/15 fps",
    )  # fmt: skip
    row = upgraded.apply(problem)
    assert row is not None and row.detail == "3.0/15 fps"
    old = upgraded.get(kept_id)
    assert old is not None and (old.subject, old.state, old.detail) == ("dr-cam-02", "open", "")
