"""Must-show 1 and 3 of the event log: a Da Ron police officer's whole session in a real
browser (Debian chromium), then the audit trail of that session, in order."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from datetime import datetime

from browser import chromium
from web_portal import PASSWORDS, Portal

from cloud.events.evidence import verify_export
from cloud.events.store import LOCAL_TZ

#: An image's load, awaited (resolves false if it fails to load).
LOADED = """img => img.complete ? img.naturalWidth > 0 : new Promise(done => {
  img.addEventListener("load", () => done(img.naturalWidth > 0));
  img.addEventListener("error", () => done(false));
})"""


def test_police_officer_filters_reviews_notes_and_exports_evidence(portal: Portal) -> None:
    admin = portal.api("admin")
    _, before = admin.get("/api/v1/audit?limit=1")
    first_id = before[0]["id"] if before else 0
    dr01 = [e for e in portal.sent if e.device == "dr-cam-01"]
    target = dr01[2]  # 13:00 local, 45 s
    target_id = portal.ids[target.event_id]

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.goto(portal.url + "/events")
        assert "/login" in page.url  # nobody sees anything without logging in
        assert page.locator("html").get_attribute("lang") == "vi"
        page.fill("input[name=username]", "ca-daron")
        page.fill("input[name=password]", PASSWORDS["ca-daron"])
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/events")
        assert page.inner_text("#result-count") == "6 sự kiện"  # Da Ron's six, none of Tu Tra's
        assert "tt-cam" not in page.inner_text("table.events")
        assert page.locator("#current-user").inner_text() == "Công an xã Đạ Ròn"

        # Filter: camera 1, starting from 08:00 local -> the 09:15 and 13:00 events.
        page.select_option("select[name=device]", "dr-cam-01")
        page.fill("input[name=time_from]", "08:00")
        page.click("#filters button[type=submit]")
        page.wait_for_url("**time_from=08%3A00**")
        assert page.inner_text("#result-count") == "2 sự kiện"
        rows = page.locator("tr.event-row")
        assert rows.count() == 2
        assert page.locator("td.thumb img").first.evaluate(LOADED)  # lazy: may still be on its way
        page.screenshot(path=str(portal.artifacts / "events-list.png"), full_page=True)

        # Open the 13:00 event: the snapshot and its boxes are shown.
        page.click(f"tr[data-event='{target_id}'] a.event-link")
        page.wait_for_url(f"**/events/{target_id}")
        img = page.locator("#snapshot-img")
        assert img.evaluate("img => img.complete && img.naturalWidth === 320")
        assert page.inner_text("#snapshot-sha") == target.sha256
        assert page.locator("svg.boxes rect").count() == 1
        page.screenshot(path=str(portal.artifacts / "event-detail.png"), full_page=True)

        # Review it and add a note.
        page.click("#review-button")
        page.wait_for_load_state()
        assert "Xem xét bởi Công an xã Đạ Ròn" in page.inner_text("#review-state")  # the display name
        page.fill("#note-form textarea", "Người đi bộ qua ngã ba, không có vi phạm.")
        page.click("#note-form button[type=submit]")
        page.wait_for_load_state()
        assert "Người đi bộ qua ngã ba" in page.inner_text("#notes")

        # The camera's day on a timeline: its three events of 20/11.
        page.click("text=Dòng thời gian trong ngày")
        page.wait_for_url("**/timeline?day=2026-11-20")
        assert page.locator("#timeline a.bar").count() == 3
        assert page.locator("#timeline a.bar.reviewed").count() == 1

        # Export two events of camera 1 as evidence and download the ZIP.
        page.goto(portal.url + "/events?device=dr-cam-01")
        chosen = [portal.ids[dr01[0].event_id], target_id]
        for pk in chosen:
            page.check(f"tr[data-event='{pk}'] input[name=event]")
        page.fill("#export-form input[name=reason]", "Hồ sơ vụ việc 12/2026")
        page.click("#export-button")
        page.wait_for_url("**/exports/*")
        shown_sha = page.inner_text("#export-sha")
        assert page.inner_text("#export-by") == "Công an xã Đạ Ròn (ca-daron)"  # a name, not a login
        with page.expect_download() as dl:
            page.click("#download-link")
        zip_path = portal.artifacts / "evidence-export.zip"
        dl.value.save_as(zip_path)
        # On a phone: the list fits the screen without sideways scrolling.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(portal.url + "/events")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 392
        page.screenshot(path=str(portal.artifacts / "events-list-phone.png"), full_page=True)
        page.click("header form button[type=submit]")  # log out
        page.wait_for_url("**/login")

    # The downloaded file is the one recorded, and it verifies on its own.
    assert hashlib.sha256(zip_path.read_bytes()).hexdigest() == shown_sha
    v = verify_export(zip_path)
    assert v.ok and v.events == 2, v.problems
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "commune_iot",
            "evidence",
            "verify",
            str(zip_path),
            "--expect-sha256",
            shown_sha,
        ],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0 and "OK" in cli.stdout, cli.stdout + cli.stderr
    with zipfile.ZipFile(zip_path) as z:
        jpgs = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        assert {hashlib.sha256(z.read(n)).hexdigest() for n in jpgs} == {dr01[0].sha256, target.sha256}
        assert "Người đi bộ qua ngã ba" in z.read("manifest.csv").decode("utf-8-sig")
        # summary.html: the exporter by name, the note's time local like every other time there
        summary = z.read("summary.html").decode()
        note = next(r["notes"] for r in json.loads(z.read("manifest.json"))["events"] if r["notes"])
        noted_utc = note.split(" ", 1)[0]  # "2026-12-02T09:41:07.5Z ca-daron: ..."
        noted = datetime.fromisoformat(noted_utc.replace("Z", "+00:00")).astimezone(LOCAL_TZ)
        assert noted.strftime("%d/%m/%Y %H:%M") + " · Công an xã Đạ Ròn" in summary
        assert noted_utc not in summary and "Công an xã Đạ Ròn (ca-daron)" in summary

    # Must-show 3: the audit trail holds every action of that session, in order.
    status, entries = admin.get(f"/api/v1/audit?actor=ca-daron&after_id={first_id}&limit=1000")
    assert status == 200
    actions = [(e["action"], e["target"]) for e in entries]
    expected = [
        ("login", "user:ca-daron"),
        ("event_list", ""),  # the first list
        ("event_list", ""),  # the filtered list
        ("event_view", f"event:{target_id}"),
        ("snapshot_view", f"event:{target_id}"),
        ("review", f"event:{target_id}"),
        ("note", f"event:{target_id}"),
        ("timeline_view", "camera:dr-cam-01"),
        ("export_create", ""),
        ("export_download", ""),
        ("logout", "user:ca-daron"),
    ]
    it = iter(actions)
    for action, tgt in expected:  # a subsequence, in order (page reloads add views in between)
        assert any(a == action and (not tgt or t == tgt) for a, t in it), (
            f"{action} {tgt} missing in {actions}"
        )
    assert all(e["ip"] == "127.0.0.1" for e in entries)
    filtered = [e for e in entries if e["action"] == "event_list"][1]["detail"]["filter"]
    assert (filtered["device"], filtered["time_from"]) == ("dr-cam-01", "08:00")
    export = next(e for e in entries if e["action"] == "export_create")
    assert sorted(export["detail"]["events"]) == sorted(chosen) and export["detail"]["sha256"] == shown_sha
    _, chain = admin.get("/api/v1/audit/verify")
    assert chain["intact"] is True
    status, csv_bytes = admin.get("/api/v1/audit/export.csv")
    assert status == 200 and b"export_create" in csv_bytes and b"ca-daron" in csv_bytes
