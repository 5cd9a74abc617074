"""Adding and revoking boards on the running hardened broker (issue 14): the broker runs as
its own unprivileged user, as in production; the real ``commune-iot provision`` command adds
one board and revokes another, each time reloading the broker (SIGHUP, what
``docker compose kill -s HUP mosquitto`` sends), while a third board (a real edge agent) and
the cloud's ingest stay connected and keep delivering into InfluxDB.

What Mosquitto 2.0.11 does with a revoked board that is connected at the reload (measured
here): it checks every connected client against the new password file and disconnects the
revoked one at once; its reconnects are refused (not authorised).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from support import CLOUD_USER, influx_query, provision

from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config
from commune_iot.localsvc import REPO, InfluxDB, SecureMosquitto, broker_account, free_port

STAYS, REVOKED, ADDED = "dr-cam-01", "dr-cam-02", "dr-cam-03"
HEALTH_S = 0.5


def _agent(broker: SecureMosquitto, node: str, run_dir: Path) -> AgentProcess:
    """A real edge agent with the config, password and CA of the bundle ``provision`` wrote
    (only the board's fixed paths and the timings are changed for the test)."""
    bundle = broker.bundles / node
    cfg = yaml.safe_load((bundle / "edge.yaml").read_text(encoding="utf-8"))
    assert cfg["broker"]["url"] == broker.tls_url
    cfg["broker"] |= {
        "ca_file": str(bundle / "ca.crt"),
        "password_file": str(bundle / "mqtt.password"),
        "keepalive_s": 5,
        "reconnect_max_s": 1.0,
    }
    cfg["outbox"]["path"] = str(run_dir / "agents" / node / "outbox.sqlite3")
    cfg["health_interval_s"] = HEALTH_S
    cfg["log"] = {"level": "INFO"}
    return AgentProcess.write(run_dir, cfg).start()


def _health(influx: InfluxDB, db: str, node: str) -> list[tuple[int, float, bool]]:
    """(time in ms, seq, replay) of every health point the cloud stored for ``node``."""
    q = f"SELECT seq, replay FROM health WHERE node = '{node}'"
    series = influx_query(influx, db, q)
    return [(int(t), seq, bool(replay)) for t, seq, replay in series[0]["values"]] if series else []


def _wait(broker: SecureMosquitto, what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    """Poll ``check``; fail at once when the broker logs an error (it then refuses everyone)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert "Error" not in broker.log(), f"waiting for {what}, the broker said:\n{broker.log()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.2)


def _provision(*args: str) -> str:
    """The real command line, as an operator types it."""
    argv = [sys.executable, "-m", "commune_iot", "provision", *args]
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res
    return res.stdout


@pytest.fixture
def cloud(
    secure_broker: SecureMosquitto, influx_server: InfluxDB, influx_db: str, tmp_path: Path
) -> Iterator[CloudProcess]:
    for board in (STAYS, REVOKED):
        provision(secure_broker, board)
    secure_broker.start()
    pw = tmp_path / "influx.password"
    pw.write_text(influx_server.password)
    cfg = cloud_config(
        mqtt_url=secure_broker.url,  # the cloud's authenticated plain listener
        influx_url=influx_server.url,
        influx_db=influx_db,
        influx_user=influx_server.username,
        influx_password_file=pw,
        state_dir=tmp_path / "cloud",
        http_port=free_port(),
    )
    cfg["mqtt"] |= {
        "username": CLOUD_USER,
        "password_file": str(secure_broker.bundles / f"{CLOUD_USER}.password"),
    }
    proc = CloudProcess.write(tmp_path, cfg).start()
    yield proc
    proc.stop()


def test_boards_are_added_and_revoked_while_the_others_and_the_cloud_stay_connected(
    secure_broker: SecureMosquitto,
    cloud: CloudProcess,
    influx_server: InfluxDB,
    influx_db: str,
    tmp_path: Path,
) -> None:
    broker = secure_broker
    assert broker.proc is not None
    account = broker_account()
    if account is not None:  # the tests run as root: the broker must not
        status = Path(f"/proc/{broker.proc.pid}/status").read_text()
        assert f"Uid:\t{account.pw_uid}\t" in status, "the broker runs as root"
    cloud_id = yaml.safe_load(cloud.config_path.read_text())["mqtt"]["client_id"]
    agents = {node: _agent(broker, node, tmp_path) for node in (STAYS, REVOKED)}
    try:
        _wait(
            broker,
            "both boards' health in InfluxDB",
            lambda: all(len(_health(influx_server, influx_db, n)) >= 3 for n in (STAYS, REVOKED)),
        )
        changes_from_ms = time.time() * 1000
        hup = f"kill -HUP {broker.proc.pid}"  # what `docker compose kill -s HUP` does
        auth, out = str(broker.auth), str(broker.bundles)
        _provision(ADDED, "--broker-url", broker.tls_url, "--broker-dir", auth, "--out", out, "--reload", hup)
        agents[ADDED] = _agent(broker, ADDED, tmp_path)
        said = _provision(REVOKED, "--revoke", "--broker-dir", auth, "--reload", hup)
        assert "broker reloaded" in said
        revoked_at_ms = time.time() * 1000

        revoked_log = agents[REVOKED].log_path
        _wait(
            broker,
            "the revoked board to be dropped and refused",
            lambda: "refused the connection" in revoked_log.read_text(),
        )
        _wait(
            broker,
            "the added board's health in InfluxDB",
            lambda: len(_health(influx_server, influx_db, ADDED)) >= 3,
        )
        _wait(
            broker,
            "2 s more of the staying board's health in InfluxDB",
            lambda: any(t > revoked_at_ms + 2000 for t, _, _ in _health(influx_server, influx_db, STAYS)),
        )
        log = broker.log()  # before the agents go (a killed TLS client makes OpenSSL complain)
    finally:
        for a in agents.values():
            a.kill()

    assert "Error" not in log, log[-3000:]  # e.g. "Error: Unable to open pwfile"
    # Never dropped: one connection each, in the broker's log and in the agent's.
    assert broker.connections(STAYS) == 1 and broker.connections(cloud_id) == 1, log[-3000:]
    stays_log = agents[STAYS].log_path.read_text()
    assert stays_log.count("connected to broker") == 1 and " lost" not in stays_log
    # Kept delivering: every health message, in sequence, and none made while the broker was
    # being changed had to wait in the outbox to be replayed.
    points = _health(influx_server, influx_db, STAYS)
    seqs = [seq for _, seq, _ in points]
    assert seqs == list(range(int(seqs[0]), int(seqs[0]) + len(seqs))), "a health message is missing"
    during = [replay for t, _, replay in points if t >= changes_from_ms]
    assert len(during) >= 4 and not any(during), "the staying board had to replay from its outbox"
    # The added board came in with its bundle, once; the revoked one was dropped at the
    # reload (it was connected) and let in never again.
    assert broker.connections(ADDED) == 1
    assert broker.connections(REVOKED) == 1
    assert f"Client {REVOKED} disconnected" in log
    revoked = revoked_log.read_text()
    assert revoked.index("connection to broker") < revoked.index("refused the connection: Not authorized")
