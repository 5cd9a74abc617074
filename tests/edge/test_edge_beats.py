"""The 3G keepalive (edge/keepalive.py): beats keep the broker's keepalive, pings stay rare.

A real agent talks to a real Mosquitto through a small relay (edge_helpers.CountingRelay) that
reads the MQTT packets the board sends (plain MQTT, so their types can be seen): what a 3G board
pays for is packets, and a beat is one packet where a ping is three. The broker's side is
observed as the cloud sees it: the board's retained status and its Will.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from edge_helpers import AgentProcess, CountingRelay, Recorder, agent_config, has_status

from commune_iot.localsvc import Mosquitto
from edge.config import BrokerConfig
from edge.keepalive import BeatingClient

PINGREQ, PUBLISH = 0xC, 0x3


def _quiet_board(tmp: Path, url: str, **broker: object) -> Path:
    """A board that sends nothing but its keepalive (health every 5 minutes, no collector)."""
    path = agent_config(tmp, url, health_interval_s=300)
    doc = yaml.safe_load(path.read_text())
    doc["broker"].update(keepalive_s=3, **broker)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_quiet_board_keeps_its_connection_with_beats_and_checks_the_link_rarely(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    relay = CountingRelay(mosquitto.port, mqtt_packets=True)
    rec = Recorder(mosquitto.port)
    agent = AgentProcess(
        _quiet_board(tmp_path, f"mqtt://127.0.0.1:{relay.port}", check_link_s=9), tmp_path / "a.log"
    )
    try:
        rec.wait_for(has_status("online", "birth"), 15, "birth")
        time.sleep(3)  # past the birth, its PUBACK and the first health message
        t0 = time.monotonic()
        time.sleep(18)  # six keepalives: what is measured (there is no event to await)
        t1 = time.monotonic()
        sent = relay.packets_between(t0, t1)
        kinds = Counter(kind for _, kind in sent)
        times = [t0] + [t for t, _ in sent] + [t1]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # the broker heard the board within every keepalive (its Will waits 1.5 x keepalive)...
        assert max(gaps) < 3 * 1.5, f"a silence of {max(gaps):.1f} s; packets {sent}"
        # ...mostly from beats: the link was checked with a PINGREQ about every 9 s, not every 3 s
        assert 1 <= kinds[PINGREQ] <= 2, kinds
        # one packet per keepalive, not more: 18 s hold 4-5 beats besides the link checks
        assert 3 <= kinds[PUBLISH] <= 6, kinds
        assert len(sent) <= 7, sent
        statuses = [m for m in rec.snapshot() if m.topic.endswith("/status")]
        assert [m.json()["state"] for m in statuses] == ["online"], "no Will, no reconnection"
        assert agent.log().count("connected to broker") == 1
    finally:
        agent.close()
        rec.close()
        relay.close()


def test_a_silent_broker_is_found_within_check_link_plus_keepalive(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    agent = AgentProcess(_quiet_board(tmp_path, mosquitto.url, check_link_s=6), tmp_path / "a.log")
    try:
        agent.wait_log("connected to broker", 15)
        time.sleep(1)
        mosquitto.pause()
        paused = time.monotonic()
        try:
            agent.wait_log("no answer from the broker within the keepalive", 6 + 3 + 5)
            took = time.monotonic() - paused
        finally:
            mosquitto.resume()
        # check_link_s + keepalive_s, plus up to a second each for the agent's keepalive tick
        assert took <= 6 + 3 + 2, f"the dead link was found after {took:.1f} s"
        agent.wait_log("connected to broker at", 15)
    finally:
        agent.close()


def test_a_frozen_board_beating_is_declared_dead_as_fast_as_one_pinging(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The Will comes after 1.5 x keepalive of silence plus Mosquitto's keepalive scan (up to
    6 s in 2.0), whether the board kept its keepalive with pings or with beats."""
    rec = Recorder(mosquitto.port)
    agent = AgentProcess(_quiet_board(tmp_path, mosquitto.url, check_link_s=9), tmp_path / "a.log")
    try:
        rec.wait_for(has_status("online", "birth"), 15, "birth")
        time.sleep(5)  # beats only by now
        agent.proc.send_signal(19)  # SIGSTOP: a hung board, its TCP connection left open
        frozen = time.monotonic()
        # at most a keepalive plus a tick since the last beat, 1.5 x 3 s (whole seconds), 6 s scan
        rec.wait_for(has_status("offline", "will"), 4 + 5 + 6 + 3, "the Will")
        assert time.monotonic() - frozen <= 4 + 5 + 6
        agent.proc.send_signal(18)  # SIGCONT
    finally:
        agent.close()
        rec.close()


def test_paho_still_has_the_keepalive_internals_the_beats_replace() -> None:
    """edge/keepalive.py overrides paho's private ``_check_keepalive``; a paho release that
    renames what it reads must fail here, not silently fall back to pings on 3G boards."""
    client = BeatingClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    for name in (
        "_keepalive",
        "_last_msg_out",
        "_last_bytes_received",
        "_ping_t",
        "_msgtime_mutex",
        "_state",
    ):
        assert hasattr(client, name), name
    assert callable(getattr(mqtt.Client, "_check_keepalive", None))
    assert hasattr(mqtt, "_ConnectionState") and hasattr(mqtt, "time_func")


@pytest.mark.parametrize("check", [1.0, 1.9])
def test_check_link_below_the_keepalive_is_refused(check: float) -> None:
    with pytest.raises(ValueError, match=r"check_link_s \(\S+\) is below broker\.keepalive_s"):
        BrokerConfig(keepalive_s=2, check_link_s=check)
