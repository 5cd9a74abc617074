"""Each rule of the alert engine, with a fake clock: what a technician would notice."""

from __future__ import annotations

from alerting_helpers import DA_RON, TU_TRA, Sim, inventory

from cloud.alerting.engine import AlertEngine, Cause, Scope
from cloud.alerting.settings import AlertingConfig


def test_frozen_node_alerts_after_silence_plus_grace_and_not_before() -> None:
    sim = Sim.start(nodes=["dr-cam-01"])
    sim.run(0.1)
    last = sim.now  # a heartbeat at phase 0 arrives on every multiple of 10 s from the start
    sim.run(10 - (sim.now - 1_000_000.0) % 10)  # just after a heartbeat
    sim.freeze("dr-cam-01")
    took, changes = sim.run_until_change(60)
    assert [c.kind for c in changes] == ["open"]
    alert = changes[0]
    assert (alert.scope, alert.subject, alert.cause) == (Scope.NODE, "dr-cam-01", Cause.SILENT)
    # 1.5 x 10 s of silence, then 3 s of grace, from the last heartbeat
    assert 17.5 <= took <= 18.6
    assert alert.started_at <= sim.now - 17.5 and last <= alert.started_at


def test_silence_uses_the_interval_from_the_birth_certificate() -> None:
    sim = Sim.start(nodes=["dr-cam-01"])
    sim.engine.status("dr-cam-01", "da-ron", "online", "birth", sim.now, health_interval_s=60)
    sim.freeze("dr-cam-01")
    took, _ = sim.run_until_change(200)
    assert 90 <= took <= 94  # 1.5 x 60 s + grace


def test_will_alerts_after_grace_and_a_quick_reconnect_alerts_nobody() -> None:
    sim = Sim.start(nodes=["dr-cam-01", "dr-cam-02"])
    sim.will("dr-cam-01")
    sim.run(1.0)
    sim.birth("dr-cam-01")  # kill -9 and restart within a second
    assert sim.run(30) == []
    sim.will("dr-cam-02")
    took, changes = sim.run_until_change(10)
    assert [(c.kind, c.subject, c.cause) for c in changes] == [("open", "dr-cam-02", Cause.WILL)]
    assert 3.0 <= took <= 3.2


def test_recovery_needs_minimum_time_and_resolve_carries_duration() -> None:
    sim = Sim.start(nodes=["dr-cam-01"])
    sim.will("dr-cam-01")
    sim.run(20)
    sim.birth("dr-cam-01")
    sim.run(5)  # back for less than recovery_s ...
    sim.will("dr-cam-01")  # ... and gone again: the same alert, one flap
    sim.run(20)
    sim.birth("dr-cam-01")
    changes = sim.run(30)
    assert [c.kind for c in sim.changes] == ["open", "update", "resolve"]
    resolved = changes[-1]
    assert resolved.flaps == 1
    # the outage: from the last heartbeat before the first Will (t=40) to the last birth (t=91);
    # the recovery check (10 s more) is not part of it, nor the 6 s between heartbeat and Will
    assert resolved.ended_at is not None
    assert resolved.started_at == sim.now - 30 - 20 - 5 - 20 - 6
    assert resolved.duration_s == resolved.ended_at - resolved.started_at == 51
    assert resolved.at - resolved.ended_at == 10


def test_flapping_every_5s_for_2_minutes_is_one_alert_with_a_count() -> None:
    sim = Sim.start(nodes=["dr-cam-01"])
    for _ in range(12):
        sim.will("dr-cam-01")
        sim.run(5)
        sim.birth("dr-cam-01")
        sim.run(5)
    sim.run(120)
    opened = [c for c in sim.changes if c.kind == "open"]
    resolved = [c for c in sim.changes if c.kind == "resolve"]
    assert len(opened) == 1 and len(resolved) == 1
    assert resolved[0].flaps == 11


def test_outages_shorter_than_grace_but_repeated_open_a_flapping_alert() -> None:
    sim = Sim.start(nodes=["dr-cam-01"])
    for _ in range(3):
        sim.will("dr-cam-01")
        sim.run(1)
        sim.birth("dr-cam-01")
        sim.run(20)
    opened = [c for c in sim.changes if c.kind == "open"]
    assert [(c.cause, c.flaps) for c in opened] == [(Cause.FLAPPING, 3)]
    sim.run(60)
    assert sim.changes[-1].kind == "resolve"


