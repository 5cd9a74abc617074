"""From ingest to notices: what is recorded, what is sent, and to whom it is not (real SQLite, fake clock)."""

from __future__ import annotations

import pytest
from alerting_helpers import inventory

from cloud.alerting.alerter import Alerter, StepResult, notice_of
from cloud.alerting.maintenance import Window
from cloud.alerting.settings import AlertingConfig
from cloud.ingest.convert import Converted
from cloud.notify.messages import render
from cloud.storage.alerts_sql import AlertStore
from cloud.storage.sql import SqlStore
from wire import Health, Metrics, Point, Status
from wire.messages import TAMPER_SNAPSHOT_FIELD
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
    def __init__(
        self,
        sql_url: str,
        holder: str = "worker-a",
        cfg: AlertingConfig | None = None,
        alive: tuple[str, ...] = ("dr-cam-01", "dr-cam-02"),
    ) -> None:
        sql = SqlStore(sql_url)
        self.store = AlertStore(sql.engine)
        self.last_seen: dict[str, tuple[str, float]] = {}  # what the nodes table would say
        self.alerter = Alerter(
            cfg or AlertingConfig(reminder_s=600),
            inventory(),
            self.store,
            holder,
            last_seen_source=lambda: self.last_seen,
        )
        self.now = T0
        self.sent: list[tuple[str, str, int]] = []  # (kind, subject, alert id)
        self.recorded: list[tuple[str, str]] = []
        self.alive = set(alive)
        self.seq = 0
        self.alerter.observe([(_status(n, "online", "birth"), self.now) for n in sorted(self.alive)])

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += 1.0
            if int(self.now) % 10 == 0:
                self.seq += 1
                self.last_seen.update({n: ("da-ron", self.now) for n in self.alive})
                self.alerter.observe([(_health(n, self.seq, self.now), self.now) for n in sorted(self.alive)])
            res: StepResult = self.alerter.step(self.now, broker_connected=True)
            self.sent += [(n.kind, n.subject, n.alert_id) for n in res.notices]
            self.recorded += [(n.kind, n.subject) for n in res.records]


@pytest.fixture
def h(sql_url: str) -> Harness:
    harness = Harness(sql_url)
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


def test_only_the_lease_holder_notifies_and_a_successor_takes_over_open_alerts(sql_url: str) -> None:
    a = Harness(sql_url, "worker-a")
    b = Harness(sql_url, "worker-b")
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


def test_an_outage_judged_while_no_evaluator_ran_is_recorded_by_the_successor(sql_url: str) -> None:
    """The evaluator dies and a board goes silent. The other worker's engine judges it down
    before the dead worker's lease lapses, but records nothing: it is not the evaluator. When
    it takes the lease, it records and announces that alert: no outage is lost in a hand-over."""
    cfg = AlertingConfig(reminder_s=600, lease_s=60.0)
    a = Harness(sql_url, "worker-a", cfg)
    b = Harness(sql_url, "worker-b", cfg)
    a.run(60)
    b.run(60)
    # worker-a is dead from here on; dr-cam-01 goes silent
    b.alive.discard("dr-cam-01")
    b.run(30)  # down and past its grace for b's engine, but a's lease holds
    assert b.sent == [] and b.store.query() == []
    b.run(60)  # the lease lapses; b takes over
    assert [(k, s) for k, s, _ in b.sent] == [("open", "dr-cam-01")]
    assert [(r.subject, r.state) for r in b.store.query()] == [("dr-cam-01", "open")]
    b.alive.add("dr-cam-01")
    b.run(30)
    assert [(k, s) for k, s, _ in b.sent] == [("open", "dr-cam-01"), ("resolve", "dr-cam-01")]


def test_a_successor_does_not_announce_what_only_its_share_of_the_traffic_made_look_down(
    sql_url: str,
) -> None:
    """Shared subscription: for a while worker-b hears nothing of dr-cam-01 (its messages go
    to worker-a, which records them in the nodes table), so b's engine judges it down. a dies;
    b takes over within seconds, judges again from the table, and announces nothing."""
    cfg = AlertingConfig(reminder_s=600, lease_s=6.0)
    a = Harness(sql_url, "worker-a", cfg)
    b = Harness(sql_url, "worker-b", cfg)
    b.alive.discard("dr-cam-01")  # not in b's share
    for _ in range(100):  # in step: a holds the 6 s lease throughout
        a.run(1)
        b.run(1)
        b.last_seen.update((n, a.last_seen[n]) for n in ["dr-cam-01"] if n in a.last_seen)  # a's records
    assert b.alerter.engine.node_state("dr-cam-01") == "down" and a.sent == []
    # a dies at its last step; the broker deals b the node's messages from now on
    b.alive.add("dr-cam-01")
    b.run(10)  # a's lease lapses within 6 s and b takes over
    assert b.alerter.leader
    b.run(30)
    assert b.sent == [] and b.store.query() == []


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


