"""Birth, Last Will and orderly shutdown, as the cloud sees them on the status topic."""

from __future__ import annotations

from pathlib import Path

from edge_helpers import AgentProcess, Recorder, agent_config, has_status, status

from commune_iot.localsvc import Mosquitto


def test_birth_will_on_kill9_and_shutdown_on_sigterm(mosquitto: Mosquitto, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    cfg = agent_config(tmp_path, mosquitto.url, collectors=[{"type": "sim_ap", "device": "dr-ap-01"}])
    agent = AgentProcess(cfg, tmp_path / "agent1.log")
    try:
        msgs = rec.wait_for(has_status("online", "birth"), 15, "birth certificate")
        birth = next(s for m in msgs if (s := status(m)) and s["state"] == "online")
        assert birth["node"] == "dr-cam-01"
        assert birth["health_interval_s"] == 0.2
        assert birth["devices"] == ["dr-ap-01"]
        assert birth["agent_version"]
        session = birth["session"]
        # Health doubles as the heartbeat: it keeps coming at the configured interval.
        rec.wait_for(lambda ms: sum(m.channel == "health" for m in ms) >= 3, 10, "three health messages")

        agent.kill9()
        msgs = rec.wait_for(has_status("offline", "will", session=session), 10, "Last Will after kill -9")
        will = next(s for m in msgs if (s := status(m)) and s["reason"] == "will")
        # the Will carries its connection's stamp, the birth's: the cloud orders statuses by it
        assert will["ts"] == birth["ts"]
    finally:
        agent.close()

    # A late subscriber sees the retained state of the node: offline (the will).
    late = Recorder(mosquitto.port, topic="ciot/v1/da-ron/dr-cam-01/status", client_id="late-1")
    late.wait_for(has_status("offline", "will", retained=True), 10, "retained will")
    late.close()

    agent2 = AgentProcess(cfg, tmp_path / "agent2.log")
    try:
        msgs = rec.wait_for(
            lambda ms: any(
                (s := status(m)) and s["reason"] == "birth" and s["session"] != session for m in ms
            ),
            15,
            "birth of the second session",
        )
        assert agent2.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 10, "offline(shutdown)")
        shutdown = [s for m in rec.snapshot() if (s := status(m)) and s["reason"] == "shutdown"]
        assert len(shutdown) == 1 and shutdown[0]["session"] != session
        births = [s for m in rec.snapshot() if (s := status(m)) and s["reason"] == "birth"]
        assert [b["ts"] for b in births] == sorted({b["ts"] for b in births}), "stamps must grow"
        assert shutdown[0]["ts"] > births[-1]["ts"]
        # The orderly goodbye replaces the will: no will for the second session.
        wills = [s for m in rec.snapshot() if (s := status(m)) and s["reason"] == "will"]
        assert all(w["session"] == session for w in wills)
        assert "offline status acknowledged by the broker" in agent2.log()
    finally:
        agent2.close()
    late = Recorder(mosquitto.port, topic="ciot/v1/da-ron/dr-cam-01/status", client_id="late-2")
    late.wait_for(has_status("offline", "shutdown", retained=True), 10, "retained offline(shutdown)")
    late.close()
    rec.close()
