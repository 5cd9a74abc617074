"""A production-like broker: the shipped hardened configuration, run unprivileged, with files
made by ``commune-iot provision``. The agent connects with the password from the environment
over mqtts://, and says what to fix when credentials or the CA are wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from edge_helpers import AgentProcess, CountingRelay, Recorder, agent_config, has_status
from support import CLOUD_USER, broker_password, provision

from commune_iot.localsvc import SecureMosquitto

USER = "dr-cam-01"


@pytest.fixture
def broker(secure_broker: SecureMosquitto) -> SecureMosquitto:
    provision(secure_broker, USER)
    return secure_broker.start()


def _config(tmp_path: Path, url: str, name: str, **broker: object) -> Path:
    """The usual test config in its own directory, with extra ``broker`` settings."""
    home = tmp_path / name
    home.mkdir()
    cfg = agent_config(home, url)
    extra = "".join(f"  {k}: {v}\n" for k, v in broker.items())
    cfg.write_text(cfg.read_text().replace("broker:\n", "broker:\n" + extra, 1))
    return cfg


def test_wrong_password_is_reported_then_tls_with_env_password_works(
    broker: SecureMosquitto, tmp_path: Path
) -> None:
    ca = broker.auth / "ca.crt"
    password = broker_password(broker, USER)
    refused = AgentProcess(
        _config(tmp_path, broker.url, "a", username=USER),
        tmp_path / "a.log",
        env={"CIOT_EDGE_BROKER__PASSWORD": "wrong"},
    )
    try:
        refused.wait_log("refused the connection", 15)
        assert "check broker.username and the password" in refused.log()
        assert refused.terminate() == 0
    finally:
        refused.close()

    untrusted = AgentProcess(
        _config(tmp_path, broker.tls_url, "b", username=USER),
        tmp_path / "b.log",
    )
    try:
        untrusted.wait_log("TLS certificate rejected", 15)
        assert untrusted.terminate() == 0
    finally:
        untrusted.close()

    rec = Recorder(broker.port, auth=(CLOUD_USER, broker_password(broker, CLOUD_USER)))
    good = AgentProcess(
        _config(tmp_path, broker.tls_url, "c", username=USER, ca_file=str(ca)),
        tmp_path / "c.log",
        env={"CIOT_EDGE_BROKER__PASSWORD": password},
    )
    try:
        rec.wait_for(has_status("online", "birth"), 15, "birth over TLS")
        rec.wait_for(lambda ms: sum(m.channel == "health" for m in ms) >= 5, 15, "health over TLS")
        assert good.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 10, "offline(shutdown) over TLS")
    finally:
        good.close()
        rec.close()
    assert password not in good.log()


def test_a_board_that_lost_its_uplink_resumes_its_tls_session(
    broker: SecureMosquitto, tmp_path: Path
) -> None:
    """On 3G a board reconnects after every stall; resuming the TLS session spares the
    broker's certificate and signature on each of those reconnects (edge/link.py)."""
    relay = CountingRelay(broker.tls_port)
    agent = AgentProcess(
        _config(
            tmp_path,
            f"mqtts://127.0.0.1:{relay.port}",
            "r",
            username=USER,
            ca_file=str(broker.auth / "ca.crt"),
        ),
        tmp_path / "r.log",
        env={"CIOT_EDGE_BROKER__PASSWORD": broker_password(broker, USER)},
    )
    try:
        agent.wait_log("connected to broker", 15)
        assert "TLS session resumed" not in agent.log(), "the first connection has no ticket to offer"
        for _ in range(2):
            n = agent.log().count("connected to broker")
            relay.cut()  # the uplink drops
            deadline = time.monotonic() + 15
            while agent.log().count("connected to broker") == n:
                assert time.monotonic() < deadline, agent.log()[-1500:]
                time.sleep(0.1)
        lines = [line for line in agent.log().splitlines() if "connected to broker" in line]
        assert all("TLS session resumed" in line for line in lines[1:]), lines
        first, *again = relay.connections
        # what the broker sends a resumed board: no certificate, no signature
        sizes = [c.down_bytes for c in relay.connections]
        assert all(first.down_bytes - c.down_bytes >= 400 for c in again), sizes
        assert agent.terminate() == 0
    finally:
        agent.close()
        relay.close()
