"""A broker node killed under load: boards fail over, nothing is lost, no false alert (issue 20).

Everything real: a three-node NATS cluster (MQTT 3.1.1 + JetStream, one data dir and port
set per node), InfluxDB, ``commune-iot cloud serve`` and edge agents as processes, with the
shipped detection defaults (health every 10 s, keepalive 10 s, silence 1.5 x interval, grace
3 s). The agents list every node (``broker.urls``) and spread over them; six send health and
metrics every 10 s like real boards, three more send metrics every 0.25 s, so messages are in
flight when a node is killed (SIGKILL) at a random instant (``commune_iot.bench.cluster``).

Then: every board of the dead node is connected to a surviving one, no alert opens (the
cloud gives the boards their settle time when a node stops answering, and pauses judgement
while the cluster delivers nothing), a board frozen afterwards is alerted within 20 s as on
one broker, a board killed is alerted on its Will, and every message the stopped agents
produced reached the cloud: no sequence gap up to each agent's last sequence number.

The default run kills one node (about 70 s); the slow variant runs twice the load and kills
a node twice (the first one restarted and rejoined in between).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from commune_iot.bench.cluster import BOARDS, LOADERS, cluster_rig, device, fail_over, stop_and_count
from commune_iot.localcluster import NatsCluster
from commune_iot.localsvc import InfluxDB

MORE_LOADERS = ["dr-ap-04", "tt-ap-07", "lx-ap-02"]
#: The issue's bound for an outage alert; one Mosquitto measured 13.8 to 18.0 s (docs/scaling.md).
ALERT_WITHIN_S = 20.0


def _run(
    tmp_path: Path, cluster: NatsCluster, influx: InfluxDB, db: str, loaders: list[str], kills: int
) -> None:
    rng = random.Random()
    with cluster_rig(tmp_path / "rig", cluster, loaders, influx=influx, database=db) as rig:
        for k in range(kills):
            if k:
                cluster.revive()  # the killed node rejoins: the cluster can lose one again
            victim, took = fail_over(rig, rng)
            assert took, "the killed node held no board"
            assert max(took.values()) < 30, f"slow failover after {victim.name} died: {took}"
            rig.wait_judging(120)  # the cloud judges again (after its settle time)
            states = {b: device(rig, b)["board"] for b in BOARDS + loaders}
            assert set(states.values()) == {"up"}, states
            assert rig.sink.notices() == [], f"false alert after {victim.name} died: {rig.sink.notices()}"

        frozen, killed = rng.sample(BOARDS, 2)
        time.sleep(rng.uniform(0.0, 10.0))
        frozen_at = rig.freeze(frozen)
        got = rig.sink.wait_for(lambda n: n["subject"] == frozen, 40, "about the frozen board")
        assert got.at - frozen_at <= ALERT_WITHIN_S, f"alerted {got.at - frozen_at:.1f} s after the freeze"
        # NATS enforces the keepalive to the second: its Will (at 1.5 x keepalive) may come first.
        assert got.notice["cause"] in ("silent", "will")
        killed_at = rig.kill(killed)  # its node is alive: it sends the Will
        got = rig.sink.wait_for(lambda n: n["subject"] == killed, 20, "about the killed board")
        assert got.notice["cause"] == "will" and got.at - killed_at <= 3.0 + 2.0  # grace + 2 s
        assert {n.notice["subject"] for n in rig.sink.notices()} == {frozen, killed}, "a false alert"

        seq_at_thaw = device(rig, frozen)["last_seq"]
        rig.thaw(frozen)  # its node dropped it on the keepalive: it reconnects, then sends what waited
        deadline = time.monotonic() + 60
        while device(rig, frozen)["last_seq"] == seq_at_thaw:
            assert time.monotonic() < deadline, "the thawed board sent nothing"
            time.sleep(0.5)
        # The killed board's outbox waits on its disk for its next start: not counted here.
        for d in stop_and_count(rig, [b for b in BOARDS + loaders if b != killed]):
            assert d.left == 0, f"{d.node} stopped with {d.left} messages unsent"
            assert d.cloud["session"] == d.session
            # every seq up to the last arrived; some twice (QoS 1: a message whose PUBACK died
            # with the node is sent again to the next one), which the cloud stores once
            assert d.lost == 0, f"{d.node} lost messages: {d.cloud} (agent's last seq {d.last_seq})"


def test_a_broker_node_killed_under_load_loses_nothing_and_alerts_nobody(
    tmp_path: Path, cluster: NatsCluster, influx_server: InfluxDB, influx_db: str
) -> None:
    _run(tmp_path, cluster, influx_server, influx_db, LOADERS, kills=1)


@pytest.mark.slow
def test_two_broker_node_deaths_under_twice_the_load(
    tmp_path: Path, cluster: NatsCluster, influx_server: InfluxDB, influx_db: str
) -> None:
    _run(tmp_path, cluster, influx_server, influx_db, LOADERS + MORE_LOADERS, kills=2)
