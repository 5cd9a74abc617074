"""What the police see of an event's picture (issue 18 item 7 follow-up): a camera detecting on
its substream sends the full-resolution picture from its HTTP snapshot URL, or, when that fails,
the small detected frame and why. The real agent, a loopback RTSP server (1920x1080 main stream,
640x360 substream of the same scene), an HTTP snapshot endpoint with digest auth, Mosquitto and
the real cloud: a Da Ron officer's API and pages must tell the evidence-grade picture from the
fallback, with its size, and an event from a camera that says nothing still shows as before."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from camera_helpers import MAIN_SIZE, RtspServer, write_substream_clips
from edge_helpers import AgentProcess, agent_config
from snapshot_server import SnapshotServer
from support import lab_cloud_config
from web.browser import chromium
from web.web_helpers import camera_event, publish

from cloud.auth.roles import Role
from cloud.auth.users import UserStore
from cloud.storage.sql import SqlStore
from commune_iot.fleet import CloudProcess
from commune_iot.localsvc import InfluxDB, Mosquitto

PASSWORD = "cong-an-da-ron-1"
EVENTS = {"min_duration_s": 0.5, "quiet_s": 1.5, "snapshot_width": 1920}


def _origin(page: str) -> str | None:
    """The event page's line about its picture (None: the page has none)."""
    m = re.search(r'id="snapshot-origin"[^>]*>([^<]*)<', page)
    return html.unescape(m.group(1)) if m else None


def _row(page: str, pk: int) -> str:
    """The event list's row of event ``pk``, as HTML."""
    m = re.search(rf'<tr class="event-row[^"]*" data-event="{pk}">(.*?)</tr>', page, re.S)
    assert m, f"event {pk} is not in the list"
    return html.unescape(m.group(1))


