"""A covered camera's technician alert carries the picture that shows it (issue 19 part 3).

The PETS 2009 clip, covered after 3 s (``bench/tampering.py``), is watched by the real edge
agent's camera collector; it publishes the frame it saw when the covering was confirmed on the
snapshot channel, names it in its stream health, and the real cloud service opens a
technician warning with that picture. What a technician notices: the alert in the API names
the picture, the alert's page shows it, and the picture is the flat grey of a covered lens
(the very JPEG the board sent). A police officer of the same commune cannot fetch it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from camera_helpers import need_clips
from edge_helpers import AgentProcess, agent_config
from support import lab_cloud_config

from cloud.auth.roles import Role
from cloud.auth.users import UserStore
from cloud.storage.snapshots import SnapshotStore
from cloud.storage.sql import SqlStore
from commune_iot.bench.tampering import failing
from commune_iot.fleet import CloudProcess
from commune_iot.localsvc import InfluxDB, Mosquitto

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests" / "alerting") not in sys.path:  # the webhook stand-in
    sys.path.append(str(REPO / "tests" / "alerting"))

from local_http import local_http  # noqa: E402

FPS = 14.0
CLEAN_S, COVERED_S = 3.0, 27.0  # covered until the test ends (it stops the agent first)


def _clip(tmp: Path, kind: str = "covered", clean_s: float = CLEAN_S, failed_s: float = COVERED_S) -> Path:
    """The PETS clip's first 30 s at 14 fps: ``clean_s`` as filmed, then the failure
    (``bench/tampering.py``)."""
    src = cv2.VideoCapture(str(need_clips() / "pets2009_illumination" / "video.mp4"))

    def frames() -> Any:
        last = None
        for _ in range(int((clean_s + failed_s) * FPS)):
            ok, frame = src.read()
            last = frame if ok else last  # failed by then: a held last frame is still a scene
            assert last is not None
            yield last

    out = tmp / f"{kind}.avi"
    writer: cv2.VideoWriter | None = None
    for frame in failing(frames(), FPS, kind, clean_s, failed_s):
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (w, h))
        writer.write(frame)
    assert writer is not None
    writer.release()
    src.release()
    return out


def _get(url: str, token: str) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status), r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(), dict(exc.headers)


def test_a_covered_cameras_alert_shows_the_picture_of_the_covered_lens(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB
) -> None:
    cfg = lab_cloud_config(tmp_path, mosquitto.url, influx_server, "tamper")
    port = cfg["http"]["port"]
    stack = contextlib.ExitStack()
    webhook = stack.enter_context(local_http(lambda _request, _index: (200, {"ok": True})))
    cfg["alerting"] = {
        "settle_s": 1.0,  # the cloud starts judging at once (agents here connect within seconds)
        "grace_s": 1.0,
        "notify": {"webhooks": [{"name": "technicians", "url": webhook.url}]},
    }
    cfg["web"] = {"public_url": f"http://127.0.0.1:{port}"}
    cloud = CloudProcess.write(tmp_path, cfg)
    sql = SqlStore(cfg["sql"]["url"])
    users = UserStore(sql.engine)
    users.add("kt-daron", "ky-thuat-da-ron-1", frozenset({Role.TECHNICIAN}), communes=frozenset({"da-ron"}))
    users.add("ca-daron", "cong-an-da-ron-1", frozenset({Role.POLICE}), communes=frozenset({"da-ron"}))
    tech, police = users.create_token("kt-daron", "test"), users.create_token("ca-daron", "test")
    sql.dispose()
    video = _clip(tmp_path)
    cam = {
        "type": "camera",
        "device": "dr-cam-01",
        "url": str(video),
        "interval_s": 1.0,
        "tamper": {"hold_s": 1.0},
    }
    cloud.start()
    agent = AgentProcess(
        agent_config(tmp_path, mosquitto.url, collectors=[cam], health_interval_s=2, hold_until_cloud=True),
        tmp_path / "agent.log",
    )
    try:
        # the board says it, with its picture
        agent.wait_log("tampering (covered); picture", timeout=30)
        sent = re.search(r"tampering \(covered\); picture ([0-9a-f]{12})", agent.log())
        assert sent is not None

        def alert() -> dict[str, Any] | None:
            rows = json.loads(_get(f"{cloud.url}/api/v1/alerts?subject=dr-cam-01", tech)[1])
            return next((a for a in rows if a["problem"] == "tampering"), None)

        deadline = time.monotonic() + 30
        while (a := alert()) is None:
            assert time.monotonic() < deadline, f"no tampering alert: {agent.log()[-2000:]}"
            time.sleep(0.3)
        assert (a["severity"], a["detail"]) == ("warning", "covered")
        sha = a["snapshot_sha256"]
        assert sha and sha.startswith(sent.group(1)), (a, sent.group(0))
        assert a["snapshot_url"] == f"/api/v1/alerts/{a['id']}/snapshot"

        stored = SnapshotStore(tmp_path / "cloud" / "snapshots").path_for(sha)
        deadline = time.monotonic() + 10
        while not stored.exists():
            assert time.monotonic() < deadline, "the picture never reached the snapshot store"
            time.sleep(0.2)

        # the alert's page (Vietnamese first) shows it
        status, html, _ = _get(f"{cloud.url}/alerts/{a['id']}", tech)
        assert status == 200
        page = html.decode()
        assert "Ảnh lúc phát hiện" in page and "bị che" in page
        img = re.search(r'<img src="([^"]+)"[^>]*id="alert-picture-img"', page)
        assert img is not None and img.group(1) == a["snapshot_url"], page[-3000:]

        # ... and it is the covered lens, the JPEG the board sent
        status, jpeg, headers = _get(cloud.url + img.group(1), tech)
        assert status == 200 and headers.get("content-type") == "image/jpeg"
        assert hashlib.sha256(jpeg).hexdigest() == sha
        picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert picture is not None and float(picture.std()) < 8.0, float(picture.std())

        # the technicians' notification, in Vietnamese, links the alert and its picture
        texts = [r.json()["text"] for r in webhook.wait_for(1, timeout=15)]
        opened = next((x for x in texts if "bị che" in x), None)
        assert opened is not None, texts
        assert f"{cloud.url}/alerts/{a['id']}" in opened
        assert f"Ảnh lúc phát hiện: {cloud.url}{a['snapshot_url']}" in opened

        # the device page's stream card and the fleet row say it too, in Vietnamese
        def device_page() -> str:
            return _get(f"{cloud.url}/devices/dr-cam-01", tech)[1].decode()

        deadline = time.monotonic() + 15
        while 'data-tampering="covered"' not in (html_dev := device_page()):
            assert time.monotonic() < deadline, html_dev[-3000:]
            time.sleep(0.3)
        stream = html_dev[html_dev.index('id="stream"') :]
        assert "Camera bị can thiệp" in stream and "bị che" in stream
        assert 'data-moving="false"' in stream and "Camera đang xoay hoặc thu phóng" in stream
        assert "camera bị can thiệp (bị che)" in html_dev  # its problems, as the evaluator has them
        fleet = _get(f"{cloud.url}/fleet/table?q=dr-cam-01", tech)[1].decode()
        assert "camera bị can thiệp (bị che)" in fleet, fleet[-2000:]

        # police: neither the alert nor its picture
        assert _get(f"{cloud.url}/api/v1/alerts/{a['id']}/snapshot", police)[0] == 403
        assert _get(f"{cloud.url}/api/v1/alerts", police)[0] == 403
        assert _get(f"{cloud.url}/alerts/{a['id']}", police)[0] == 403
    finally:
        agent.terminate()
        agent.close()
        cloud.stop()
        stack.close()


def _sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: how much fine detail a picture has (blur removes it first)."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def test_a_blurred_cameras_alert_shows_a_visibly_blurred_picture(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB
) -> None:
    """The same lab with the lens blurred (a Gaussian blur growing to 31 px at 320 px wide over
    4 s, held): the alert says ``blurred`` and its picture has far less detail than the scene."""
    clean_s = 6.0  # the board learns the scene's sharpness first
    cfg = lab_cloud_config(tmp_path, mosquitto.url, influx_server, "blur")
    stack = contextlib.ExitStack()
    webhook = stack.enter_context(local_http(lambda _request, _index: (200, {"ok": True})))
    cfg["alerting"] = {
        "settle_s": 1.0,
        "grace_s": 1.0,
        "notify": {"webhooks": [{"name": "technicians", "url": webhook.url}]},
    }
    cfg["web"] = {"public_url": f"http://127.0.0.1:{cfg['http']['port']}"}
    cloud = CloudProcess.write(tmp_path, cfg)
    sql = SqlStore(cfg["sql"]["url"])
    users = UserStore(sql.engine)
    users.add("kt-daron", "ky-thuat-da-ron-1", frozenset({Role.TECHNICIAN}), communes=frozenset({"da-ron"}))
    tech = users.create_token("kt-daron", "test")
    sql.dispose()
    video = _clip(tmp_path, "blurred", clean_s, 30.0 - clean_s)
    cam = {
        "type": "camera",
        "device": "dr-cam-01",
        "url": str(video),
        "interval_s": 1.0,
        "tamper": {"hold_s": 1.0},
    }
    cloud.start()
    agent = AgentProcess(
        agent_config(tmp_path, mosquitto.url, collectors=[cam], health_interval_s=2, hold_until_cloud=True),
        tmp_path / "agent.log",
    )
    try:
        agent.wait_log("tampering (blurred); picture", timeout=40)

        def alert() -> dict[str, Any] | None:
            rows = json.loads(_get(f"{cloud.url}/api/v1/alerts?subject=dr-cam-01", tech)[1])
            return next((a for a in rows if a["problem"] == "tampering" and a["snapshot_sha256"]), None)

        deadline = time.monotonic() + 30
        while (a := alert()) is None:
            assert time.monotonic() < deadline, f"no tampering alert with a picture: {agent.log()[-2000:]}"
            time.sleep(0.3)
        assert (a["severity"], a["detail"]) == ("warning", "blurred")
        deadline = time.monotonic() + 15
        while (got := _get(cloud.url + a["snapshot_url"], tech))[0] != 200:
            assert time.monotonic() < deadline, f"the picture never arrived: {got[0]}"
            time.sleep(0.2)
        picture = cv2.imdecode(np.frombuffer(got[1], np.uint8), cv2.IMREAD_GRAYSCALE)
        assert picture is not None
        # the scene as filmed, at the picture's size
        src = cv2.VideoCapture(str(video))
        ok, frame = src.read()
        src.release()
        assert ok
        h, w = picture.shape[:2]
        scene = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (w, h), interpolation=cv2.INTER_AREA)
        blurred, sharp = _sharpness(picture), _sharpness(scene)
        print(f"Laplacian variance: alert picture {blurred:.1f}, the scene {sharp:.1f}")
        assert blurred < 0.2 * sharp, (blurred, sharp)
        texts = [r.json()["text"] for r in webhook.wait_for(1, timeout=15)]
        assert any("bị mờ" in x for x in texts), texts
    finally:
        agent.terminate()
        agent.close()
        cloud.stop()
        stack.close()
