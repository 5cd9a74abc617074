"""Counters and gauges of one cloud process, rendered as Prometheus text on /metrics.

Plain ints instead of a metrics library: each counter is written by one thread only
(paho's network thread, the committer or the drainer), so no locking is needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

#: Upper bounds (seconds) of the InfluxDB write-latency histogram.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Per-node label values of the rate-limit counter; more nodes are summed under OTHER_NODES.
MAX_NODE_LABELS = 256
OTHER_NODES = "_other"


@dataclass
class Stats:
    received: int = 0  # MQTT messages handed to us by paho
    committed: int = 0  # messages journaled (or dead-lettered) and acknowledged
    dead_lettered: Counter[str] = field(default_factory=Counter)  # by channel ("topic" if unparsable)
    points_written: int = 0  # lines accepted by InfluxDB
    lines_rejected: int = 0  # lines InfluxDB refused as bad data (dropped)
    write_errors: Counter[str] = field(default_factory=Counter)  # by outcome
    write_latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    write_latency_sum: float = 0.0
    write_latency_count: int = 0
    commit_batches: int = 0
    rate_limited: Counter[str] = field(default_factory=Counter)  # by node (at most MAX_NODE_LABELS)
    rate_limited_total: int = 0
    flooding_nodes: int = 0  # nodes throttled within their report interval

    def count_rate_limited(self, node: str) -> None:
        self.rate_limited_total += 1
        if node in self.rate_limited or len(self.rate_limited) < MAX_NODE_LABELS:
            self.rate_limited[node] += 1
        else:
            self.rate_limited[OTHER_NODES] += 1

    def observe_write(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.write_latency_buckets[i] += 1
        self.write_latency_sum += seconds
        self.write_latency_count += 1


def render(
    stats: Stats,
    *,
    spool_lines: int,
    spool_bytes: int,
    lag_s: float,
    broker_connected: bool,
    extra: Callable[[], list[str]] | None = None,
) -> str:
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    metric("ciot_messages_received_total", "counter", "MQTT messages received.", [("", stats.received)])
    metric(
        "ciot_messages_committed_total",
        "counter",
        "Messages journaled or dead-lettered, then acknowledged to the broker.",
        [("", stats.committed)],
    )
    dl = [(f'{{channel="{k}"}}', float(v)) for k, v in sorted(stats.dead_lettered.items())]
    metric(
        "ciot_messages_dead_lettered_total",
        "counter",
        "Invalid messages stored in the dead-letter table.",
        dl or [('{channel="health"}', 0.0)],
    )
    rl = [(f'{{node="{k}"}}', float(v)) for k, v in sorted(stats.rate_limited.items())]
    metric(
        "ciot_messages_rate_limited_total",
        "counter",
        "Messages over their node's rate limit: acknowledged, counted, not stored.",
        rl or [('{node="_none"}', 0.0)],
    )
    metric(
        "ciot_nodes_flooding",
        "gauge",
        "Nodes throttled within the last report interval.",
        [("", float(stats.flooding_nodes))],
    )
    metric(
        "ciot_points_written_total", "counter", "Lines accepted by InfluxDB.", [("", stats.points_written)]
    )
    metric(
        "ciot_points_rejected_total",
        "counter",
        "Lines InfluxDB refused as bad data (400) and that were dropped.",
        [("", stats.lines_rejected)],
    )
    we = [(f'{{reason="{k}"}}', float(v)) for k, v in sorted(stats.write_errors.items())]
    metric(
        "ciot_influx_write_errors_total",
        "counter",
        "Failed InfluxDB write requests by reason.",
        we or [('{reason="retry"}', 0.0)],
    )
    metric("ciot_spool_lines", "gauge", "Lines journaled but not yet in InfluxDB.", [("", spool_lines)])
    metric("ciot_spool_bytes", "gauge", "Bytes journaled but not yet in InfluxDB.", [("", spool_bytes)])
    metric(
        "ciot_ingest_lag_seconds",
        "gauge",
        "Age of the oldest journaled line not yet in InfluxDB.",
        [("", lag_s)],
    )
    metric(
        "ciot_broker_connected",
        "gauge",
        "1 while connected to the MQTT broker.",
        [("", float(broker_connected))],
    )
    name = "ciot_influx_write_seconds"
    out.append(f"# HELP {name} Latency of InfluxDB /write requests.")
    out.append(f"# TYPE {name} histogram")
    for bound, n in zip(LATENCY_BUCKETS, stats.write_latency_buckets, strict=True):
        out.append(f'{name}_bucket{{le="{bound:g}"}} {n}')
    out.append(f'{name}_bucket{{le="+Inf"}} {stats.write_latency_count}')
    out.append(f"{name}_sum {stats.write_latency_sum:g}")
    out.append(f"{name}_count {stats.write_latency_count}")
    if extra is not None:
        out.extend(extra())
    return "\n".join(out) + "\n"
