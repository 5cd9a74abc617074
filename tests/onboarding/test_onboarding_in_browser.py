"""Issue 16's onboarding walk in Debian's chromium, on a desktop (1366 px) and a phone (390 px):
a technician adds a device from the page, downloads its bundle once, an agent started with
that bundle turns the page's "never seen" into "up" without a reload, and decommissioning
asks for the device's id before the broker drops the board."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from onboarding_lab import USERS, Lab, chromium
from support import wait_until

ARTIFACTS = Path(os.environ.get("CIOT_ARTIFACTS", "var/artifacts"))


@pytest.mark.parametrize(
    ("width", "device", "kind", "site", "new_site"),
    [
        (1366, "dr-cam-21", "camera", "", ("dr-diem-21", "Cổng trạm y tế mới")),
        (390, "lx-ap-21", "ap", "lx-thon-02", None),
    ],
)
def test_a_technician_onboards_a_device_in_the_browser_and_decommissions_it(
    lab: Lab, width: int, device: str, kind: str, site: str, new_site: tuple[str, str] | None
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = f"onboarding-{'desktop' if width > 700 else 'phone'}"  # docs/screenshots names
    with chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": 900}, accept_downloads=True)
        page.goto(lab.cloud.url + "/onboarding")
        assert "/login" in page.url
        page.fill("input[name=username]", "kythuat")
        page.fill("input[name=password]", USERS["kythuat"][2])
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/onboarding")
        assert page.locator("html").get_attribute("lang") == "vi"
        assert page.locator("header nav a[data-nav=onboarding]").inner_text() == "Thêm/gỡ thiết bị"

        # The form: the kind's fields only, the chosen commune's sites only.
        page.check(f"#add-form input[name=kind][value={kind}]")
        assert page.locator("fieldset.for-ap").is_visible() == (kind == "ap")
        page.fill("#add-form input[name=id]", device)
        commune = {"dr": "da-ron", "lx": "lac-xuan"}[device[:2]]
        page.select_option("#add-form select[name=commune]", commune)
        if new_site is not None:
            page.click("#add-form details.new-site summary")
            page.fill("#add-form input[name=new_site_id]", new_site[0])
            page.fill("#add-form input[name=new_site_name]", new_site[1])
        else:
            page.select_option("#add-form select[name=site]", site)
        page.fill("#add-form input[name=name]", f"Thiết bị mới {device}")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width + 2  # no sideways scroll
        page.screenshot(path=str(ARTIFACTS / f"{shot}-form.png"))  # the list below is long
        page.click("#add-button")
        page.wait_for_selector("#ob-bundle")
        assert page.inner_text("#device-state") == "Chưa từng thấy"
        assert "Đã thêm thiết bị" in page.inner_text("#ob-done")
        assert not page.locator(".ob-warning").count(), page.inner_text("#ob-done")

        with page.expect_download() as dl:
            page.click("#bundle-link")
        zip_path = ARTIFACTS / f"{device}.zip"
        dl.value.save_as(zip_path)
        page.wait_for_selector("#bundle-done", state="visible")
        assert page.locator("#bundle-link").is_hidden()
        # once: the same link now answers 410 Gone, even for the same user
        link = lab.cloud.url + page.get_attribute("#bundle-link", "href")  # type: ignore[operator]
        req = urllib.request.Request(link, headers={"Authorization": f"Bearer {lab.tokens['kythuat']}"})
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(req, timeout=10)
        assert gone.value.code == 410
        page.screenshot(path=str(ARTIFACTS / f"{shot}-bundle.png"), full_page=True)

        agent = lab.agent_from_zip(zip_path.read_bytes())
        t0 = time.monotonic()
        page.wait_for_selector("#device-state[data-state=up]", timeout=30_000)  # no reload
        took = time.monotonic() - t0
        print(f"\n{width} px: 'never seen' -> 'up' on the page {took:.1f} s after the agent started")
        assert page.inner_text("#device-state") == "Hoạt động"
        assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", page.inner_text("#last-seen"))  # local time
        page.screenshot(path=str(ARTIFACTS / f"{shot}-up.png"))

        # Decommission: refused until the id is typed.
        button = page.locator("#decommission-button")
        assert button.is_disabled()
        page.fill("#decommission-form input[name=confirm]", device[:-1])
        assert button.is_disabled()
        page.fill("#decommission-form input[name=confirm]", device)
        assert button.is_enabled()
        page.screenshot(path=str(ARTIFACTS / f"{shot}-decommission.png"), full_page=True)
        button.click()
        page.wait_for_selector("#ob-revoked")
        assert "Đã gỡ thiết bị" in page.inner_text("#ob-done")
        assert page.inner_text("#device-state") == "Đã gỡ"
        assert "kythuat" in page.inner_text("#decommissioned-by")
        wait_until(
            f"{device} refused",
            lambda: "refused the connection: Not authorized" in agent.log_path.read_text(),
            30,
        )
        page.goto(lab.cloud.url + "/onboarding")
        assert device not in page.inner_text("#devices")
        page.goto(lab.cloud.url + "/onboarding?decommissioned=true")
        assert "Đã gỡ" in page.inner_text(f"tr[data-device='{device}']")


def test_the_decommission_confirmation_is_checked_by_the_server_too(lab: Lab) -> None:
    """Without the page's script (or with a forged form) a wrong id changes nothing."""
    with chromium() as browser:
        ctx = browser.new_context(java_script_enabled=False)
        page = ctx.new_page()
        page.goto(lab.cloud.url + "/login?next=/onboarding/devices/tt-ap-01")
        page.fill("input[name=username]", "kythuat")
        page.fill("input[name=password]", USERS["kythuat"][2])
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/onboarding/devices/tt-ap-01")
        page.fill("#decommission-form input[name=confirm]", "tt-ap-02")
        page.click("#decommission-button")
        page.wait_for_selector("#ob-error")
        assert "không khớp" in page.inner_text("#ob-error")
    assert lab.state("admin", "tt-ap-01") == "up"
