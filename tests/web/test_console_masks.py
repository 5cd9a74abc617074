"""Issue 16 must-show: a technician draws a mask polygon on a camera's picture in Debian's chromium
(at 1366 px and 390 px), drags a corner, saves it, and the board, a real camera agent watching
a real clip (CDnet highway: cars all the time) over RTSP, runs it and reports the new
configuration version; the mask is the normalized polygon the detector reads.

The picture is the camera's own: a snapshot command's answer, or the snapshot of one of its
motion events; the boxes of its recent events are drawn over it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser import chromium
from camera_helpers import VIDEO_DIR, RtspServer, need_clips
from console_lab import WIDTHS, ConsoleLab, fits, shot
from support import wait_until

CAMERA = "dr-cam-04"
#: (corners clicked, the polygon once the third corner is dragged) per width.
SHAPES = {
    "desktop": (
        [[0.05, 0.1], [0.4, 0.1], [0.4, 0.45], [0.05, 0.45]],
        [[0.05, 0.1], [0.4, 0.1], [0.5, 0.7], [0.05, 0.45]],
    ),
    "phone": (
        [[0.6, 0.05], [0.9, 0.05], [0.9, 0.4], [0.6, 0.4]],
        [[0.6, 0.05], [0.9, 0.05], [0.95, 0.6], [0.6, 0.4]],
    ),
}
pytestmark = pytest.mark.skipif(not RtspServer.available(), reason="gst-rtsp-server not installed")


@pytest.fixture(scope="module")
def camera(console_lab: ConsoleLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleLab]:
    need_clips()
    clip = VIDEO_DIR / "cdnet_highway" / "video.mp4"
    server = RtspServer({"highway": str(clip)}, tmp_path_factory.mktemp("rtsp") / "rtsp.log").start()
    try:
        console_lab.start_camera(CAMERA, server.url("highway"))
        wait_until(
            f"{CAMERA}'s first configuration report",
            lambda: console_lab.get(f"/api/v1/fleet/nodes/{CAMERA}/config")["reported"],
            60,
        )
        yield console_lab
    finally:
        console_lab.agents[CAMERA].kill()
        server.kill()


def _click(page: Any, fx: float, fy: float) -> None:
    page.locator("#stage").scroll_into_view_if_needed()  # a phone's screen holds the picture, not the page
    box = page.locator("#stage-svg").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def _drag(page: Any, index: int, fx: float, fy: float) -> None:
    page.locator("#stage").scroll_into_view_if_needed()
    handle = page.locator(f".stage .handle[data-index='{index}']").bounding_box()
    box = page.locator("#stage-svg").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=5)
    page.mouse.up()


def _near(got: list[list[float]], want: list[list[float]], tol: float = 0.02) -> bool:
    return len(got) == len(want) and all(
        abs(a - x) <= tol and abs(b - y) <= tol for (a, b), (x, y) in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_mask_drawn_on_the_picture_runs_on_the_camera(camera: ConsoleLab, width: str) -> None:
    lab = camera
    before = lab.get(f"/api/v1/fleet/nodes/{CAMERA}/config")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS[width], "height": 900}, locale="vi-VN")
        lab.login(page, "kythuat", f"/devices/{CAMERA}/masks")
        if width == "desktop":  # ask the camera for a picture now; it appears once the board answers
            page.click("#snapshot-button")
            page.wait_for_url("**/masks?asked=snapshot")

        def picture() -> bool:
            page.goto(f"{lab.url}/devices/{CAMERA}/masks")
            return page.locator("#stage-img").count() == 1

        wait_until("the camera's picture on the editor", picture, 40, every=1.0)
        assert page.locator("#stage-img").evaluate("img => img.complete && img.naturalWidth > 0")
        wait_until(
            "motion boxes of its recent events",
            lambda: picture() and page.locator("#motion-boxes rect").count(),
            60,
            every=1.0,
        )

        # Desktop: a mask over the trees on the left; phone: a zone over the far lane.
        corners, dragged = SHAPES[width]
        if width == "phone":
            page.check("input[name=draw-kind][value=zone]")
            page.fill("#zone-name", "lan_duong")
        page.click("#new-shape")
        for x, y in corners:
            _click(page, x, y)
        page.click("#close-shape")
        inside = [sum(c) / 4 for c in zip(*corners, strict=True)]
        _click(page, *inside)  # select it again: its corners become handles
        _drag(page, 2, *dragged[2])  # drag the third corner
        drawn = page.evaluate("JSON.parse(document.getElementById('shapes-json').value)")
        if width == "desktop":
            assert _near(drawn["masks"][-1], dragged), drawn
        else:
            assert drawn["zones"][-1]["name"] == "lan_duong" and _near(drawn["zones"][-1]["polygon"], dragged)
        assert fits(page)
        shot(page, "masks" if width == "desktop" else "masks-phone")
        page.click("#save-masks")
        page.wait_for_url("**/masks?saved=*")
        version = int(page.url.split("saved=")[1])
        assert version > (before["desired_version"] or 0)
        # The page follows the board's answer without a reload.
        page.wait_for_selector("#sync-state[data-sync='in_sync']", timeout=60_000)
        assert page.inner_text("#running-version") == str(version)

    twin = lab.get(f"/api/v1/fleet/nodes/{CAMERA}/config")
    assert twin["running_version"] == version and twin["report_state"] == "applied" and twin["good"]
    spec = twin["reported"]["collectors"][0]
    if width == "desktop":
        assert _near(spec["masks"][-1], dragged)
    else:
        assert spec["zones"][-1]["name"] == "lan_duong" and _near(spec["zones"][-1]["polygon"], dragged)
    trail = lab.get("/api/v1/audit?actor=kythuat&action=fleet_config_set&limit=50", user="admin")
    assert any(e["target"] == f"node:{CAMERA}" and e["detail"]["version"] == version for e in trail)


def test_the_board_page_changes_a_setting_and_runs_a_command_following_both(camera: ConsoleLab) -> None:
    """Page 6 on the same camera board: a field of the generated form changed, previewed as a diff,
    applied; a command sent; the page follows the board's answers to both without a reload."""
    lab = camera
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 900}, locale="vi-VN")
        lab.login(page, "kythuat", f"/boards/{CAMERA}")
        page.fill("[name='collectors.0.detect_fps']", "3")
        page.click("#config-preview")
        page.wait_for_selector("#config-valid")
        assert "collectors.0.detect_fps" in page.inner_text("#change-preview")
        page.click("#config-apply")
        page.wait_for_url("**/boards/*?saved=*")
        version = int(page.url.split("saved=")[1].split("#")[0])
        page.evaluate("window.sameDocument = 'yes'")
        page.wait_for_selector("#sync-state[data-sync='in_sync']", timeout=60_000)
        assert page.inner_text("#running-version") == str(version)
        page.click("button[data-command='diag']")
        page.wait_for_url("**/boards/*?cmd=*")
        command = page.url.split("cmd=")[1].split("#")[0]
        page.evaluate("window.sameDocument = 'yes'")
        page.wait_for_selector(f"tr[data-command-id='{command}'][data-state='done']", timeout=60_000)
        assert page.evaluate("window.sameDocument") == "yes"  # followed, not reloaded
        shot(page, "board", full=True)
    twin = lab.get(f"/api/v1/fleet/nodes/{CAMERA}/config")
    assert twin["running_version"] == version and twin["reported"]["collectors"][0]["detect_fps"] == 3.0
    row = lab.get(f"/api/v1/fleet/commands/{command}")
    assert (
        row["state"] == "done"
        and row["issued_by"] == "kythuat"
        and row["result"]["config_version"] == version
    )
