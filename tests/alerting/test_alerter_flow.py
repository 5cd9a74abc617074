"""From ingest to notices: what is recorded, what is sent, and to whom it is not (real SQLite, fake clock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alerting_helpers import inventory

from cloud.alerting.alerter import Alerter, StepResult
from cloud.alerting.maintenance import Window
from cloud.alerting.settings import AlertingConfig
from cloud.ingest.convert import Converted
from cloud.storage.alerts_sql import AlertStore
from cloud.storage.sql import SqlStore
from wire import Health, Metrics, Point, Status
from wire.topics import Channel

T0 = 1_800_000_000.0
SESSION = "a1b2c3d4"


def _status(node: str, state: str, reason: str) -> Converted:
    msg = Status(
        node=node,
        session=SESSION,
        seq=0,
        ts=T0,
        state=state,
        reason=reason,
        health_interval_s=10,  # type: ignore[arg-type]
    )
    return Converted(node, "da-ron", True, Channel.STATUS, [], msg)


def _health(node: str, seq: int, at: float) -> Converted:
    msg = Health(node=node, session=SESSION, seq=seq, ts=at, agent_uptime_s=seq * 10.0, outbox_depth=0)  # type: ignore[arg-type]
    return Converted(node, "da-ron", True, Channel.HEALTH, [], msg)


class Harness:
    def __init__(self, tmp: Path, holder: str = "worker-a", cfg: AlertingConfig | None = None) -> None:
        self.store = AlertStore(SqlStore(f"sqlite:///{tmp / 'cloud.db'}").engine)
        self.alerter = Alerter(cfg or AlertingConfig(reminder_s=600), inventory(), self.store, holder)
        self.now = T0
        self.sent: list[tuple[str, str, int]] = []  # (kind, subject, alert id)
        self.recorded: list[tuple[str, str]] = []
        self.alive = {"dr-cam-01", "dr-cam-02"}
        self.seq = 0
        self.alerter.observe([(_status(n, "online", "birth"), self.now) for n in sorted(self.alive)])

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += 1.0
            if int(self.now) % 10 == 0:
                self.seq += 1
                self.alerter.observe([(_health(n, self.seq, self.now), self.now) for n in sorted(self.alive)])
            res: StepResult = self.alerter.step(self.now, broker_connected=True)
            self.sent += [(n.kind, n.subject, n.alert_id) for n in res.notices]
            self.recorded += [(n.kind, n.subject) for n in res.records]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path)
    harness.run(60)  # settle after connecting
    return harness


def test_a_frozen_node_is_sent_once_then_reminded_then_resolved_with_duration(h: Harness) -> None:
    h.alive.discard("dr-cam-01")
    h.run(30)
    assert [(k, s) for k, s, _ in h.sent] == [("open", "dr-cam-01")]
    h.run(600)
    assert [k for k, _, _ in h.sent] == ["open", "reminder"]
    h.alive.add("dr-cam-01")
    h.run(30)
    assert [k for k, _, _ in h.sent] == ["open", "reminder", "resolve"]
    row = h.store.get(h.sent[0][2])
    assert row is not None and row.state == "resolved" and row.reminders == 1
    assert 600 <= (row.duration_s or 0) <= 660
    assert h.recorded == [("open", "dr-cam-01"), ("resolve", "dr-cam-01")]


def test_acknowledged_alerts_are_not_reminded(h: Harness) -> None:
    h.alive.discard("dr-cam-01")
    h.run(30)
    h.store.acknowledge(h.sent[0][2], "Hùng", h.now, "")
    h.run(1300)
    assert [k for k, _, _ in h.sent] == ["open"]


def test_maintenance_records_but_sends_nothing_and_a_device_still_down_after_it_notifies(h: Harness) -> None:
    h.store.add_window(Window("device", "dr-cam-01", h.now, h.now + 120, comment="thay camera"))
    h.alerter.refresh_windows()
    h.alive.discard("dr-cam-01")
    h.run(60)
    active = h.store.query(state="active")
    assert [(r.subject, r.suppressed) for r in active] == [("dr-cam-01", True)]
    assert h.sent == []
    assert h.recorded == [("open", "dr-cam-01")]  # outage data is kept regardless
    h.run(70)  # the window ends, the camera is still down
    assert [(k, s) for k, s, _ in h.sent] == [("open", "dr-cam-01")]


def test_an_outage_inside_maintenance_ends_silently(h: Harness) -> None:
    h.store.add_window(Window("commune", "da-ron", h.now, h.now + 600))
    h.alerter.refresh_windows()
    h.alive.discard("dr-cam-01")
    h.run(60)
    h.alive.add("dr-cam-01")
    h.run(60)
    assert h.sent == []
    assert [r.state for r in h.store.query()] == ["resolved"]


def test_silenced_alert_gets_no_reminders(h: Harness) -> None:
    h.alive.discard("dr-cam-01")
    h.run(30)
    h.store.silence(h.sent[0][2], h.now + 3600)
    h.run(1300)
    assert [k for k, _, _ in h.sent] == ["open"]


def test_only_the_lease_holder_notifies_and_a_successor_takes_over_open_alerts(tmp_path: Path) -> None:
    a = Harness(tmp_path, "worker-a")
    b = Harness(tmp_path, "worker-b")
    for x in (a, b):
        x.run(60)
    for x in (a, b):
        x.alive.discard("dr-cam-01")
    for _ in range(30):
        a.run(1)
        b.run(1)
    assert [(k, s) for k, s, _ in a.sent] == [("open", "dr-cam-01")]
    assert b.sent == []
    # worker-a dies; worker-b takes the lease, knows the open alert and resolves it once
    b.alive.add("dr-cam-01")
    b.run(60)
    assert [(k, s) for k, s, _ in b.sent] == [("resolve", "dr-cam-01")]
    assert len(a.store.query()) == 1


def test_device_problems_come_from_collector_points(h: Harness) -> None:
    points = [Point(measurement="camera", device="dr-cam-02", fields={"up": False, "fps": 0.0})]
    msg = Metrics(node="dr-cam-02", session=SESSION, seq=99, ts=h.now, points=points)  # type: ignore[arg-type]
    h.alerter.observe([(Converted("dr-cam-02", "da-ron", True, Channel.METRICS, [], msg), h.now)])
    h.run(5)
    assert [(k, s) for k, s, _ in h.sent] == [("open", "dr-cam-02")]
    assert h.store.query()[0].problem == "stream_down"


def test_a_broken_batch_never_reaches_ingest(h: Harness) -> None:
    h.alerter.observe([(object(), h.now)])  # type: ignore[list-item]
    h.run(5)
    assert h.sent == []