def _points(h: Harness, node: str, *points: Point, replay: bool = False) -> None:
    h.seq += 1
    msg = Metrics(node=node, session=SESSION, seq=h.seq, ts=h.now, points=list(points), replay=replay)  # type: ignore[arg-type]
    h.alerter.observe([(Converted(node, "da-ron", True, Channel.METRICS, [], msg), h.now)])


def _camera(up: bool, fps: float, nominal: float = 15.0, frozen: bool = False) -> Point:
    fields = {"up": up, "fps": fps, "nominal_fps": nominal, "frozen": frozen}
    return Point(measurement="camera", device="dr-cam-02", fields=fields)  # type: ignore[arg-type]


def test_frame_rate_collapse_warns_with_the_figures_and_clears(h: Harness) -> None:
    _points(h, "dr-cam-02", _camera(True, 14.8))
    h.run(10)
    assert h.sent == []
    _points(h, "dr-cam-02", _camera(True, 3.0))
    h.run(10)
    assert [(k, s) for k, s, _ in h.sent] == [("open", "dr-cam-02")]
    row = h.store.query()[0]
    assert (row.problem, row.severity, row.detail) == ("fps_low", "warning", "3.0/15 fps")
    _points(h, "dr-cam-02", _camera(True, 15.0))
    h.run(10)
    assert [k for k, _, _ in h.sent] == ["open", "resolve"]


def test_a_dead_stream_is_one_critical_alert_not_also_slow_and_frozen(h: Harness) -> None:
    _points(h, "dr-cam-02", _camera(True, 2.0, frozen=True))
    h.run(10)
    assert sorted(r.problem for r in h.store.query(state="active")) == ["fps_low", "frozen"]
    _points(h, "dr-cam-02", _camera(False, 0.0))
    h.run(20)
    active = h.store.query(state="active")
    assert [(r.problem, r.severity) for r in active] == [("stream_down", "critical")]


def test_a_covered_lens_that_also_looks_frozen_is_one_tampering_alert(h: Harness) -> None:
    """A covered lens sends the same flat picture: after 10 s the board also says frozen. The
    technician gets one alert, tampering (covered), never also "frozen (power-cycle it)"; once
    uncovered, a picture that still does not change is a frozen camera again."""

    def cam(kind: str, frozen: bool) -> Point:
        fields = {"up": True, "fps": 15.0, "nominal_fps": 15.0, "tampering": kind, "frozen": frozen}
        return Point(measurement="camera", device="dr-cam-02", fields=fields)  # type: ignore[arg-type]

    _points(h, "dr-cam-02", cam("covered", False))
    h.run(10)
    _points(h, "dr-cam-02", cam("covered", True))
    h.run(30)
    active = h.store.query(state="active")
    assert [(r.problem, r.detail) for r in active] == [("tampering", "covered")]
    assert [(k, s) for k, s, _ in h.sent] == [("open", "dr-cam-02")]
    _points(h, "dr-cam-02", cam("", True))  # uncovered, but the picture is stuck
    h.run(30)
    active = h.store.query(state="active")
    assert [r.problem for r in active] == ["frozen"]


def test_a_tampered_camera_opens_a_technician_warning_with_the_kind_and_clears(h: Harness) -> None:
    def cam(kind: str) -> Point:
        fields = {"up": True, "fps": 15.0, "nominal_fps": 15.0, "tampering": kind, "camera_moving": False}
        return Point(measurement="camera", device="dr-cam-02", fields=fields)  # type: ignore[arg-type]

    _points(h, "dr-cam-02", cam(""))
    h.run(10)
    assert h.sent == []
    _points(h, "dr-cam-02", cam("covered"))
    h.run(10)
    assert [(k, s) for k, s, _ in h.sent] == [("open", "dr-cam-02")]
    row = h.store.query()[0]
    assert (row.problem, row.severity, row.detail) == ("tampering", "warning", "covered")
    assert row.snapshot_sha256 is None  # an older agent: no picture, the alert as before
    _points(h, "dr-cam-02", cam(""))
    h.run(10)
    assert [k for k, _, _ in h.sent] == ["open", "resolve"]


def test_a_tampered_cameras_alert_and_notice_carry_the_picture_the_board_sent(h: Harness) -> None:
    sha = "ab" * 32
    fields = {"up": True, "tampering": "covered", "camera_moving": False, TAMPER_SNAPSHOT_FIELD: sha}
    _points(h, "dr-cam-02", Point(measurement="camera", device="dr-cam-02", fields=fields))  # type: ignore[arg-type]
    h.run(10)
    row = h.store.query()[0]
    assert (row.problem, row.detail, row.snapshot_sha256) == ("tampering", "covered", sha)
    vi = render(notice_of(row, "open", h.now), inventory(), "vi", "https://ciot.example")
    assert "camera bị che, tối, mờ hoặc bị xoay hướng (bị che)" in vi.title
    assert f"Ảnh lúc phát hiện: https://ciot.example/api/v1/alerts/{row.id}/snapshot" in vi.text
    en = render(notice_of(row, "open", h.now), inventory(), "en", "https://ciot.example")
    assert f"Picture when detected: https://ciot.example/api/v1/alerts/{row.id}/snapshot" in en.text
    with pytest.raises(ValueError, match="SHA-256"):  # the contract: a hash, nothing else
        Point(measurement="camera", device="dr-cam-02", fields={"up": True, TAMPER_SNAPSHOT_FIELD: "x"})


