"""A broker (or uplink) that stops answering without closing the TCP connection.

On 3G this is the common failure: no FIN, no RST, just silence. Only the MQTT keepalive
notices it; until then nothing may be lost, and afterwards the outbox takes over.
"""

from __future__ import annotations

from pathlib import Path

from edge_helpers import AgentProcess, Recorder, agent_config, has_status, sequenced

from commune_iot.localsvc import Mosquitto


def test_silent_broker_is_detected_by_keepalive_and_nothing_is_lost(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    rec = Recorder(mosquitto.port)
    cfg = agent_config(tmp_path, mosquitto.url, collectors=[{"type": "sim_ap", "interval_s": 0.3}])
    text = cfg.read_text().replace("keepalive_s: 5", "keepalive_s: 2")
    cfg.write_text(text)
    agent = AgentProcess(cfg, tmp_path / "a.log")
    try:
        rec.wait_for(lambda ms: len(sequenced(ms)) >= 5, 15, "live traffic")
        mosquitto.pause()
        try:
            agent.wait_log("no answer from the broker within the keepalive", 15)
        finally:
            mosquitto.resume()
        rec.wait_for(
            lambda ms: sum("connected to broker" in line for line in agent.log().splitlines()) >= 2,
            15,
            "reconnection",
        )
        assert agent.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 15, "offline(shutdown)")
    finally:
        agent.close()
    docs = sequenced(rec.snapshot())
    rec.close()
    seqs = {d["seq"] for d in docs}
    assert seqs == set(range(1, max(seqs) + 1)), f"lost: {sorted(set(range(1, max(seqs) + 1)) - seqs)}"
    assert any(d["replay"] for d in docs), "messages produced while the broker was silent are replays"