@pytest.mark.skipif(not RtspServer.available(), reason="gst-rtsp-server not installed")
def test_police_see_whether_the_picture_is_full_resolution_or_the_fallback(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB
) -> None:
    main, sub = write_substream_clips(tmp_path)
    rtsp = RtspServer({"main": str(main), "sub": str(sub)}, tmp_path / "rtsp.log").start()
    snapshots = SnapshotServer("admin", "s3cret")
    (tmp_path / "cam.password").write_text("s3cret\n")
    common: dict[str, Any] = {
        "type": "camera",
        "interval_s": 1.0,
        "url": rtsp.url("main"),
        "detect_url": rtsp.url("sub"),
        "snapshot_source": "http",
        "username": "admin",
        "password_file": str(tmp_path / "cam.password"),
        "events": EVENTS,
    }
    cams = [
        {"device": "sub-http", "snapshot_url": snapshots.url("/ISAPI/Streaming/channels/101/picture")},
        # a camera whose web server hangs: the board sends the detected frame and says why
        {"device": "sub-hang", "snapshot_url": snapshots.url("/hang"), "snapshot_timeout_s": 1.0},
    ]
    cfg = lab_cloud_config(tmp_path, mosquitto.url, influx_server, "snaporigin")
    cloud = CloudProcess.write(tmp_path, cfg)
    sql = SqlStore(cfg["sql"]["url"])
    UserStore(sql.engine).add("ca-daron", PASSWORD, frozenset({Role.POLICE}), communes=frozenset({"da-ron"}))
    sql.dispose()
    (tmp_path / "agent").mkdir()
    conf = agent_config(
        tmp_path / "agent", mosquitto.url, collectors=[{**common, **c} for c in cams], hold_until_cloud=True
    )
    agent: AgentProcess | None = None
    cloud.start()
    try:
        deadline = time.monotonic() + 30
        while cloud.get_status("/readyz") != 200:  # ingest subscribed: what is published is kept
            assert time.monotonic() < deadline, "cloud never became ready"
            time.sleep(0.1)
        # A camera without a substream (an agent that says nothing of its picture), as before.
        plain = camera_event("da-ron", "dr-cam-09", 7, datetime.now(UTC) - timedelta(minutes=5), 10)
        publish(mosquitto.port, plain.messages)
        snapshots.start_clock()
        agent = AgentProcess(conf, tmp_path / "agent.log")

        def stored() -> dict[str, dict[str, Any]] | None:
            """The first event of each camera once it has ended with its snapshot stored."""
            evs = cloud.get_json("/api/v1/events?limit=100&order=asc")["events"]
            first: dict[str, dict[str, Any]] = {}
            for e in evs:
                first.setdefault(e["device"], e)
            done = all(e["end"] is not None and e["has_snapshot"] for e in first.values())
            return first if done and set(first) == {"sub-http", "sub-hang", "dr-cam-09"} else None

        deadline = time.monotonic() + 90
        while (first := stored()) is None:
            assert time.monotonic() < deadline, (
                f"events not stored: {cloud.get_json('/api/v1/events?limit=100')}\n{agent.log()[-3000:]}"
            )
            time.sleep(0.3)

        with httpx.Client(base_url=cloud.url, follow_redirects=False, timeout=10) as web:
            r = web.post("/login", data={"username": "ca-daron", "password": PASSWORD, "next": "/events"})
            assert r.status_code == 303, r.text
            # The officer's API: the full-resolution picture, the fallback and why, and nothing said.
            full, fell, old = (
                web.get(f"/api/v1/events/{first[d]['id']}").json()
                for d in ("sub-http", "sub-hang", "dr-cam-09")
            )
            assert (full["snapshot_source"], full["snapshot_width_px"], full["snapshot_height_px"]) == (
                "http",
                *MAIN_SIZE,
            )
            assert full["snapshot_fallback"] is False and full["snapshot_fallback_reason"] is None
            assert (fell["snapshot_source"], fell["snapshot_width_px"], fell["snapshot_height_px"]) == (
                "detect",
                640,
                360,
            )
            assert fell["snapshot_fallback"] is True and fell["snapshot_wanted"] == "http"
            reason = fell["snapshot_fallback_reason"]
            assert reason, fell  # "no picture within 2.0 s" or "TimeoutError: timed out"
            assert old["snapshot_source"] is None and old["snapshot_width_px"] is None
            assert old["snapshot_fallback"] is False and old["has_snapshot"]

            # The event page, Vietnamese first, then in English.
            page = web.get(f"/events/{full['id']}").text
            assert _origin(page) == "Ảnh: ảnh HTTP của camera 1920×1080"
            page = web.get(f"/events/{fell['id']}").text
            assert (
                _origin(page) == f"Ảnh thay thế: khung phát hiện 640×360 (không lấy được ảnh HTTP: {reason})"
            )
            page = web.get(f"/events/{fell['id']}?lang=en").text
            failed = "the HTTP snapshot could not be fetched"
            assert _origin(page) == f"Fallback picture: detection frame 640×360 ({failed}: {reason})"
            r = web.get(f"/events/{old['id']}?lang=vi")
            assert r.status_code == 200 and _origin(r.text) is None and "snapshot-sha" in r.text

            # The list: the size under each picture, the fallback marked.
            listing = web.get("/events?limit=100").text
            assert "1920×1080" in _row(listing, full["id"]) and "ảnh thay thế" not in _row(
                listing, full["id"]
            )
            assert "ảnh thay thế 640×360" in _row(listing, fell["id"])
            assert "×" not in _row(listing, old["id"])

        # On a phone the fallback line wraps under the picture: nothing scrolls sideways.
        with chromium() as browser:
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(f"{cloud.url}/login?next=/events/{fell['id']}")
            phone.fill("input[name=username]", "ca-daron")
            phone.fill("input[name=password]", PASSWORD)
            phone.click("#login-form button[type=submit]")
            phone.wait_for_url(f"**/events/{fell['id']}")
            assert phone.locator("#snapshot-origin").is_visible()
            width, inner = phone.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
            assert width <= inner, f"the event page is {width} px wide on a {inner} px phone"
            phone.screenshot(path=str(tmp_path / "fallback-event-phone.png"), full_page=True)
    finally:
        if agent is not None:
            agent.terminate()
            agent.close()
        cloud.stop()
        rtsp.kill()
        snapshots.close()
