"""Camera agent -> Mosquitto -> the real cloud service -> InfluxDB and the snapshot store.

An object crosses a synthetic scene read by the real edge agent's camera collector: exactly one
event reaches the cloud, its stored snapshot's SHA-256 is the one in the event, and the
``camera`` health points (with ``nominal_fps``) land in InfluxDB as Grafana will query them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from camera_helpers import write_scene
from edge_helpers import AgentProcess, agent_config
from support import influx_query

from cloud.storage.snapshots import SnapshotStore
from commune_iot.fleet import CloudProcess, cloud_config
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

DB = "ciot"


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _rows(influx: InfluxDB, q: str) -> list[dict[str, object]]:
    try:
        series = influx_query(influx, DB, q)
    except AssertionError as exc:
        if "database not found" in str(exc):
            return []
        raise
    out = []
    for s in series:
        out += [dict(zip(s["columns"], row, strict=True)) for row in s["values"]]
    return out


def test_event_snapshot_and_health_reach_the_cloud(
    tmp_path: Path, mosquitto: Mosquitto, fresh_influx: InfluxDB
) -> None:
    pw = tmp_path / "influx.password"
    pw.write_text(fresh_influx.password)
    cfg = cloud_config(
        mqtt_url=mosquitto.url,
        influx_url=fresh_influx.url,
        influx_db=DB,
        influx_user=fresh_influx.username,
        influx_password_file=pw,
        state_dir=tmp_path / "cloud",
        http_port=free_port(),
    )
    cloud = CloudProcess.write(tmp_path, cfg).start()
    video = write_scene(tmp_path / "cross.avi", 10, crossing=(3.0, 6.0))
    cam = {
        "type": "camera",
        "device": "dr-cam-01",
        "url": str(video),
        "interval_s": 1.0,
        "expected_fps": 10,
        "events": {"min_duration_s": 0.5, "quiet_s": 1.5},
    }
    agent = AgentProcess(
        agent_config(tmp_path, mosquitto.url, collectors=[cam], health_interval_s=2, hold_until_cloud=True),
        tmp_path / "agent.log",
    )
    try:
        agent.wait_log("end of file", timeout=60)

        def ended() -> bool:
            rows = _rows(fresh_influx, 'SELECT * FROM "motion"')
            return any(r["phase"] == "end" for r in rows)

        _wait(ended, 30, "the event's end in InfluxDB")
        motion = _rows(fresh_influx, 'SELECT * FROM "motion"')
        assert len(motion) == 1, motion  # one event (start and end share its point)
        sha = str(motion[0]["snapshot_sha256"])
        stored = SnapshotStore(tmp_path / "cloud" / "snapshots").path_for(sha)
        _wait(stored.exists, 10, "the snapshot file")
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
        camera = _rows(fresh_influx, 'SELECT * FROM "camera" WHERE "device" = \'dr-cam-01\'')
        up = [r for r in camera if r["up"] in (True, 1, 1.0, "true")]
        assert up, camera
        assert all(float(r["nominal_fps"]) == 10.0 for r in up)  # type: ignore[arg-type]
        assert any(r["width"] == 320 and r["height"] == 240 for r in up)
    finally:
        agent.terminate()
        agent.close()
        cloud.stop()
