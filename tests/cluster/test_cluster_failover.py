"""A broker node killed under load: boards fail over, nothing is lost, no false alert (issue 20).

Everything real: a three-node NATS cluster (MQTT 3.1.1 + JetStream, one data dir and port
set per node), InfluxDB, ``commune-iot cloud serve`` and edge agents as processes, with the
shipped detection defaults (health every 10 s, keepalive 10 s, silence 1.5 x interval, grace
3 s). The agents list every node (``broker.urls``) and spread over them; their metrics come
every 10 s like a real board's, while more agents send metrics every 0.25 s, so messages are
in flight when a node is killed (SIGKILL) at a random instant.

Then: every board of the dead node is connected to a surviving one, no alert opens (the
boards were never silent for long, and the cloud pauses judgement while the cluster elects
new leaders), a board frozen afterwards is alerted within 20 s as on one broker, a board
killed is alerted on its Will, and every message the stopped agents produced reached the
cloud: no sequence gap up to each agent's last sequence number.

The default run kills one node (about 80 s); the slow variant runs twice the load and kills a
node twice (the first one restarted and rejoined in between).
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import pytest

from commune_iot.bench.outage import OutageRig
from commune_iot.localcluster import NatsCluster, NatsNode
from commune_iot.localsvc import InfluxDB

#: Two boards per commune (the commune-wide rule needs three down) with the shipped intervals,
#: spread over the three nodes; and boards sending metrics every 0.25 s: the load.
BOARDS = ["dr-ap-01", "dr-ap-03", "tt-ap-01", "tt-ap-06", "lx-ap-01", "lx-ap-03"]
LOADERS = ["dr-ap-02", "tt-ap-04", "lx-ap-04"]
MORE_LOADERS = ["dr-ap-04", "tt-ap-07", "lx-ap-02"]
LOAD_INTERVAL_S = 0.25
#: The issue's bound for an outage alert; one Mosquitto measured 13.8 to 18.0 s (docs/scaling.md).
ALERT_WITHIN_S = 20.0


def _where(cluster: NatsCluster, boards: list[str]) -> dict[str, NatsNode | None]:
    return {b: cluster.node_of(b) for b in boards}


def _fail_over(rig: OutageRig, rng: random.Random) -> tuple[NatsNode, dict[str, float]]:
    """Kill a node holding boards at a random instant; return it and each moved board's failover time."""
    cluster = rig.cluster
    time.sleep(rng.uniform(0.0, 10.0))  # anywhere in the boards' 10 s heartbeat cycle
    where = _where(cluster, list(rig.agents))
    victim = rng.choice([n for n in cluster.nodes if n in where.values()])
    moved = [b for b, n in where.items() if n is victim]
    killed_at = time.monotonic()
    victim.kill()
    took: dict[str, float] = {}
    deadline = killed_at + 60
    while len(took) < len(moved):
        assert time.monotonic() < deadline, f"boards not back on the cluster: {set(moved) - set(took)}"
        for b, n in _where(cluster, moved).items():
            if n is not None and b not in took:
                took[b] = time.monotonic() - killed_at
        time.sleep(0.2)
    return victim, took


def _device(rig: OutageRig, node: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in rig.cloud.get_json("/api/v1/devices") if d["node"] == node]
    return found[0]


def _last_seqs(rig: OutageRig, boards: list[str]) -> dict[str, tuple[str, int, int]]:
    """Each stopped agent's (session, last seq, messages left in its outbox), from its stop line."""
    out = {}
    for node in boards:
        text = rig.agents[node].log_path.read_text(errors="replace")
        m = re.search(r"stopped: .* outbox_depth=(\d+) session=(\w+) last_seq=(\d+)", text)
        assert m, f"{node} did not stop in order; log:\n{text[-2000:]}"
        out[node] = (m[2], int(m[3]), int(m[1]))
    return out


def _run(
    tmp_path: Path, cluster: NatsCluster, influx: InfluxDB, db: str, loaders: list[str], kills: int
) -> None:
    rng = random.Random()
    boards = BOARDS + loaders
    load = {node: {"sim_interval_s": LOAD_INTERVAL_S} for node in loaders}
    with OutageRig.running(
        tmp_path / "rig", boards, influx=influx, database=db, cluster=cluster, overrides_of=load
    ) as rig:
        for k in range(kills):
            if k:
                cluster.revive()  # the killed node rejoins: the cluster can lose one again
            victim, took = _fail_over(rig, rng)
            assert took, "the killed node held no board"
            assert max(took.values()) < 30, f"slow failover after {victim.name} died: {took}"
            rig.wait_judging(120)  # the cloud judges again (after a stall: its settle time)
            states = {
                d["node"]: d["board"] for d in rig.cloud.get_json("/api/v1/devices") if d["node"] in boards
            }
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

        seq_at_thaw = _device(rig, frozen)["last_seq"]
        rig.thaw(frozen)  # its node dropped it on the keepalive: it reconnects, then sends what waited
        deadline = time.monotonic() + 60
        while _device(rig, frozen)["last_seq"] == seq_at_thaw:
            assert time.monotonic() < deadline, "the thawed board sent nothing"
            time.sleep(0.5)
        stopped = [b for b in boards if b != killed]  # the killed one's outbox waits for its restart
        for node in stopped:
            rig.agents[node].terminate()  # flushes its outbox, says offline
        for node in stopped:
            rig.agents[node].wait(30)
        sent = _last_seqs(rig, stopped)
        assert all(left == 0 for _s, _q, left in sent.values()), sent

        def counted() -> dict[str, dict[str, object]]:
            devices = {d["node"]: d for d in rig.cloud.get_json("/api/v1/devices")}
            return {n: devices[n] for n in sent}

        deadline = time.monotonic() + 60
        while any(d["last_seq"] != sent[n][1] for n, d in counted().items()):
            assert time.monotonic() < deadline, {n: (d["last_seq"], sent[n][1]) for n, d in counted().items()}
            time.sleep(0.5)
        for node, d in counted().items():
            session, last_seq, _left = sent[node]
            assert d["session"] == session
            # every seq up to the last arrived; a few twice (QoS 1: a message whose PUBACK died
            # with the node is sent again to the next one), which the cloud stores once
            assert d["gaps"] == 0 and d["messages"] >= last_seq, f"{node} lost messages: {d}"


def test_a_broker_node_killed_under_load_loses_nothing_and_alerts_nobody(
    tmp_path: Path, cluster: NatsCluster, influx_server: InfluxDB, influx_db: str
) -> None:
    _run(tmp_path, cluster, influx_server, influx_db, LOADERS, kills=1)


@pytest.mark.slow
def test_two_broker_node_deaths_under_twice_the_load(
    tmp_path: Path, cluster: NatsCluster, influx_server: InfluxDB, influx_db: str
) -> None:
    _run(tmp_path, cluster, influx_server, influx_db, LOADERS + MORE_LOADERS, kills=2)
