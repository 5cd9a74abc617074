"""Gap counts are exact: distinct seqs per session, in any order, duplicates and all, also when
several workers merge them into one SQL row at the same time."""

from __future__ import annotations

import random
import threading

from hypothesis import given
from hypothesis import strategies as st

from cloud.storage.seqset import MAX_RANGES, RECENT, SeqSet
from cloud.storage.sql import BatchUpdate, NodeDelta, SessionDelta, SqlStore

seq_batches = st.lists(st.lists(st.integers(min_value=0, max_value=400), max_size=30), max_size=12)


@given(seq_batches)
def test_merged_ranges_count_each_seq_once_whatever_the_order_and_repeats(batches: list[list[int]]) -> None:
    stored = SeqSet()
    for batch in batches:
        stored = SeqSet.decode(stored.merge(SeqSet.of(batch)).encode())  # through the column's text
    distinct = {s for b in batches for s in b}
    assert stored.received == len(distinct)
    if distinct:
        assert (stored.first, stored.last) == (min(distinct), max(distinct))
        assert stored.last - stored.first + 1 - stored.received == len(
            set(range(min(distinct), max(distinct) + 1)) - distinct
        )


def test_a_session_with_many_holes_stays_small_and_still_counts_what_is_lost() -> None:
    """A throttled board: every third message admitted. Old holes are sealed, still counted lost."""
    stored = SeqSet()
    for start in range(1, 90_000, 300):
        stored = stored.merge(SeqSet.of(range(start, start + 300, 3)))
    assert len(stored.ranges) <= MAX_RANGES + RECENT // 3 + 1 and len(stored.encode()) < 50_000
    assert stored.received == 30_000 and stored.last - stored.first + 1 - stored.received == 59_998
    again = stored.merge(SeqSet.of(range(1, 90_000, 3)))  # all of it redelivered: nothing changes
    assert again.received == 30_000


def test_two_workers_merging_one_session_concurrently_count_each_seq_once(sql_url: str) -> None:
    """A shared subscription splits a node's messages between two workers, and QoS 1 redelivers some
    of them soon after: each worker commits its batches in its own connection, at the same time."""
    rng = random.Random()
    lost = set(rng.sample(range(2, 2000), 37))
    sent = [s for s in range(1, 2001) if s not in lost]
    deliveries = list(sent)
    for i in rng.sample(range(len(sent)), 300):  # redelivered a little later
        deliveries.insert(min(len(deliveries), i + rng.randint(1, 60)), sent[i])
    halves = [deliveries[0::2], deliveries[1::2]]
    stores = [SqlStore(sql_url) for _ in halves]

    def work(store: SqlStore, mine: list[int]) -> None:
        for i in range(0, len(mine), 25):
            batch = BatchUpdate(
                nodes={"dr-ap-01": NodeDelta("da-ron", True, messages=len(mine[i : i + 25]))},
                sessions={("dr-ap-01", "a1b2c3d4"): SessionDelta(mine[i : i + 25], 1.0)},
            )
            store.apply(batch)

    threads = [threading.Thread(target=work, args=(s, h)) for s, h in zip(stores, halves, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = stores[0].node_states()["dr-ap-01"]
    assert row["gaps"] == len(lost)
    assert row["messages"] == len(deliveries)  # deliveries, duplicates included


def test_sessions_counted_before_the_ranges_were_kept_carry_their_count_over(sql_url: str) -> None:
    store = SqlStore(sql_url)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO node_sessions (node, session, first_seq, max_seq, received, first_seen) "
            "VALUES ('dr-ap-01', 'a1b2c3d4', 1, 100, 97, 0)"  # 3 missing, as an older release counted
        )
    store.apply(BatchUpdate(sessions={("dr-ap-01", "a1b2c3d4"): SessionDelta([101, 102], 1.0)}))
    with store.engine.connect() as conn:
        gaps = conn.exec_driver_sql("SELECT max_seq - first_seq + 1 - received FROM node_sessions").scalar()
    assert gaps == 3