def test_ap_silent_on_snmp_but_answering_ping_is_a_warning_not_an_outage(sql_url: str) -> None:
    h = Harness(sql_url)
    h.alive.add("dr-ap-01")
    h.alerter.observe([(_status("dr-ap-01", "online", "birth"), h.now)])
    h.run(60)

    def ap(reachable: bool, ping: bool | None) -> Point:
        fields: dict[str, object] = {"reachable": reachable}
        if ping is not None:
            fields["ping"] = ping
        return Point(measurement="ap", device="dr-ap-01", fields=fields)  # type: ignore[arg-type]

    _points(h, "dr-ap-01", ap(False, True))
    h.run(10)
    active = h.store.query(state="active")
    assert [(r.problem, r.severity) for r in active] == [("snmp_unreachable", "warning")]
    _points(h, "dr-ap-01", ap(False, False))  # now it does not ping either: the AP is gone
    h.run(15)
    active = h.store.query(state="active")
    assert [(r.problem, r.severity) for r in active] == [("unreachable", "critical")]
    _points(h, "dr-ap-01", ap(True, None))
    h.run(15)
    assert h.store.query(state="active") == []


def test_replayed_points_speak_of_the_past_and_raise_nothing(h: Harness) -> None:
    _points(h, "dr-cam-02", _camera(False, 0.0), replay=True)
    h.run(20)
    assert h.sent == []


def test_clock_skew_and_outbox_backlog_are_information_with_figures(h: Harness) -> None:
    h.seq += 1
    msg = Health(
        node="dr-cam-02",
        session=SESSION,
        seq=h.seq,
        ts=h.now - 400,  # the board's clock is 400 s behind
        agent_uptime_s=100.0,
        outbox_depth=1200,
        outbox_oldest_s=900.0,
    )  # type: ignore[arg-type]
    h.alerter.observe([(Converted("dr-cam-02", "da-ron", True, Channel.HEALTH, [], msg), h.now)])
    h.run(5)  # grace, and no heartbeat yet
    got = {r.problem: (r.severity, r.detail) for r in h.store.query(state="active")}
    assert got == {"clock_skew": ("info", "-400 s"), "outbox_backlog": ("info", "1200 msg, 900 s")}
    h.run(10)  # the next heartbeat is on time with an empty outbox
    assert h.store.query(state="active") == []


def test_a_board_that_went_silent_while_the_cloud_was_down_is_still_alerted(sql_url: str) -> None:
    """The cloud restarts; one board never speaks again. Nothing from it will ever arrive,
    so only the database can tell the new process it exists."""
    last_seen = {"dr-cam-01": ("da-ron", T0 - 600), "dr-cam-02": ("da-ron", T0 - 600)}
    store = AlertStore(SqlStore(sql_url).engine)
    cfg = AlertingConfig()
    alerter = Alerter(cfg, inventory(), store, "worker-a", last_seen_source=lambda: last_seen)
    now, sent = T0, []
    for i in range(120):
        now += 1.0
        if i % 10 == 5:  # dr-cam-02 is back and heartbeating; dr-cam-01 is gone for good
            alerter.observe([(_health("dr-cam-02", i, now), now)])
        sent += [(n.kind, n.subject) for n in alerter.step(now, broker_connected=True).notices]
        if sent:
            break
    assert sent == [("open", "dr-cam-01")]
    # settle_s for boards to reconnect, then its silence limit and the grace period
    assert now - T0 <= cfg.settle_s + 15 + cfg.grace_s + 2


def test_an_alert_taken_over_stays_open_while_its_board_stays_silent(sql_url: str) -> None:
    a = Harness(sql_url, "worker-a")
    a.run(60)
    a.alive.discard("dr-cam-01")
    a.run(30)
    assert [(k, s) for k, s, _ in a.sent] == [("open", "dr-cam-01")]
    # the process restarts (a new Alerter on the same database); dr-cam-01 stays silent
    b = Harness(sql_url, "worker-b", alive=("dr-cam-02",))
    b.last_seen = dict(a.last_seen)  # the nodes table the new process reads
    b.now = a.now + 20  # the old lease lapses
    b.run(300)
    assert b.sent == []
    assert [(r.subject, r.state) for r in b.store.query()] == [("dr-cam-01", "open")]
    b.alive.add("dr-cam-01")
    b.run(30)
    assert [(k, s) for k, s, _ in b.sent] == [("resolve", "dr-cam-01")]
