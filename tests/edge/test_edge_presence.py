"""Data waits in the outbox until a cloud ingest worker says, live, that it is subscribed.

Without this, a Mosquitto restart loses data: the broker restores the ingest worker's
session but not its shared subscription, so what boards publish before the worker
re-subscribes is acknowledged to them and delivered to nobody (measured, 2.0.11).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from edge_helpers import AgentProcess, Recorder, agent_config, has_status, sequenced
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from commune_iot.localsvc import Mosquitto
from wire import HostState, encode_host_state, host_state_topic


def _announce(port: int, *, online: bool, worker: str = "w1", heartbeat_s: float = 0.5) -> None:
    """Publish a worker's retained host state as the cloud does (QoS 1, wait for PUBACK)."""
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"fake-host-{worker}", protocol=MQTTProtocolVersion.MQTTv5
    )
    c.connect("127.0.0.1", port)
    c.loop_start()
    state = HostState(worker=worker, online=online, ts=datetime.now(UTC), heartbeat_s=heartbeat_s)
    c.publish(host_state_topic(worker), encode_host_state(state), qos=1, retain=True).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


class _Heartbeat:
    """A stand-in for the cloud worker's heartbeat (the real one is tested end to end)."""

    def __init__(self, port: int, interval: float = 0.5) -> None:
        self.port, self.interval = port, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            _announce(self.port, online=True, heartbeat_s=self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_data_waits_for_a_live_cloud_worker(mosquitto: Mosquitto, tmp_path: Path) -> None:
    # A retained "online" left from before (say, from before a broker restart) is not believed.
    _announce(mosquitto.port, online=True)
    rec = Recorder(mosquitto.port, topic="ciot/v1/#")
    cfg = agent_config(tmp_path, mosquitto.url, hold_until_cloud=True)
    agent = AgentProcess(cfg, tmp_path / "agent.log")
    try:
        rec.wait_for(has_status("online", "birth"), 15, "birth certificate (never held)")
        agent.wait_log("sent once a cloud ingest worker is live", 10)
        # Health every 0.2 s is produced but held: after a second, nothing on the data topics.
        threading.Event().wait(1.0)
        assert sequenced(rec.snapshot()) == [], "data published with no live cloud worker"

        beat = _Heartbeat(mosquitto.port)
        try:
            msgs = rec.wait_for(lambda ms: len(sequenced(ms)) >= 8, 10, "held data once the cloud is live")
            docs = sequenced(msgs)
            assert [d["seq"] for d in docs] == sorted(d["seq"] for d in docs)
            # Waiting for the first announcement after start is not a replay.
            assert docs[0]["seq"] == 1 and not docs[0]["replay"]
            agent.wait_log("cloud ingest live (w1)", 5)
        finally:
            beat.stop()
        # Heartbeats stop (a wedged or dead worker whose Will has not come yet): held again.
        agent.wait_log("no cloud ingest worker is live", 10)
        held_from = len(sequenced(rec.snapshot()))
        threading.Event().wait(1.0)
        assert len(sequenced(rec.snapshot())) <= held_from + 1
        # The worker comes back: what was held arrives, in order, flagged as replayed.
        beat = _Heartbeat(mosquitto.port)
        try:
            msgs = rec.wait_for(lambda ms: len(sequenced(ms)) >= held_from + 8, 10, "data held while silent")
        finally:
            beat.stop()
        resumed = sequenced(msgs)[held_from:]
        assert [d["seq"] for d in resumed] == sorted(d["seq"] for d in resumed)
        assert resumed[1]["replay"], "data held while the cloud was silent is flagged as replayed"
        # The worker's orderly "offline" is believed at once, even retained; nothing flows.
        _announce(mosquitto.port, online=False)
        assert agent.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 10, "orderly offline while holding")
        assert "left in outbox for the next start" in agent.log()
    finally:
        agent.close()
        rec.close()