def test_blips_while_the_broker_settles_are_not_flaps() -> None:
    """A clustered broker losing a node drops some boards of the others while it elects leaders
    (their Wills come, their births follow); the cloud gives everyone its settle time then. Two
    node deaths must not leave those boards one blip away from a flapping alert."""
    sim = Sim.start(nodes=["dr-cam-01"])
    for _ in range(2):  # two broker incidents, each costing the board a Will and a birth
        sim.engine.broker(False, sim.now)
        sim.engine.broker(True, sim.now)
        sim.will("dr-cam-01")
        sim.run(1)
        sim.birth("dr-cam-01")
        sim.run(AlertingConfig().settle_s + 1)
    sim.will("dr-cam-01")  # one short outage of its own: under the grace, no alert
    sim.run(1)
    sim.birth("dr-cam-01")
    sim.run(30)
    assert sim.changes == []


def test_a_commune_going_silent_is_one_commune_alert_and_no_node_alerts() -> None:
    sim = Sim.start()
    sim.freeze(*TU_TRA)  # uplink cut: heartbeats stop at their own phases
    sim.run(90)
    assert {(c.scope, c.subject) for c in sim.changes} == {(Scope.COMMUNE, "tu-tra")}
    assert [c.kind for c in sim.changes if c.kind != "update"] == ["open"]
    assert (sim.changes[-1].down, sim.changes[-1].total) == (6, 6)  # the count follows the stragglers
    for n in TU_TRA:
        assert sim.engine.node_state(n) == "down"
        assert sim.engine.device_state(n) == "unknown"
    assert sim.engine.node_state(DA_RON[0]) == "up"
    for n in TU_TRA:
        sim.birth(n)
    sim.run(30)
    assert [(c.kind, c.scope) for c in sim.changes if c.kind != "update"] == [
        ("open", Scope.COMMUNE),
        ("resolve", Scope.COMMUNE),
    ]
    assert 95 <= sim.changes[-1].duration_s <= 115


def test_one_silent_node_in_a_busy_commune_is_not_held_back() -> None:
    sim = Sim.start()
    sim.run(10 - (sim.now - 1_000_000.0) % 10)
    sim.freeze(TU_TRA[0])
    took, changes = sim.run_until_change(60)
    assert [(c.scope, c.subject) for c in changes] == [(Scope.NODE, TU_TRA[0])]
    assert took <= 18.6


def test_two_nodes_down_in_a_commune_of_six_are_two_node_alerts_without_delay() -> None:
    sim = Sim.start()
    willed = sim.now
    sim.will(TU_TRA[0])
    sim.will(TU_TRA[1])
    sim.run(40)
    opened = [(c.scope, c.subject) for c in sim.changes if c.kind == "open"]
    assert opened == [(Scope.NODE, TU_TRA[0]), (Scope.NODE, TU_TRA[1])]
    assert all(c.at - willed <= 3.5 for c in sim.changes)


def test_a_small_commune_going_dark_is_recognised_whatever_the_heartbeat_phases() -> None:
    for offset in (0.0, 2.5, 5.0, 7.5, 9.9):
        sim = Sim.start(nodes=DA_RON)
        sim.phase = {"dr-cam-01": 0.0, "dr-cam-02": 9.9, "dr-ap-01": offset}  # as far apart as can be
        sim.run(20)
        sim.changes.clear()
        sim.freeze(*DA_RON)
        sim.run(60)
        assert [(c.kind, c.scope) for c in sim.changes if c.kind != "update"] == [("open", Scope.COMMUNE)]


def test_a_will_alerts_within_20s_although_the_birth_says_health_every_300s() -> None:
    """The shipped 3G profile: health every 300 s, so the silence rule waits 450 s and the Will
    (keepalive 10 s: 15 s of silence) is the only fast path. Its peers, quiet for most of their
    300 s between two health messages, must not pass for a commune going dark and hold the
    alert back (up to commune_window_s)."""
    sim = Sim.start(interval=300.0)
    # heartbeats at 1,000,200 + phase (0-19 s); at 1,000,450 every node of the commune has been
    # quiet for more than 0.75 x 300 s, as healthy boards are for a quarter of the time
    sim.run(1_000_450.0 - sim.now)
    assert sim.changes == []
    assert all(sim.now - sim.engine._nodes[n].last_seen > 225 for n in TU_TRA)
    sim.will(TU_TRA[0])  # 15 s after the board went dark
    took, changes = sim.run_until_change(60)
    assert [(c.kind, c.scope, c.subject, c.cause) for c in changes] == [
        ("open", Scope.NODE, TU_TRA[0], Cause.WILL)
    ]
    assert took <= 3.2  # 15 s + 3 s grace: within 20 s of the outage
    # and a whole commune going dark is still one commune alert, not six node alerts
    for n in TU_TRA[1:]:
        sim.will(n)
    sim.run(30)
    assert [(c.kind, c.scope) for c in sim.changes if c.kind == "open"][-1] == ("open", Scope.COMMUNE)


