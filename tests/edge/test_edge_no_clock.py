"""A board without a real-time clock: it boots years off, NTP sets it mid-run.

The agent runs under Debian's libfaketime (its wall clock starts in 2019; the boot-time clock
is left alone, as on a real board) and the clock jumps to the right time while it runs. No
message may reach the broker carrying the wrong time: those stamped before the jump wait in
the outbox and go out corrected, in order, with nothing lost or repeated.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from edge_helpers import AgentProcess, Recorder, agent_config, has_status, sequenced

from commune_iot.localsvc import Mosquitto
from edge.clock import SyncClock, boot_id, boottime
from edge.outbox import Outbox, Priority

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
YEARS_OFF = "@2019-03-01 00:00:00"


def _held(outbox: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM outbox WHERE clock_offset IS NOT NULL").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _stamps(doc: dict[str, object]) -> list[float]:
    found = [datetime.fromisoformat(str(doc["ts"])).timestamp()]
    points = doc.get("points")
    if isinstance(points, list):
        found += [datetime.fromisoformat(p["ts"]).timestamp() for p in points if "ts" in p]
    return found


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="libfaketime not installed (apt-get install faketime)")
def test_clock_years_off_then_ntp_jump_mid_run(mosquitto: Mosquitto, tmp_path: Path) -> None:
    clock_file = tmp_path / "faketime"
    clock_file.write_text(YEARS_OFF + "\n")
    env = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # a real board's boot-time clock runs true
    }
    outbox = tmp_path / "outbox.sqlite3"
    cfg = agent_config(
        tmp_path, mosquitto.url, collectors=[{"type": "sim_ap", "device": "dr-ap-01", "interval_s": 0.2}]
    )
    rec = Recorder(mosquitto.port)
    started = time.time()
    agent = AgentProcess(cfg, tmp_path / "agent.log", env=env)
    try:
        rec.wait_for(has_status("online", "birth"), 20, "birth (the link is up, the clock is not)")
        agent.wait_log("the clock is not synchronised", 10)
        deadline = time.monotonic() + 20
        while _held(outbox) < 20:  # health and metrics pile up, stamped in 2019
            assert time.monotonic() < deadline, "the agent did not hold its messages"
            assert agent.proc.poll() is None, agent.log()[-2000:]
            time.sleep(0.1)
        assert sequenced(rec.snapshot()) == [], "a message stamped by the wrong clock reached the broker"

        jumped = time.time()
        clock_file.write_text("+0\n")  # NTP: the clock is right from now on
        agent.wait_log("the clock is synchronised", 10)
        msgs = rec.wait_for(
            lambda ms: any(
                d["ts"] > datetime.fromtimestamp(jumped + 1, UTC).isoformat() for d in sequenced(ms)
            ),
            20,
            "live messages after the correction",
        )
        assert agent.terminate() == 0
    finally:
        agent.close()
        rec.close()
    docs = sequenced(rec.snapshot())
    assert len(docs) >= 20
    seqs = [d["seq"] for d in docs]
    assert seqs == list(range(1, len(seqs) + 1)), "lost, repeated or reordered messages"
    stamps = [s for d in docs for s in _stamps(d)]
    assert all(started - 1 <= s <= time.time() + 1 for s in stamps), (
        f"a stamp outside the real run: {min(stamps)}..{max(stamps)} vs {started}"
    )
    envelope = [datetime.fromisoformat(d["ts"]).timestamp() for d in docs]
    assert envelope == sorted(envelope), "corrected stamps out of production order"
    assert sum(t < jumped for t in envelope) >= 15, "the held messages kept their place in time"
    assert len(msgs) > 0


def test_held_stamps_of_an_earlier_boot_are_dropped_not_misplaced(tmp_path: Path) -> None:
    """Rows stamped by an unsynchronised clock: this boot's are moved to the right time,
    those of a boot that ended before NTP came cannot be placed and are dropped (counted)."""
    box = Outbox(tmp_path / "o.sqlite3")
    wrong = datetime(2019, 3, 1, tzinfo=UTC).timestamp()
    offset_then = wrong - boottime()
    doc = {"ts": "2019-03-01T00:00:00Z", "points": [{"ts": "2019-03-01T00:00:00Z"}]}
    common = {"priority": Priority.METRICS, "is_json": True, "session": "ab" * 4, "link_gen": -1}
    box.put(
        "t/old", json.dumps(doc).encode(), created=wrong, unsynced=(offset_then, "an-earlier-boot"), **common
    )
    box.put("t/now", json.dumps(doc).encode(), created=wrong, unsynced=(offset_then, boot_id()), **common)
    assert box.held() == 2 and box.after(0, 10)[0].held
    assert box.expire() == 0, "a held row's 2019 stamp must not make it look a week old"

    clock = SyncClock()
    assert clock.synced()
    corrected, dropped = box.correct_times(clock.boot, clock.offset())
    assert (corrected, dropped) == (1, 1)
    (row,) = box.after(0, 10)
    assert row.topic == "t/now" and not row.held
    fixed = json.loads(row.payload)
    for at in (fixed["ts"], fixed["points"][0]["ts"]):
        assert abs(datetime.fromisoformat(at).timestamp() - time.time()) < 5
    assert box.stats().dropped_by_priority == {Priority.METRICS: 1}
    box.close()


def test_clock_before_the_release_is_never_trusted() -> None:
    assert not SyncClock(wall=lambda: 0.0).synced()  # 1970
    assert not SyncClock("kernel", kernel=lambda: False).synced()  # right date, NTP not yet
    assert SyncClock("kernel", kernel=lambda: True).synced()
