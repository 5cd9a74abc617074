"""Nothing is lost across a broker outage or an agent crash: the outbox replays in order."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_helpers import AgentProcess, Received, Recorder, agent_config, has_status, sequenced, status

from commune_iot.localsvc import Mosquitto

BUSY_COLLECTORS: list[dict[str, Any]] = [
    {"type": "sim_camera", "interval_s": 0.3, "events_per_hour": 7200, "follow_day": False},
    {"type": "sim_ap", "device": "dr-ap-01", "interval_s": 0.3},
]


def _ts(doc: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(doc["ts"].replace("Z", "+00:00"))


def _session_of(msgs: list[Received], reason: str = "birth") -> list[str]:
    out: list[str] = []
    for m in msgs:
        s = status(m)
        if s and s["reason"] == reason and s["session"] not in out:
            out.append(s["session"])
    return out


def _check_session_stream(msgs: list[Received], session: str) -> list[tuple[dict[str, Any], datetime]]:
    """Sequenced messages of one session in arrival order: contiguous from 1, in order."""
    firsts: list[tuple[dict[str, Any], datetime]] = []
    seen: set[int] = set()
    for m in msgs:
        if m.channel in ("health", "metrics", "event"):
            doc = m.json()
            if doc["session"] == session and doc["seq"] not in seen:  # at-least-once: ignore duplicates
                seen.add(doc["seq"])
                firsts.append((doc, m.arrived))
    seqs = [d["seq"] for d, _ in firsts]
    assert seqs == sorted(seqs), f"messages of a session arrived out of order: {seqs}"
    assert seqs == list(range(1, len(seqs) + 1)), (
        f"gaps in seq: {sorted(set(range(1, max(seqs) + 1)) - seen)}"
    )
    for doc, arrived in firsts:
        assert _ts(doc) <= arrived, "edge timestamp later than arrival"
    return firsts


def _check_snapshots(msgs: list[Received]) -> int:
    """Every event is preceded on the wire by its snapshot, whose SHA-256 it names."""
    snaps: dict[str, bytes] = {}
    events = 0
    for m in msgs:
        if m.channel == "snapshot":
            snaps[m.topic.rsplit("/", 1)[1]] = m.payload
        elif m.channel == "event":
            doc = m.json()
            jpeg = snaps.get(doc["event_id"])
            assert jpeg is not None, f"event {doc['event_id']} arrived before its snapshot"
            assert hashlib.sha256(jpeg).hexdigest() == doc["snapshot_sha256"]
            assert len(jpeg) == doc["snapshot_bytes"]
            events += 1
    return events


def test_broker_outage_replays_everything_in_order(mosquitto: Mosquitto, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    agent = AgentProcess(
        agent_config(tmp_path, mosquitto.url, collectors=BUSY_COLLECTORS), tmp_path / "a.log"
    )
    try:
        # Live traffic for over a second, so that some of it is clearly from before the outage.
        rec.wait_for(
            lambda ms: (
                len(seq := sequenced(ms)) >= 10 and _ts(seq[0]) < datetime.now(UTC) - timedelta(seconds=1.5)
            ),
            15,
            "live traffic",
        )
        stopping = datetime.now(UTC)  # the broker surely was up before this
        mosquitto.stop()
        outage_start = datetime.now(UTC)  # and surely gone (its sockets closed) from here
        time.sleep(5)  # the outage itself: the agent keeps producing into its outbox
        outage_end = datetime.now(UTC)
        mosquitto.start()
        # After the replay, live traffic again: health produced after the restart.
        rec.wait_for(
            lambda ms: any(
                m.channel == "health" and _ts(m.json()) > outage_end + timedelta(seconds=1) for m in ms
            ),
            30,
            "live health after the outage",
        )
        assert agent.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 10, "offline(shutdown)")
    finally:
        agent.close()
    msgs = rec.snapshot()
    rec.close()
    (session,) = _session_of(msgs)
    stream = _check_session_stream(msgs, session)
    during = [(d, a) for d, a in stream if outage_start + timedelta(seconds=0.5) < _ts(d) < outage_end]
    assert len(during) >= 15, f"expected messages produced during the 5 s outage, got {len(during)}"
    for doc, arrived in during:
        assert doc["replay"] is True, f"seq {doc['seq']} produced during the outage not flagged replay"
        assert arrived > outage_end
    before = [d for d, _ in stream if _ts(d) < stopping - timedelta(seconds=0.5)]
    after = [d for d, _ in stream if _ts(d) > outage_end + timedelta(seconds=1)]
    assert before and after
    assert not any(d["replay"] for d in before + after), "live messages flagged as replay"
    assert {d["points"][0]["measurement"] for d, _ in during if "points" in d} >= {"camera", "ap"}
    assert _check_snapshots(msgs) >= 3
    # Health reported the backlog while it was building up.
    assert max(d.get("outbox_depth", 0) for d, _ in during) > 0


def _pending_in_outbox(db: Path) -> dict[str, list[int]]:
    """Seq numbers per session still in an outbox file (read after the agent died)."""
    out: dict[str, list[int]] = {}
    con = sqlite3.connect(db)
    try:
        for (payload,) in con.execute("SELECT payload FROM outbox WHERE is_json = 1 ORDER BY id"):
            doc = json.loads(payload)
            if doc.get("seq"):
                out.setdefault(doc["session"], []).append(doc["seq"])
    finally:
        con.close()
    return out


def test_kill9_during_outage_then_restart_replays_both_sessions(mosquitto: Mosquitto, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    cfg = agent_config(tmp_path, mosquitto.url, collectors=BUSY_COLLECTORS)
    first = AgentProcess(cfg, tmp_path / "a1.log")
    try:
        rec.wait_for(has_status("online", "birth"), 15, "first birth")
        rec.wait_for(lambda ms: len(sequenced(ms)) >= 5, 15, "live traffic")
        mosquitto.stop()
        time.sleep(2)  # outage while the first agent runs
        first.kill9()
    finally:
        first.close()
    pending = _pending_in_outbox(tmp_path / "outbox.sqlite3")
    (s1,) = pending
    assert len(pending[s1]) >= 5, "the killed agent should have left its outage backlog on disk"

    second = AgentProcess(cfg, tmp_path / "a2.log")
    try:
        time.sleep(2)  # the second agent starts and produces while the broker is still down
        mosquitto.start()
        msgs = rec.wait_for(
            lambda ms: (
                len(_session_of(ms)) == 2
                and any(
                    m.channel == "health" and m.json()["session"] != s1 and not m.json()["replay"] for m in ms
                )
            ),
            30,
            "second session live",
        )
        assert second.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 10, "offline(shutdown)")
    finally:
        second.close()
    msgs = rec.snapshot()
    rec.close()
    s2 = next(s for s in _session_of(msgs) if s != s1)
    stream1 = _check_session_stream(msgs, s1)
    got1 = {d["seq"] for d, _ in stream1}
    assert set(pending[s1]) <= got1, f"first session lost {sorted(set(pending[s1]) - got1)}"
    assert all(d["replay"] for d, _ in stream1 if d["seq"] in pending[s1])
    stream2 = _check_session_stream(msgs, s2)
    assert any(d["replay"] for d, _ in stream2), "second session's offline start should be replayed"
    assert "messages pending in outbox from earlier runs" in (tmp_path / "a2.log").read_text()
    _check_snapshots(msgs)
