"""Issue 16 must-shows in Debian's chromium, at 1366 px and 390 px:

* a board stops; its alert's notification links straight to the alert's page, where a
  technician acknowledges it with a comment, and the API then says acknowledged, by whom,
  with that comment (and the audit trail has it);
* a technician plans a weekly maintenance window for a site, sees the devices it covers
  before saving, and finds it planned in Vietnam time, covering them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from browser import chromium
from console_lab import WIDTHS, ConsoleLab, fits, shot
from support import wait_until

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
#: The board each width's walk stops (its own alert).
STOPPED = {"desktop": "lx-ap-05", "phone": "lx-ap-06"}


@pytest.fixture(scope="module")
def stopped(console_lab: ConsoleLab) -> dict[str, dict[str, Any]]:
    """Each width's board started, then stopped: width -> the alert that opened about it."""
    lab = console_lab
    agents = {width: lab.start_sim(node) for width, node in STOPPED.items()}
    for node in STOPPED.values():
        lab.wait_state(node, "up")
    for agent in agents.values():
        agent.terminate()  # an orderly stop: the board says it is going (shutdown), an alert opens
    return {
        width: wait_until(
            f"an open alert about {node}",
            lambda n=node: lab.get(f"/api/v1/alerts?subject={n}&state=open"),
            30,
        )[0]
        for width, node in STOPPED.items()
    }


@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_technician_acknowledges_an_alert_from_its_notification(
    console_lab: ConsoleLab, stopped: dict[str, dict[str, Any]], width: str
) -> None:
    lab = console_lab
    alert = stopped[width]
    (notice,) = wait_until("its notification", lambda: lab.notices(alert["id"]), 30)
    assert notice["url"] == f"{lab.url}/alerts/{alert['id']}"
    assert notice["url"] in notice["text"]  # the link is in the text every channel sends
    comment = f"Anh Tùng lên Lạc Xuân kiểm tra nguồn điện ({width})"

    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS[width], "height": 900}, locale="vi-VN")
        page.goto(notice["url"])  # the link in the message, before logging in
        assert "/login" in page.url
        page.fill("input[name=username]", "kythuat")
        page.fill("input[name=password]", "kythuat-mat-khau-2026!")
        page.click("#login-form button[type=submit]")
        page.wait_for_url(f"**/alerts/{alert['id']}")
        assert STOPPED[width] in page.inner_text("h1")
        assert page.get_attribute("#alert-state [data-state]", "data-state") == "open"
        assert page.locator("#alert-devices tr.device-row").count() == 1
        if width == "desktop":
            shot(page, "alert")
        page.fill("#ack-form textarea[name=comment]", comment)
        page.click("#ack-button")
        page.wait_for_selector("#alert-state [data-state='acknowledged']")
        assert page.inner_text("#ack-comment") == comment
        assert fits(page)
        page.select_option("#silence-form select[name=hours]", "4")
        page.click("#silence-button")
        page.wait_for_selector("#lifecycle >> text=tạm tắt nhắc đến")
        page.goto(lab.url + "/alerts")
        row = page.locator(f"tr[data-alert='{alert['id']}']")
        assert row.get_attribute("data-state") == "acknowledged"
        assert fits(page)
        if width == "desktop":
            shot(page, "alerts")

    got = lab.get(f"/api/v1/alerts/{alert['id']}")
    assert (got["state"], got["acked_by"], got["ack_comment"]) == ("acknowledged", "kythuat", comment)
    assert got["silenced_until"] is not None
    trail = lab.get("/api/v1/audit?actor=kythuat&limit=200", user="admin")
    assert any(e["action"] == "alert_ack" and e["target"] == f"alert:{alert['id']}" for e in trail)
    assert any(e["action"] == "alert_silence" and e["target"] == f"alert:{alert['id']}" for e in trail)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_technician_plans_a_weekly_window_and_sees_what_it_covers(
    console_lab: ConsoleLab, width: str
) -> None:
    lab = console_lab
    # A commune on the desktop, a village's site on the phone; from next month, so that it covers
    # nothing while the other tests run, whatever the day and hour.
    kind, target = {"desktop": ("commune", "lac-xuan"), "phone": ("site", "dr-thon-07")}[width]
    expected = sorted(d["id"] for d in lab.get("/api/v1/devices") if d[kind] == target)
    assert expected
    first = (datetime.now(LOCAL) + timedelta(days=30)).date()
    comment = f"Thay ắc quy hằng tuần ({width})"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTHS[width], "height": 900}, locale="vi-VN")
        lab.login(page, "kythuat", "/maintenance")
        page.select_option("#target-kind", kind)
        page.fill("#target", target)
        page.check("input[name=mode][value=weekly]")
        page.fill("input[name=first_day]", first.isoformat())
        for day in ("1", "3"):  # Tuesday and Thursday
            page.check(f"input[name=weekdays][value='{day}']")
        page.fill("input[name=at]", "22:00")
        page.fill("input[name=hours]", "2")
        page.fill("input[name=comment]", comment)
        page.click("#preview-button")  # the page itself, whether or not the live preview ran
        page.wait_for_selector("#covered-devices")
        shown = sorted(
            x.get_attribute("data-device") or "" for x in page.locator("#covered-devices li").all()
        )
        assert shown == expected
        assert page.locator("#next-occurrences li").count() >= 2
        assert fits(page)
        if width == "desktop":
            shot(page, "maintenance", full=True)
        page.click("#save-button")
        page.wait_for_url("**/maintenance?saved=*")
        wid = int(page.url.split("saved=")[1].split("#")[0])
        row = page.locator(f"tr#w{wid}")
        assert f"{len(expected)} thiết bị" in row.inner_text()
        assert "T3, T5" in row.inner_text() and "22:00" in row.inner_text()
        assert fits(page)

    (w,) = [x for x in lab.get("/api/v1/maintenance") if x["id"] == wid]
    assert (w["target_kind"], w["target"], w["weekdays"], w["local_start"], w["duration_s"]) == (
        kind,
        target,
        [1, 3],
        "22:00",
        7200.0,
    )
    assert w["tz"] == "Asia/Ho_Chi_Minh" and w["comment"] == comment
    starts = datetime.fromisoformat(w["starts_at"]).astimezone(LOCAL)
    assert (starts.date(), starts.hour, starts.minute) == (first, 0, 0)  # that day, local midnight
    trail = lab.get("/api/v1/audit?actor=kythuat&action=maintenance_add&limit=50", user="admin")
    assert any(e["target"] == f"maintenance:{wid}" for e in trail)
