"""``commune-iot bench cluster``: broker nodes killed under load, as the boards and the alerting see it.

Three NATS nodes (MQTT 3.1.1, JetStream replicated on all three) on loopback, InfluxDB,
``commune-iot cloud serve`` and edge agents as processes, with the shipped detection defaults:
six boards with the shipped intervals (health and metrics every 10 s), judged by the alerting,
and three loaders sending metrics every 0.25 s so that messages are always in flight. Every
agent lists the three nodes (``broker.urls``) and starts on one picked by its node id.

Each kill picks, at a random instant, a node that holds boards, kills it (SIGKILL) and times
each of its boards until it is connected to another node; then it restarts the node (it
rejoins with its data) and waits until the cloud judges again. Afterwards boards are frozen
(SIGSTOP) at random, one per commune at a time, and timed to the webhook notice, as ``bench
outage`` does on one Mosquitto. Finally the agents stop in order and the cloud must have every
sequence number each of them produced.

Shared with ``tests/cluster/test_cluster_failover.py``.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commune_iot.bench.outage import OutageRig, _notice, _percentile
from commune_iot.localcluster import NatsCluster, NatsNode

#: Two boards per commune (the commune-wide rule needs three down) with the shipped intervals;
#: by their node ids they start two on each node of the cluster.
BOARDS = ["dr-ap-01", "dr-ap-03", "tt-ap-01", "tt-ap-06", "lx-ap-01", "lx-ap-03"]
#: Boards sending metrics every LOAD_INTERVAL_S: the load (4 messages a second each).
LOADERS = ["dr-ap-02", "tt-ap-04", "lx-ap-04"]
LOAD_INTERVAL_S = 0.25


def cluster_rig(
    run_dir: Path, cluster: NatsCluster, loaders: list[str], **kw: Any
) -> AbstractContextManager[OutageRig]:
    """``OutageRig.running`` on ``cluster`` with BOARDS and ``loaders``."""
    load = {node: {"sim_interval_s": LOAD_INTERVAL_S} for node in loaders}
    return OutageRig.running(run_dir, BOARDS + loaders, cluster=cluster, overrides_of=load, **kw)


def fail_over(rig: OutageRig, rng: random.Random) -> tuple[NatsNode, dict[str, float]]:
    """Kill a node holding boards at a random instant; the seconds each of its boards took to be
    connected to another node."""
    cluster = rig.cluster
    time.sleep(rng.uniform(0.0, 10.0))  # anywhere in the boards' 10 s heartbeat cycle
    where = {b: cluster.node_of(b) for b in rig.agents}
    victim = rng.choice([n for n in cluster.nodes if n in where.values()])
    moved = [b for b, n in where.items() if n is victim]
    killed_at = time.monotonic()
    victim.kill()
    took: dict[str, float] = {}
    while len(took) < len(moved):
        if time.monotonic() - killed_at > 90:
            raise TimeoutError(f"boards not back on the cluster 90 s after {victim.name} died: {moved}")
        for b in moved:
            if b not in took and cluster.node_of(b) is not None:
                took[b] = time.monotonic() - killed_at
        time.sleep(0.2)
    return victim, took


def device(rig: OutageRig, node: str) -> dict[str, Any]:
    """The node's row of ``/api/v1/devices``."""
    found: list[dict[str, Any]] = [d for d in rig.cloud.get_json("/api/v1/devices") if d["node"] == node]
    return found[0]


@dataclass(frozen=True)
class Delivery:
    """One stopped agent's session as it said and as the cloud counted it."""

    node: str
    session: str
    last_seq: int  # the agent's last sequence number
    left: int  # messages left in its outbox when it stopped
    cloud: dict[str, Any]  # its /api/v1/devices row once the cloud has its last_seq

    @property
    def lost(self) -> int:
        return int(self.cloud["gaps"]) + max(0, self.last_seq - int(self.cloud["last_seq"] or 0))

    @property
    def duplicates(self) -> int:
        """Delivered twice (QoS 1 after a failover); the cloud stores each once."""
        return max(0, int(self.cloud["messages"]) - self.last_seq)


