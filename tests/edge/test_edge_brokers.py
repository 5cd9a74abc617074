"""An agent given several brokers (``broker.urls``, the nodes of a cluster) moves to the next
when the one it uses dies, and speaks MQTT 3.1.1 when told to (a NATS cluster has no v5).

Two independent Mosquittos stand in for two nodes here: the mechanics are the agent's; what a
real cluster keeps across a node's death is in tests/cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

from edge_helpers import AgentProcess, Received, Recorder, agent_config, has_status, status, write_config
from yaml import safe_load

from commune_iot.localsvc import Mosquitto


def _session(msgs: list[Received]) -> str:
    return next(s["session"] for m in msgs if (s := status(m)) is not None)


def test_agent_fails_over_to_the_next_broker_within_seconds(tmp_path: Path) -> None:
    brokers = [Mosquitto(tmp_path / "a").start(), Mosquitto(tmp_path / "b").start()]
    recorders = [Recorder(b.port, client_id=f"rec-{i}") for i, b in enumerate(brokers)]
    cfg_path = agent_config(tmp_path, brokers[0].url, collectors=[{"type": "sim_ap", "device": "dr-ap-01"}])
    cfg = safe_load(cfg_path.read_text())
    cfg["broker"] = {**cfg["broker"], "urls": [b.url for b in brokers], "protocol": "3.1.1"}
    cfg["broker"].pop("url")
    agent = AgentProcess(write_config(cfg_path, **cfg), tmp_path / "agent.log")
    try:
        agent.wait_log("connected to broker at", 15)
        first = re.findall(r"connected to broker at (\S+);", agent.log())[0]
        i = [b.url for b in brokers].index(first)  # where it started: picked by its client id
        msgs = recorders[i].wait_for(has_status("online", "birth"), 10, "birth on the first broker")
        session = _session(msgs)

        brokers[i].kill()
        msgs = recorders[1 - i].wait_for(has_status("online", "birth"), 10, "birth on the other broker")
        assert _session(msgs) == session  # the same agent run
        recorders[1 - i].wait_for(lambda ms: sum(m.channel == "health" for m in ms) >= 3, 10, "health there")
        assert "retry in" in agent.log() and f"at {brokers[1 - i].url}" in agent.log()
        assert agent.terminate() == 0
    finally:
        agent.close()
        for r in recorders:
            r.close()
        for b in brokers:
            b.kill()
