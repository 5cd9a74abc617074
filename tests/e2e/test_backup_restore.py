"""A backup taken while the cloud ingests, restored onto a fresh node (new SQL database, new
InfluxDB, empty folders), answers as the original did (issue 20 item 5).

Everything runs as in production: Mosquitto, InfluxDB, ``commune-iot cloud serve``, real edge
agents (a camera with motion events and snapshots, access points, one of them killed so an
alert is open), 300 simulated boards keeping ingest busy during the backup, and the
``commune-iot backup`` / ``restore`` / ``audit verify`` / ``evidence verify`` commands.

The original keeps ingesting while the backup is taken, so its answers move on: what the
restored node says must lie between the original's answers just before and just after the
backup (per device: message counts and last-seen), and be equal where nothing changed
meanwhile (alerts, the events and export made before, the kept report, the audit trail up to
then, the time series before the backup started).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from commune_iot.bench.scale import BoardProcesses, board_specs
from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config, edge_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, PostgreSQL, free_port

CAMERA, AP_DOWN, AP_UP = "dr-cam-01", "dr-ap-02", "dr-ap-03"
LOAD_BOARDS = 300


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commune_iot", *args], capture_output=True, text=True, timeout=300
    )


def _node(run: Path, broker: Mosquitto, influx: InfluxDB, sql_url: str, settle_s: float) -> CloudProcess:
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx.url,
        influx_db="ciot",
        influx_user="",
        influx_password_file=None,
        state_dir=run,
        http_port=free_port(),
        sql_url=sql_url,
    )
    cfg["influx"]["backup_address"] = f"127.0.0.1:{influx.rpc_port}"
    cfg["alerting"] = {"settle_s": settle_s, "grace_s": 1.0}
    # the paths a backup carries, under this node's folder (relative: resolved against the YAML)
    cfg["events"] = {"exports_dir": "var/exports", "signing_key_file": "var/keys/evidence.pem"}
    cfg["reports"] = {"output_dir": "var/reports"}
    cfg["releases"] = {"dir": "var/releases"}
    cfg["fleet"] = {"signing_key_file": "var/keys/fleet.pem"}
    return CloudProcess.write(run, cfg)


def _wait(probe: Any, ok: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {value!r}")
        time.sleep(0.3)


def _answers(cloud: CloudProcess) -> dict[str, Any]:
    return {
        "devices": {d["id"]: d for d in cloud.get_json("/api/v1/devices", timeout=30)},
        "alerts": cloud.get_json("/api/v1/alerts?limit=1000"),
        "events": cloud.get_json("/api/v1/events?limit=500")["events"],
        "exports": cloud.get_json("/api/v1/exports"),
        "reports": cloud.get_json("/api/v1/reports"),
        "audit": cloud.get_json("/api/v1/audit/verify"),
    }


def _health_points_before(influx: InfluxDB, t_ms: int) -> int:
    q = f'SELECT count("seq") FROM "health" WHERE time < {t_ms}ms'
    body = urllib.parse.urlencode({"db": "ciot", "q": q}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{influx.url}/query", data=body), timeout=30) as r:
        series = json.load(r)["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


@pytest.fixture
def second_sql_url(sql_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of the same engine for the restored node."""
    if sql_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored' / 'ciot-cloud.db'}"
    server: PostgreSQL = request.getfixturevalue("postgres_server")
    name = f"restored_{abs(hash(request.node.nodeid)) % 10**8}"
    server.drop_database(name)
    url = server.create_database(name)
    request.addfinalizer(lambda: server.drop_database(name))
    return url


