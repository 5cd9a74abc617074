"""Presence under every arrival order: the SQL store, the ``status`` points and the alert engine
must all end on the state the board is really in, whatever order its births and Wills arrive
in (two ingest workers on a shared subscription, a Will the broker sends late, QoS-1 redelivery).

Each history is what one board's statuses were, in the order the broker published them, with
the stamps the agent gives (``edge.outbox.Outbox.status_stamp``: a connection's birth and
Will share one stamp, every connection's is later than the one before, a shutdown has its
own), and the state the board is in at the end. Every permutation of its messages is
delivered, then all of them again (redelivery).
"""

from __future__ import annotations

import itertools

import pytest

from cloud.alerting.engine import AlertEngine
from cloud.alerting.settings import AlertingConfig
from cloud.inventory import Inventory
from cloud.storage.sql import BatchUpdate, SqlStore, StatusUpdate

T0 = 1_800_000_000.0
#: (session, stamp offset, state, reason), in the order the broker published them
Status = tuple[str, float, str, str]
HISTORIES: dict[str, list[Status]] = {
    # the broker dropped a frozen board twice; it reconnected each time (one agent run)
    "reconnects": [
        ("s1", 0.0, "online", "birth"),
        ("s1", 0.0, "offline", "will"),
        ("s1", 30.0, "online", "birth"),
        ("s1", 30.0, "offline", "will"),
        ("s1", 61.5, "online", "birth"),
    ],
    # ... and the last connection died too
    "dies_after_reconnect": [
        ("s1", 0.0, "online", "birth"),
        ("s1", 30.0, "online", "birth"),  # reconnected before the broker gave up on the first
        ("s1", 0.0, "offline", "will"),  # that connection's Will, sent by the broker only now
        ("s1", 61.5, "online", "birth"),
        ("s1", 61.5, "offline", "will"),
    ],
    # an orderly stop, a restart (new session) and a power cut
    "restart_then_power_cut": [
        ("s1", 0.0, "online", "birth"),
        ("s1", 100.0, "offline", "shutdown"),
        ("s2", 100.001, "online", "birth"),  # clock an hour behind after boot: stamps still grow
        ("s2", 100.001, "offline", "will"),
    ],
    # a power flicker: the new run's birth comes before the old connection's Will
    "reboot_before_the_will": [
        ("s1", 0.0, "online", "birth"),
        ("s2", 20.0, "online", "birth"),
        ("s1", 0.0, "offline", "will"),
    ],
}
#: where each board ends: (state, reason)
TRUTH = {
    "reconnects": ("online", "birth"),
    "dies_after_reconnect": ("offline", "will"),
    "restart_then_power_cut": ("offline", "will"),
    "reboot_before_the_will": ("online", "birth"),
}


def _inventory(nodes: list[str]) -> Inventory:
    return Inventory.model_validate(
        {
            "communes": [{"id": "da-ron", "name": "Đạ Ròn"}],
            "sites": [{"id": "s", "commune": "da-ron"}],
            "nodes": [{"id": n, "commune": "da-ron", "site": "s"} for n in nodes],
            "devices": [{"id": n, "kind": "ap", "node": n, "commune": "da-ron", "site": "s"} for n in nodes],
        }
    )


def _cases() -> list[tuple[str, list[Status], tuple[int, ...]]]:
    return [
        (name, history, order)
        for name, history in HISTORIES.items()
        for order in itertools.permutations(range(len(history)))
    ]


@pytest.fixture
def sql(sql_url: str) -> SqlStore:
    return SqlStore(sql_url)


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_every_arrival_order_ends_on_the_true_state(sql: SqlStore, name: str) -> None:
    cases = [c for c in _cases() if c[0] == name]
    nodes = [f"{name.replace('_', '-')}-{i}" for i in range(len(cases))]
    engine = AlertEngine(AlertingConfig(), _inventory(nodes))
    engine.broker(True, T0)
    for node, (_, history, order) in zip(nodes, cases, strict=True):
        truth = TRUTH[name]
        points: dict[int, str] = {}  # InfluxDB: one point per series and time
        received = T0 + 1
        for session, offset, state, reason in [history[i] for i in order] * 2:  # then redelivered
            received += 0.5
            st = StatusUpdate(
                node, "da-ron", True, state, reason, T0 + offset, "", session, int(received * 1000)
            )
            sql.apply(BatchUpdate(statuses=[st]))
            if st.at_ms is not None:
                assert st.at_ms >= int(received * 1000) or st.at_ms in points, (
                    "a new point goes after the last"
                )
                points[st.at_ms] = state
            engine.status(node, "da-ron", state, reason, received, session=session, stamp=T0 + offset)  # type: ignore[arg-type]
        arrival = [history[i][1:] for i in order]
        row = sql.node_states()[node]
        assert (row["status"], row["status_reason"]) == truth, f"SQL after {arrival}"
        assert points[max(points)] == truth[0], f"newest status point after {arrival}: {points}"
        assert engine.node_state(node) == ("up" if truth[0] == "online" else "down"), (
            f"engine after {arrival}"
        )
