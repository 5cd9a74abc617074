"""The sink a collector writes to: sequence numbers, snapshot-before-event, validation."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest

from edge.collectors.snapshot import tiny_jpeg
from edge.config import EdgeConfig
from edge.outbox import Priority
from edge.runtime import Agent
from wire import Point


def _agent(tmp_path: Path) -> Agent:
    cfg = EdgeConfig(node="dr-cam-01", commune="da-ron", outbox={"path": tmp_path / "o.db"})
    return Agent(cfg)


def test_event_goes_after_its_snapshot_and_seq_has_no_gaps(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    with pytest.raises(pydantic.ValidationError):
        agent.emit_event({"event_id": "e1", "device": "dr-cam-01", "phase": "finished"})  # bad phase
    agent.emit_metrics([])  # nothing to send: no message, no seq
    now = datetime.now(UTC)
    jpeg = tiny_jpeg("e2")
    agent.emit_event(
        {
            "event_id": "e2",
            "device": "dr-cam-01",
            "phase": "end",
            "start": now,
            "end": now,
            "peak_area_pct": 3.5,
        },
        jpeg,
    )
    agent.emit_metrics([Point(measurement="camera", device="dr-cam-01", fields={"up": True})])
    rows = agent.outbox.after(0, 10)
    assert [r.topic.split("/", 4)[4] for r in rows] == ["snapshot/e2", "event", "metrics"]
    assert rows[0].payload == jpeg and not rows[0].is_json and rows[0].priority is Priority.EVENT
    event, metrics = json.loads(rows[1].payload), json.loads(rows[2].payload)
    assert (event["seq"], metrics["seq"]) == (1, 2), "a rejected event must not consume a seq"
    assert event["snapshot_sha256"] == hashlib.sha256(jpeg).hexdigest()
    assert event["snapshot_bytes"] == len(jpeg)
    assert event["replay"] is False and event["session"] == agent.session
    assert rows[2].priority is Priority.METRICS
    agent.outbox.close()


def test_each_start_is_a_new_session(tmp_path: Path) -> None:
    a, b = _agent(tmp_path / "a"), _agent(tmp_path / "b")
    assert a.session != b.session and len(a.session) == 16
    assert a.health().seq == 1 and a.health().seq == 2
    a.outbox.close()
    b.outbox.close()


def test_large_metrics_are_split_within_the_contract_limits(tmp_path: Path) -> None:
    from wire.messages import MAX_JSON_BYTES

    agent = _agent(tmp_path)
    fields: dict[str, bool | int | float | str] = {f"f{i}": "x" * 200 for i in range(60)}
    points = [
        Point(measurement="ap", device="dr-ap-01", tags={"n": str(i)}, fields=fields) for i in range(1200)
    ]
    agent.emit_metrics(points)
    rows = agent.outbox.after(0, 10_000)
    docs = [json.loads(r.payload) for r in rows]
    assert all(len(r.payload) <= MAX_JSON_BYTES for r in rows)
    assert [d["seq"] for d in docs] == list(range(1, len(docs) + 1))
    assert [p["tags"]["n"] for d in docs for p in d["points"]] == [str(i) for i in range(1200)]
    agent.outbox.close()