def test_backup_under_load_restores_the_same_answers_on_a_fresh_node(
    tmp_path: Path, sql_url: str, second_sql_url: str
) -> None:
    broker = Mosquitto(tmp_path / "mq").start()
    influx = InfluxDB(tmp_path / "influx").start()
    original = _node(tmp_path / "original", broker, influx, sql_url, settle_s=3.0)
    devices = {d["id"]: d for d in load_devices()}
    agents: list[AgentProcess] = []
    load: BoardProcesses | None = None
    restored: CloudProcess | None = None
    influx2 = broker2 = None
    try:
        original.start(wait=60)
        for dev in (CAMERA, AP_DOWN, AP_UP):
            cfg = edge_config(
                devices[dev],
                broker.url,
                tmp_path / "agents" / dev,
                sim_interval_s=2.0,
                events_per_hour=3600.0 if dev == CAMERA else None,
            )
            if dev == CAMERA:
                cfg["collectors"][0]["follow_day"] = False  # events at any hour of the test
            agents.append(AgentProcess.write(tmp_path, cfg).start())
        events = _wait(
            lambda: original.get_json("/api/v1/events?limit=500")["events"],
            lambda e: len(e) >= 3,
            90,
            "three motion events",
        )
        agents[1].kill()  # a power cut: the broker sends its Will, an alert opens
        _wait(
            lambda: original.get_json(f"/api/v1/alerts?subject={AP_DOWN}"),
            lambda a: len(a) == 1,
            60,
            "the alert",
        )
        export = original.post_json(
            "/api/v1/exports", {"event_ids": [e["id"] for e in events[:2]], "reason": "CA-1"}
        )
        zip_before = tmp_path / "evidence-before.zip"
        with urllib.request.urlopen(
            original.request(f"/api/v1/exports/{export['id']}/download"), timeout=30
        ) as r:
            zip_before.write_bytes(r.read())
        _wait(lambda: original.get_json("/api/v1/reports"), bool, 60, "the monthly report")

        load = BoardProcesses.start(board_specs(LOAD_BOARDS), broker.port, ramp_per_s=300, seed=5)
        assert load.wait_ready(60)
        _wait(
            lambda: len(original.get_json("/api/v1/devices", timeout=30)),
            lambda n: n >= 59 + LOAD_BOARDS,
            60,
            "the load's boards in the device list",
        )

        before = _answers(original)
        t_backup = time.time()
        done = _cli("backup", "--config", str(original.config_path), "--out", str(tmp_path / "backups"))
        assert done.returncode == 0, done.stderr
        after = _answers(original)
        published = load.total("published")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        backup_dir = Path(result["backup"])
        assert load.total("published") >= published  # ingest kept going all along

        # a fresh node: its own broker, InfluxDB, database and folders
        broker2 = Mosquitto(tmp_path / "mq2").start()
        influx2 = InfluxDB(tmp_path / "influx2").start()
        restored = _node(tmp_path / "restored", broker2, influx2, second_sql_url, settle_s=3600.0)
        done = _cli("restore", str(backup_dir), "--config", str(restored.config_path))
        assert done.returncode == 0, done.stderr
        again = _cli("restore", str(backup_dir), "--config", str(restored.config_path))
        assert again.returncode == 1 and "not a fresh node" in again.stderr
        restored.start(wait=60)
        got = _answers(restored)

        # devices: every one, as it was at some instant of the backup
        assert got["devices"].keys() == after["devices"].keys()
        for dev, mine in got["devices"].items():
            lo, hi = before["devices"][dev], after["devices"][dev]
            for k in ("kind", "commune", "site", "node", "known"):
                assert mine[k] == hi[k], (dev, k)
            # a board of the load may be heard for the first time while the backup runs
            assert mine["session"] in (lo["session"], hi["session"]), dev
            assert lo["messages"] <= mine["messages"] <= hi["messages"], dev
            assert (lo["last_seen"] or "") <= (mine["last_seen"] or "") <= (hi["last_seen"] or ""), dev
        assert got["devices"][AP_DOWN]["status"] == "offline"
        assert got["alerts"] == after["alerts"] == before["alerts"]
        by_id = {e["id"]: e for e in got["events"]}
        after_by_id = {e["id"]: e for e in after["events"]}
        for e in before["events"]:  # as before the backup, or as labelled while it ran
            assert by_id[e["id"]] in (e, after_by_id[e["id"]]), e["id"]
        assert {e["id"] for e in got["events"]} <= {e["id"] for e in after["events"]}
        assert got["exports"] == before["exports"]
        assert got["reports"] == after["reports"]
        assert got["audit"]["intact"] and got["audit"]["rows"] >= before["audit"]["rows"]
        assert (
            _health_points_before(influx2, int(t_backup * 1000))
            == _health_points_before(influx, int(t_backup * 1000))
            > 0
        )

        # the audit chain and the evidence, checked with the commands an operator runs
        audit = _cli("audit", "verify", "--config", str(restored.config_path))
        assert audit.returncode == 0 and "intact" in audit.stdout
        keys = restored.get_json("/api/v1/exports/keys")
        assert export["key_fingerprint"] in {k["fingerprint"] for k in keys["retired"]}
        for zip_path in (zip_before, restored.config_path.parent / "var" / "exports" / export["filename"]):
            v = _cli(
                "evidence",
                "verify",
                str(zip_path),
                "--trusted-fingerprint",
                export["key_fingerprint"],
                "--expect-sha256",
                export["sha256"],
            )
            assert v.returncode == 0 and "OK" in v.stdout, v.stdout
    finally:
        if load is not None:
            load.stop()
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(15)
        for c in (restored, original):
            if c is not None:
                c.stop()
        for s in (broker, influx, broker2, influx2):
            if s is not None:
                s.stop()