def stop_and_count(rig: OutageRig, nodes: list[str], timeout: float = 60.0) -> list[Delivery]:
    """Stop ``nodes`` in order (each flushes its outbox) and wait until the cloud has every
    last sequence number they report."""
    for node in nodes:
        rig.agents[node].terminate()
    said = {}
    for node in nodes:
        agent = rig.agents[node]
        agent.wait(30)
        text = agent.log_path.read_text(errors="replace")
        m = re.search(r"stopped: .* outbox_depth=(\d+) session=(\w+) last_seq=(\d+)", text)
        if m is None:
            raise AssertionError(f"{node} did not stop in order; log:\n{text[-2000:]}")
        said[node] = (m[2], int(m[3]), int(m[1]))
    deadline = time.monotonic() + timeout
    while True:
        rows = {d["node"]: d for d in rig.cloud.get_json("/api/v1/devices") if d["node"] in said}
        if all(rows[n]["last_seq"] == said[n][1] for n in said) or time.monotonic() > deadline:
            return [Delivery(n, *said[n], rows[n]) for n in nodes]
        time.sleep(0.5)


def interruptions(rig: OutageRig) -> int:
    """How often the cloud paused judgement for the broker (lost it, stalled, a node gone)."""
    text = rig.cloud.log_path.read_text(errors="replace")
    return len(re.findall(r"lost MQTT broker|delivering nothing for|stopped answering", text))


def main(kills: int = 5, trials: int = 9, run_dir: Path | None = None, seed: int | None = None) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-cluster-"))
    rng = random.Random(seed)
    print(
        f"3 NATS nodes, {len(BOARDS)} boards (shipped intervals) and {len(LOADERS)} loaders (metrics every "
        f"{LOAD_INTERVAL_S} s); {kills} node kills, then {trials} frozen boards",
        flush=True,
    )
    cluster = NatsCluster(base / "nats")
    failovers: list[float] = []
    latencies: list[float] = []
    try:
        cluster.start()
        with cluster_rig(base / "rig", cluster, LOADERS) as rig:
            for k in range(kills):
                if k:
                    cluster.revive()
                    rig.wait_judging(120)
                victim, took = fail_over(rig, rng)
                failovers += took.values()
                print(
                    f"  kill {k + 1}: {victim.name}; its {len(took)} boards on another node after "
                    + ", ".join(f"{t:.1f}" for t in sorted(took.values()))
                    + " s",
                    flush=True,
                )
            cluster.revive()
            rig.wait_judging(120)
            false_alerts = len(rig.sink.notices())
            print(f"  alerts during the kills: {false_alerts}", flush=True)

            lanes = {b.split("-")[0]: b for b in reversed(BOARDS)}  # one board per commune
            lock = threading.Lock()

            def lane(node: str, n: int) -> None:
                for _ in range(n):
                    time.sleep(rng.uniform(0, 10.0))
                    t0 = rig.freeze(node)
                    got = rig.sink.wait_for(_notice("open", node, t0 - 1), 90, node)
                    with lock:
                        latencies.append(got.at - t0)
                    print(f"  {node}: notified {got.at - t0:.1f} s after the freeze ({got.notice['cause']})")
                    rig.thaw(node)
                    rig.sink.wait_for(_notice("resolve", node, t0), 120, node)

            per = [trials // len(lanes) + (i < trials % len(lanes)) for i in range(len(lanes))]
            threads = [
                threading.Thread(target=lane, args=(b, n)) for b, n in zip(lanes.values(), per, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            frozen = set(lanes.values())
            false_alerts += len(rig.sink.notices(lambda x: x["subject"] not in frozen))
            deliveries = stop_and_count(rig, BOARDS + LOADERS)
            paused = interruptions(rig)
    finally:
        cluster.kill()
    if not failovers or len(latencies) < trials:
        raise SystemExit(f"incomplete run; see {base}")
    result = {
        "kills": kills,
        "boards_failed_over": len(failovers),
        "failover_p50_s": round(statistics.median(failovers), 2),
        "failover_p95_s": round(_percentile(failovers, 0.95), 2),
        "failover_max_s": round(max(failovers), 2),
        "false_alerts": false_alerts,
        "judgement_pauses": paused,
        "messages": sum(d.last_seq for d in deliveries),
        "lost_messages": sum(d.lost for d in deliveries),
        "duplicate_messages": sum(d.duplicates for d in deliveries),
        "alert_trials": len(latencies),
        "alert_p50_s": round(statistics.median(latencies), 2),
        "alert_p95_s": round(_percentile(latencies, 0.95), 2),
        "alert_max_s": round(max(latencies), 2),
    }
    print(json.dumps(result))
    return 0
