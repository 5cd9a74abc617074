"""A full outbox drops health before events, counts the drops and says so."""

from __future__ import annotations

import re
import time
from pathlib import Path

from edge_helpers import AgentProcess, Recorder, agent_config, has_status, sequenced

from commune_iot.localsvc import Mosquitto


def test_full_outbox_drops_health_first_and_reports_it(mosquitto: Mosquitto, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    collectors = [{"type": "sim_camera", "interval_s": 3600, "events_per_hour": 7200, "follow_day": False}]
    cfg = agent_config(
        tmp_path, mosquitto.url, health_interval_s=0.1, collectors=collectors, outbox={"max_messages": 30}
    )
    agent = AgentProcess(cfg, tmp_path / "a.log")
    try:
        rec.wait_for(lambda ms: len(sequenced(ms)) >= 5, 15, "live traffic")
        mosquitto.stop()
        time.sleep(4)  # ~40 health + ~16 event/snapshot rows against a limit of 30
        mosquitto.start()
        msgs = rec.wait_for(
            lambda ms: any(
                m.channel == "health" and m.json()["outbox_dropped"] > 0 and not m.json()["replay"]
                for m in ms
            ),
            30,
            "a live health message reporting the drops",
        )
        assert agent.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 10, "offline(shutdown)")
    finally:
        agent.close()
    msgs = rec.snapshot()
    rec.close()

    # At-least-once: a message in flight when the broker went down may arrive twice.
    docs = list({d["seq"]: d for d in sequenced(msgs)}.values())
    seqs = {d["seq"] for d in docs}
    missing = set(range(1, max(seqs) + 1)) - seqs
    dropped = max(d["outbox_dropped"] for d in docs if "outbox_dropped" in d)
    assert missing, "the outbox limit should have forced drops"
    # Every message that never arrived is counted. A message can also be counted and yet
    # have arrived: the broker delivered it but died before its PUBACK reached the board, so
    # the board still held it when the outbox overflowed. At most the in-flight window
    # (20 by default) can be in that state; in practice one or two.
    assert len(missing) <= dropped <= len(missing) + 20, "Health.outbox_dropped counts the losses"

    # Every event and its snapshot survived: event numbers are contiguous.
    events = [d for d in docs if "event_id" in d]
    numbers = sorted(int(d["event_id"].rsplit("-", 1)[1]) for d in events)
    assert len(numbers) >= 4
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "an event was dropped"
    snapshots = {m.topic.rsplit("/", 1)[1] for m in msgs if m.channel == "snapshot"}
    assert {d["event_id"] for d in events} <= snapshots

    log = agent.log()
    assert "outbox dropped the oldest lowest-priority messages" in log
    assert re.search(r"\d+ health messages? \(outbox full \(max_messages=30\)\)", log)
    assert "event/snapshot" not in log