def test_device_behind_a_down_node_gets_no_alert_of_its_own() -> None:
    sim = Sim.start(nodes=["dr-cam-01", "dr-cam-02"])
    sim.engine.device_problem("dr-cam-02", "stream_down", True, sim.now)
    changes = sim.run(5)
    assert [(c.scope, c.subject, c.problem) for c in changes] == [(Scope.DEVICE, "dr-cam-02", "stream_down")]
    sim.engine.device_problem("dr-cam-02", "stream_down", False, sim.now)
    assert [c.kind for c in sim.run(1)] == ["resolve"]

    sim.will("dr-cam-01")
    sim.engine.device_problem("dr-cam-01", "stream_down", True, sim.now)
    changes = sim.run(10)
    assert [(c.scope, c.subject) for c in changes] == [(Scope.NODE, "dr-cam-01")]
    assert sim.engine.device_state("dr-cam-01") == "unknown"


def test_cloud_losing_the_broker_for_30s_alerts_nobody() -> None:
    sim = Sim.start()
    sim.engine.broker(False, sim.now)
    frozen = set(sim.alive)
    sim.freeze(*frozen)  # nothing reaches the cloud, and the broker sent every node's Will
    for n in frozen:
        sim.engine.status(n, "tu-tra" if n in TU_TRA else "da-ron", "offline", "will", sim.now)
    sim.run(30)
    sim.engine.broker(True, sim.now)
    # the retained Wills are re-read; nodes come back over the next half minute (their back-off)
    for i, n in enumerate(sorted(frozen)):
        sim.run(3)
        if i == 0:
            continue  # this one never comes back
        sim.birth(n)
    sim.run(120)
    assert [(c.kind, c.subject, c.cause) for c in sim.changes] == [("open", sorted(frozen)[0], Cause.WILL)]
    assert sim.changes[0].at - sim.now + 120 >= 0


def test_death_of_an_older_connection_is_ignored() -> None:
    sim = Sim.start(nodes=["dr-cam-01"])
    sim.birth("dr-cam-01", session="beefbeef")  # restarted: new session
    sim.engine.status("dr-cam-01", "da-ron", "offline", "will", sim.now, session="a1b2c3d4")
    assert sim.run(60) == []


def test_nothing_is_judged_before_the_cloud_settles_after_connecting() -> None:
    cfg = AlertingConfig()
    sim = Sim.start(cfg, nodes=["dr-cam-01"], settle=False)
    sim.will("dr-cam-01")  # a retained Will read at start-up
    took, changes = sim.run_until_change(120)
    assert [c.subject for c in changes] == ["dr-cam-01"]
    assert cfg.settle_s + cfg.grace_s <= took <= cfg.settle_s + cfg.grace_s + 0.2


def test_summary_counts_per_commune() -> None:
    sim = Sim.start(nodes=TU_TRA[:5] + DA_RON)
    sim.will(DA_RON[0])
    sim.run(5)
    s = sim.engine.summary()
    assert s["tu-tra"] == {
        "nodes_up": 5, "nodes_down": 0, "nodes_unknown": 1,
        "devices_up": 5, "devices_down": 0, "devices_unknown": 1,
    }  # fmt: skip
    assert s["da-ron"]["nodes_down"] == 1 and s["da-ron"]["devices_unknown"] == 1


def test_an_evaluator_taking_over_keeps_open_alerts_of_boards_still_silent() -> None:
    """A running worker inherits alerts from a dead one; the database says the board spoke
    a few seconds ago (just before it died). It must not look healthy for a moment and
    resolve, only to open again once its silence is judged."""
    old = Sim.start(nodes=["dr-cam-01"])
    old.freeze("dr-cam-01")
    old.run(30)
    (opened,) = [c for c in old.changes if c.kind == "open"]
    heir = Sim.start(nodes=["dr-cam-02"])  # connected and judging for a while already
    heir.run(old.now - heir.now)
    heir.engine.restore(opened)
    heir.engine.remember("dr-cam-01", "da-ron", heir.now - 5)
    assert heir.run(120) == []
    assert heir.engine.node_state("dr-cam-01") == "down"
    heir.birth("dr-cam-01")
    assert [c.kind for c in heir.run(15)] == ["resolve"]


