"""Notices wait in SQL: a cloud restart neither loses one nor sends one twice (real SQLite, real HTTP)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from alerting_helpers import inventory
from local_http import Request, local_http

from cloud.alerting.alerter import Alerter
from cloud.alerting.settings import AlertingConfig
from cloud.notify.dispatch import Dispatcher
from cloud.notify.messages import Notice
from cloud.notify.settings import RetryConfig, WebhookConfig
from cloud.notify.webhook import WebhookNotifier
from cloud.storage.alerts_sql import AlertStore
from cloud.storage.notice_outbox import SqlNoticeQueue
from cloud.storage.sql import SqlStore

FAST = RetryConfig(initial_s=0.05, max_s=0.2, attempts=50, timeout_s=2.0)
T0 = 1_800_000_000.0


def _notice(i: int, kind: str = "open") -> Notice:
    return Notice(kind, i, f"node:n{i}", "node", f"n{i}", "da-ron", "silent", "critical", T0, T0 + 18)  # type: ignore[arg-type]


def _queue(sql_url: str) -> SqlNoticeQueue:
    return SqlNoticeQueue(SqlStore(sql_url).engine)


async def test_a_notice_still_failing_when_the_cloud_stops_is_sent_once_after_the_restart(
    sql_url: str,
) -> None:
    accepting = False

    def respond(_req: Request, _i: int) -> tuple[int, dict[str, Any]]:
        return (200, {}) if accepting else (503, {})

    with local_http(respond) as server:
        first = Dispatcher(
            [WebhookNotifier(WebhookConfig(url=server.url, retry=FAST))], inventory(), queue=_queue(sql_url)
        )
        first.start()
        first.queue.put("webhook", _notice(7), time.time())
        first.wake()
        await asyncio.to_thread(server.wait_for, 2)  # refused twice, so far
        await first.stop(flush_s=0)
        refused = len(server.requests)

        accepting = True
        queue = _queue(sql_url)  # a new process on the same database
        second = Dispatcher(
            [WebhookNotifier(WebhookConfig(url=server.url, retry=FAST))], inventory(), queue=queue
        )
        second.start()
        assert await second.wait_idle(10)
        await second.stop()
    delivered = server.requests[refused:]
    assert [r.json()["notice"]["alert_id"] for r in delivered] == [7]
    (log,) = queue.log(7)
    assert log["state"] == "sent" and log["attempts"] >= 3 and "503" in log["last_error"]


async def test_two_workers_on_one_database_send_each_notice_once_and_in_order(sql_url: str) -> None:
    with local_http(lambda _r, _i: (200, {})) as server:
        queues = [_queue(sql_url), _queue(sql_url)]
        workers = [
            Dispatcher([WebhookNotifier(WebhookConfig(url=server.url, retry=FAST))], inventory(), queue=q)
            for q in queues
        ]
        for w in workers:
            w.start()
        for i in range(30):
            queues[i % 2].put("webhook", _notice(i), time.time())
            workers[i % 2].wake()
        for w in workers:
            assert await w.wait_idle(20)
            await w.stop()
    ids = [r.json()["notice"]["alert_id"] for r in server.requests]
    assert sorted(ids) == list(range(30))  # none lost, none twice


def test_an_alert_and_its_notices_are_recorded_together(sql_url: str) -> None:
    """What the evaluator decides to send is in the outbox when its step returns: a crash
    after that point cannot lose the notice, and the alert says it was announced."""
    sql = SqlStore(sql_url)
    store = AlertStore(sql.engine)
    queue = SqlNoticeQueue(sql.engine)
    channels = {"people": ["webhook", "email"], "records": ["influx-outages"]}
    alerter = Alerter(
        AlertingConfig(),
        inventory(),
        store,
        "worker-a",
        outbox=lambda conn, who, notice, at: SqlNoticeQueue.add(conn, channels[who], notice, at),
    )
    from test_alerter_flow import _status  # the same births the flow tests use

    alerter.observe([(_status("dr-cam-01", "offline", "will"), T0)])
    now = T0
    while not store.query():
        now += 1.0
        alerter.step(now, broker_connected=True)
        assert now < T0 + 120
    (row,) = store.query()
    assert row.notified_at is not None
    assert [(x["channel"], x["kind"], x["state"]) for x in queue.log(row.id)] == [
        ("influx-outages", "open", "pending"),
        ("webhook", "open", "pending"),
        ("email", "open", "pending"),
    ]
    assert asyncio.run(queue.pending(["webhook", "email", "influx-outages"])) == 3
