"""Issue 16, the fleet page and the device page in Debian's chromium, against real agents.

The fleet page lists the pilot's 59 devices with counts; a board frozen under it (SIGSTOP: a
hung board, no Will for a while) turns its device "unknown" on the open page without a
reload, the others stay as they were, and it turns "up" again when the board resumes.
"""

from __future__ import annotations

import re

import pytest
from browser import chromium
from console_lab import WIDTHS, ConsoleLab, fits, shot
from support import wait_until

BOARDS = ["dr-cam-02", "dr-ap-03", "tt-ap-02"]


@pytest.fixture(scope="module")
def boards(console_lab: ConsoleLab) -> ConsoleLab:
    for node in BOARDS:
        console_lab.start_sim(node)
    for node in BOARDS:
        console_lab.wait_state(node, "up")
    return console_lab


def test_the_fleet_page_follows_a_frozen_board_without_a_reload(boards: ConsoleLab) -> None:
    lab = boards
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS["phone"], "height": 844}, locale="vi-VN")
        lab.login(page, "kythuat")
        # The page follows the fleet live: read its counts once it shows the three boards up
        # (once, under CI load, all three showed down for a moment after the API said up;
        # cause not found: the message below says what the cloud judged if it happens again).
        for node in BOARDS:
            try:
                page.wait_for_selector(f"tr[data-device='{node}'][data-state='up']", timeout=30_000)
            except Exception as exc:
                raise AssertionError(f"{node} not shown up: {[lab.device(n) for n in BOARDS]}") from exc
        rows = page.locator("tr.device-row")
        assert rows.count() == 59
        counts = {
            a.get_attribute("data-state"): int(a.locator("b").inner_text())
            for a in page.locator("#fleet-counts a.count").all()
        }
        shown = [r.get_attribute("data-state") for r in rows.all()]
        assert counts == {s: shown.count(s) for s in counts} and sum(counts.values()) == 59, counts
        assert counts["up"] >= len(BOARDS) and counts["never_seen"] > 0  # the other tests' boards vary
        up_before = counts["up"]
        for node in BOARDS:
            assert page.get_attribute(f"tr[data-device='{node}']", "data-state") == "up"
        assert fits(page)
        page.evaluate("window.sameDocument = 'yes'")  # gone if the page reloaded

        lab.freeze("dr-cam-02")
        page.wait_for_selector("tr[data-device='dr-cam-02'][data-state='unknown']", timeout=30_000)
        assert page.evaluate("window.sameDocument") == "yes"
        row = page.locator("tr[data-device='dr-cam-02']")
        assert "bo mạch mất kết nối" in row.inner_text().lower() or "Không rõ" in row.inner_text()
        assert page.get_attribute("tr[data-device='dr-ap-03']", "data-state") == "up"
        assert page.get_attribute("tr[data-device='tt-ap-02']", "data-state") == "up"
        assert int(page.inner_text("#fleet-counts a[data-state='up'] b")) == up_before - 1
        shot(page, "fleet-phone", full=False)

        lab.thaw("dr-cam-02")
        page.wait_for_selector("tr[data-device='dr-cam-02'][data-state='up']", timeout=30_000)
        assert page.evaluate("window.sameDocument") == "yes"
        assert int(page.inner_text("#fleet-counts a[data-state='up'] b")) == up_before

        # Filters: the commune of Tu Tra, access points only.
        page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})
        page.goto(lab.url + "/fleet?commune=tu-tra&kind=ap")
        rows = page.locator("tr.device-row")
        assert rows.count() == sum(
            1 for d in lab.get("/api/v1/devices") if d["commune"] == "tu-tra" and d["kind"] == "ap"
        )
        assert all(re.match(r"^tt-ap-", r.get_attribute("data-device") or "") for r in rows.all())
        page.goto(lab.url + "/fleet")
        shot(page, "fleet")


def test_the_device_page_shows_its_history_figures_and_board(boards: ConsoleLab) -> None:
    lab = boards
    wait_until("dr-ap-03 health in InfluxDB", lambda: "Đo lúc" in _device_html(lab, "dr-ap-03"), 30)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 900}, locale="vi-VN")
        lab.login(page, "kythuat", "/devices/dr-cam-02")
        assert page.get_attribute("#device-state", "data-state") == "up"
        # dr-cam-02 was frozen by the test before: its outage is in the history, with its length.
        outages = page.locator("#outages tbody tr")
        if outages.count():
            assert page.locator("svg[data-chart='state-history'] rect[data-kind='board']").count() >= 1
        assert page.locator("svg[data-chart='state-history']").count() == 1
        assert "CPU" in page.inner_text("#health")
        grafana = page.locator("a.grafana-link").first.get_attribute("href") or ""
        assert (
            grafana.startswith("http://grafana.invalid:3000/d/ciot-fleet/")
            and "var-device=dr-cam-02" in grafana
        )
        shot(page, "device", full=True)
        page.goto(lab.url + "/devices/dr-cam-02?range=7d")
        assert page.locator("svg[data-chart='state-history'] text.axis").count() >= 7
        page.set_viewport_size({"width": WIDTHS["phone"], "height": 844})
        page.goto(lab.url + "/devices/dr-ap-03")
        assert fits(page)
        assert "Người dùng đang kết nối" in page.inner_text("#wifi")


def _device_html(lab: ConsoleLab, device: str) -> str:
    _status, body = lab.api().get(f"/devices/{device}")
    return body.decode() if isinstance(body, bytes) else str(body)