def test_a_restored_device_alert_waits_for_its_node_to_say_it_is_fixed() -> None:
    old = Sim.start(nodes=["dr-cam-01"])
    old.engine.device_problem("dr-cam-01", "stream_down", True, old.now)
    (opened,) = old.run(5)
    heir = Sim.start(nodes=["dr-cam-01"])
    heir.engine.restore(opened)
    assert heir.run(60) == []
    heir.engine.device_problem("dr-cam-01", "stream_down", False, heir.now)
    assert [c.kind for c in heir.run(1)] == ["resolve"]


def test_a_will_after_the_silence_was_judged_keeps_the_cause_silent() -> None:
    """A frozen board: our silence limit passes first, the broker's Will follows a few
    seconds later, still within the grace. The technician is told what happened first."""
    sim = Sim.start(nodes=["dr-cam-01"])
    sim.freeze("dr-cam-01")
    while sim.engine.node_state("dr-cam-01") == "up":
        sim.run(0.5)
    sim.will("dr-cam-01")
    _, changes = sim.run_until_change(10)
    assert [(c.kind, c.cause) for c in changes] == [("open", Cause.SILENT)]


def test_a_cloud_behind_on_its_own_ingest_does_not_call_boards_silent() -> None:
    """The cloud short of CPU (10,000 boards on a busy node): messages received 30 s ago are
    not committed yet. Silence counts only up to what ingest has delivered; once it catches up,
    the boards are heard and nothing opened. A board silent before the backlog is still alerted."""
    sim = Sim.start()
    sim.freeze("dr-cam-01")  # really silent, from before the backlog
    backlog_from = sim.now
    opened = []
    for _ in range(60):  # 30 s of backlog: heartbeats received, none committed
        sim.now += 0.5
        opened += sim.engine.tick(sim.now, heard_until=backlog_from)
    assert opened == []  # neither the waiting nodes nor (yet) the silent one: heard_until stands still
    for n in sim.alive:
        sim.engine.seen(n, "da-ron" if n.startswith("dr") else "tu-tra", sim.now - 1)  # the backlog arrives
    changes = sim.run(5)
    assert [(c.kind, c.subject) for c in changes] == [("open", "dr-cam-01")]


def test_a_board_holding_its_data_after_its_birth_is_not_silent_and_a_dead_one_still_is() -> None:
    """A board that just connected sends its birth and then nothing until an ingest worker
    announces itself live (every host_heartbeat_s, 5 s): with a silence limit under that (2 s)
    every board that connected was once judged silent and the technicians told of an outage
    that never was, seconds before its held heartbeats arrived."""
    cfg = AlertingConfig(silence_floor_s=2.0, grace_s=1.0, recovery_s=2.0, settle_s=1.0)
    sim = Sim(AlertEngine(cfg, inventory(), hold_s=5.0), interval=1.0)
    sim.engine.broker(True, sim.now)
    sim.run(cfg.settle_s + 1)
    sim.birth("dr-cam-01")
    sim.freeze("dr-cam-01")  # holding: the birth and nothing else
    born = sim.now
    assert sim.run(4.9) == [] and sim.engine.node_state("dr-cam-01") == "up"
    sim.alive.add("dr-cam-01")  # the worker's announcement came: the held heartbeats follow
    assert sim.run(60) == [] and sim.engine.node_state("dr-cam-01") == "up"

    # A board that dies right after its birth is judged once the hold and its silence are over.
    sim.birth("dr-cam-02")
    sim.freeze("dr-cam-02")
    born = sim.now
    took, changes = sim.run_until_change(30)
    assert [(c.kind, c.subject, c.cause) for c in changes] == [("open", "dr-cam-02", Cause.SILENT)]
    assert 5.0 + 2.0 + 1.0 <= took <= 5.0 + 2.0 + 1.0 + 0.6  # hold + silence limit + grace
    assert changes[0].started_at == born  # the outage runs from its birth, its last message

    # After its hold a board that freezes is judged as fast as ever (2 s + 1 s grace).
    sim.run(10)
    sim.freeze("dr-cam-01")
    took, changes = sim.run_until_change(30)
    assert [(c.kind, c.subject) for c in changes] == [("open", "dr-cam-01")] and took <= 2.0 + 1.0 + 1.1
