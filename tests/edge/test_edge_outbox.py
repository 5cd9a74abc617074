"""The outbox on its own: order, durability across reopen, bounds and drop accounting."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.outbox import Outbox, Priority

H, M, E = Priority.HEALTH, Priority.METRICS, Priority.EVENT


def _put(box: Outbox, prio: Priority, tag: str, size: int = 10, created: float | None = None) -> int:
    payload = tag.encode().ljust(size, b".")
    return box.put(
        f"t/{tag}", payload, priority=prio, is_json=False, session="s1", link_gen=0, created=created
    )


def _tags(box: Outbox) -> list[str]:
    return [r.topic.removeprefix("t/") for r in box.after(0, 10_000)]


def test_fifo_order_and_delete(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = [_put(box, p, f"m{i}") for i, p in enumerate([H, M, E, H, M])]
    assert _tags(box) == ["m0", "m1", "m2", "m3", "m4"]
    assert [r.id for r in box.after(ids[1], 2)] == ids[2:4]
    assert box.delete([ids[0], ids[2], 999_999]) == 2
    assert _tags(box) == ["m1", "m3", "m4"]
    assert len(box) == 3 and box.size_bytes == 30


def test_rows_survive_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    _put(box, E, "a")
    _put(box, H, "b")
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert _tags(again) == ["a", "b"]
    assert len(again) == 2 and again.size_bytes == 20
    row = again.after(0, 1)[0]
    assert (row.priority, row.session, row.link_gen, row.is_json) == (E, "s1", 0, False)


def test_rows_survive_sigkill_of_the_writer(tmp_path: Path) -> None:
    """A row is on disk once put() returns, even if the process dies right after."""
    db = tmp_path / "o.db"
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from edge.outbox import Outbox, Priority\n"
        f"box = Outbox(Path({str(db)!r}))\n"
        "for i in range(50):\n"
        "    box.put(f't/{i}', b'x', priority=Priority.EVENT, is_json=False, session='s', link_gen=0)\n"
        "print('written', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    repo = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=repo)
    )
    assert proc.returncode == -signal.SIGKILL and "written" in proc.stdout
    assert len(Outbox(db)) == 50
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_full_outbox_drops_oldest_of_lowest_priority(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tmp_path / "o.db", max_messages=5)
    for tag, prio in [("e1", E), ("h1", H), ("m1", M), ("h2", H), ("e2", E)]:
        _put(box, prio, tag)
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        _put(box, E, "e3")  # drops h1 (oldest health)
        _put(box, M, "m2")  # drops h2
        _put(box, E, "e4")  # no health left: drops m1 (oldest metrics)
    assert _tags(box) == ["e1", "e2", "e3", "m2", "e4"]
    stats = box.stats()
    assert stats.dropped == 3 and stats.dropped_by_priority == {H: 2, M: 1}
    assert "health" in caplog.text and "max_messages=5" in caplog.text
    # A new health message is itself the lowest priority: it is the one dropped.
    _put(box, H, "h3")
    assert "h3" not in _tags(box)
    box.close()
    # Drop counts are kept on disk, for Health.outbox_dropped after a restart.
    assert Outbox(tmp_path / "o.db").stats().dropped_by_priority == {H: 3, M: 1}


def test_byte_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=2048)
    for i in range(5):
        _put(box, M, f"m{i}", size=500)
    _put(box, E, "big", size=1000)
    assert box.size_bytes <= 2048
    assert _tags(box) == ["m3", "m4", "big"]
    assert box.stats().dropped_by_priority == {M: 3}


def test_age_bound_and_oldest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_age_s=60)
    now = time.time()
    _put(box, E, "old", created=now - 120)
    _put(box, H, "new", created=now - 10)
    assert 119 < box.stats(now).oldest_s < 121
    assert box.expire(now) == 1
    assert _tags(box) == ["new"]
    assert 9 < box.stats(now).oldest_s < 11
    assert box.stats().dropped_by_priority == {E: 1}


def test_sync_modes(tmp_path: Path) -> None:
    for mode, expected in (("full", 2), ("normal", 1)):
        box = Outbox(tmp_path / f"{mode}.db", sync=mode)  # type: ignore[arg-type]
        assert box._db.execute("PRAGMA synchronous").fetchone()[0] == expected
        box.close()


def test_corrupt_file_is_moved_aside_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "o.db"
    db.write_bytes(b"this is not a database, it is what a worn SD card returns" * 100)
    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        box = Outbox(db)
    assert len(box) == 0
    _put(box, E, "after")
    assert _tags(box) == ["after"]
    kept = list(tmp_path.glob("o.db.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not a database")
    assert "unreadable" in caplog.text and "empty outbox" in caplog.text


def test_status_stamps_grow_across_restarts_and_a_clock_stepped_back(tmp_path: Path) -> None:
    """Status stamps order a node's births and Wills at the cloud: each must be later than every
    one before, even when the board's clock goes back (fake hardware clock at boot, NTP)."""
    box = Outbox(tmp_path / "o.db")
    a = box.status_stamp(now=1_800_000_000.0)
    b = box.status_stamp(now=1_800_000_000.0)  # the same clock reading: still later
    box.close()
    again = Outbox(tmp_path / "o.db")  # agent restart, clock an hour behind
    c = again.status_stamp(now=1_800_000_000.0 - 3600)
    d = again.status_stamp(now=1_800_000_100.5)  # the clock is right again
    assert a < b < c < d and d == 1_800_000_100.5
    # a stamp kept far ahead of the clock (a clock once set years ahead) is not trusted after a restart
    again.status_stamp(now=1_900_000_000.0)
    again.close()
    assert Outbox(tmp_path / "o.db").status_stamp(now=1_800_000_200.0) == 1_800_000_200.0


def test_grouped_commits_spare_the_sd_card(tmp_path: Path) -> None:
    """With ``commit_interval_s`` a message sent and acknowledged within the interval never
    reaches the card: the WAL of 300 put+ack pairs is a fraction of committing each one."""

    def wal_bytes(interval: float, name: str) -> int:
        box = Outbox(tmp_path / name, commit_interval_s=interval)
        db = box._db
        db.execute("PRAGMA wal_autocheckpoint=0")  # keep every frame: the WAL size is the writes
        for _ in range(300):
            rid = box.put(
                "t", b"x" * 300, priority=Priority.HEALTH, is_json=False, session="ab" * 4, link_gen=1
            )
            box.delete([rid])
        box.flush()
        size = Path(f"{tmp_path / name}-wal").stat().st_size
        box.close()
        return size

    each, grouped = wal_bytes(0, "each.sqlite3"), wal_bytes(3600, "grouped.sqlite3")
    assert grouped * 20 < each, (each, grouped)


def test_grouped_commit_is_durable_after_flush_and_events_at_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", commit_interval_s=3600)
    box.put("t", b"1", priority=Priority.HEALTH, is_json=False, session="ab" * 4, link_gen=1)
    other = sqlite3.connect(str(tmp_path / "o.sqlite3"))
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0  # not on the card yet
    box.flush()
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    box.put("t", b"2", priority=Priority.HEALTH, is_json=False, session="ab" * 4, link_gen=1)
    box.put("t", b"3", priority=Priority.EVENT, is_json=False, session="ab" * 4, link_gen=1)
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 3  # the event took both
    other.close()
    box.close()
