"""``commune-iot cloud serve`` as an operator runs it: real uvicorn, real broker and InfluxDB."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cloud_helpers import count, encoded, health, publish, topic

from commune_iot.localsvc import InfluxDB, Mosquitto, free_port
from wire import Channel


def _get(url: str, token: str = "") -> tuple[int, dict[str, object] | list[object]]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_serve_runs_api_and_ingest(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    conf = tmp_path / "cloud.yaml"
    conf.write_text(
        json.dumps(
            {
                "mqtt": {"url": mosquitto.url, "client_id": "serve-test"},
                "influx": {
                    "url": influx_server.url,
                    "database": influx_db,
                    "username": influx_server.username,
                },
                "sql": {"url": "sqlite:///cloud.db"},
                "snapshots_dir": "snapshots",
            }
        )
    )
    port = free_port()
    env = dict(
        os.environ, CIOT_CLOUD_INFLUX__PASSWORD=influx_server.password, CIOT_NEW_PASSWORD="ops-pass-2026"
    )
    # The operator's path: the first admin and a script token from the command line.
    cli = [sys.executable, "-m", "commune_iot", "users", "--config", str(conf)]
    subprocess.run([*cli, "add", "ops", "--role", "admin"], env=env, check=True, capture_output=True)
    token = subprocess.run(
        [*cli, "token", "ops", "--name", "test"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    proc = subprocess.Popen(
        [sys.executable, "-m", "commune_iot", "cloud", "serve", "--config", str(conf), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        status: int = 0
        while time.monotonic() < deadline and status != 200:
            with contextlib.suppress(OSError):
                status, _ = _get(f"{base}/readyz")
            time.sleep(0.1)
        assert status == 200, "service never became ready"
        publish(mosquitto, [(topic("tu-tra", "tt-ap-02", Channel.HEALTH), encoded(health("tt-ap-02", 1)))])
        while time.monotonic() < deadline and count(influx_server, influx_db, "health") < 1:
            time.sleep(0.1)
        assert count(influx_server, influx_db, "health") == 1
        status, _ = _get(f"{base}/api/v1/devices")
        assert status == 401  # no token, no data
        _, devices = _get(f"{base}/api/v1/devices?kind=ap&commune=tu-tra", token)
        assert isinstance(devices, list) and len(devices) == 12
        assert (tmp_path / "cloud.db").exists()  # relative to the config file
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status shows it
    assert proc.returncode in (0, -15), out
    assert "cloud ingest starting" in out
    assert "cloud ingest stopped" in out, out
