"""Logins, sessions and tokens as an attacker or a careless user would meet them."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
from web_portal import PASSWORDS, Portal


def _users_cli(portal: Portal, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if password:
        env["CIOT_NEW_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "commune_iot", "users", "--config", str(portal.cloud.config_path), *args],
        capture_output=True,
        text=True,
        env=env,
    )


def _login(web: httpx.Client, user: str, password: str) -> httpx.Response:
    return web.post("/login", data={"username": user, "password": password, "next": "/events"})


def test_guessing_a_password_is_throttled_and_said_in_vietnamese(portal: Portal) -> None:
    assert (
        _users_cli(
            portal, "add", "ca-doan", "--role", "police", "--commune", "da-ron", password="mat-khau-dung-1"
        ).returncode
        == 0
    )
    with httpx.Client(base_url=portal.url, timeout=10) as web:
        for _ in range(5):
            r = _login(web, "ca-doan", "sai-mat-khau")
            assert r.status_code == 401 and "Sai tên đăng nhập hoặc mật khẩu" in r.text
        r = _login(web, "ca-doan", "mat-khau-dung-1")  # right, but too late
        assert r.status_code == 429 and "Đăng nhập sai quá nhiều lần" in r.text
        assert "ciot_session" not in web.cookies
    _, entries = portal.api("admin").get("/api/v1/audit?actor=ca-doan&limit=50")
    assert [e["action"] for e in entries][:2] == ["login_throttled", "login_failed"]


def test_form_posts_need_the_sessions_csrf_token(portal: Portal) -> None:
    pk = portal.ids_of("da-ron")[0]
    with httpx.Client(base_url=portal.url, timeout=10) as web:
        assert _login(web, "ca-daron", PASSWORDS["ca-daron"]).status_code == 303
        r = web.post(f"/events/{pk}/notes", data={"text": "forged"})
        assert r.status_code == 403
        r = web.post(f"/api/v1/events/{pk}/notes", json={"text": "forged"})
        assert r.status_code == 403
        token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/events").text)
        assert token
        r = web.post(
            f"/api/v1/events/{pk}/notes", json={"text": "thật"}, headers={"X-CSRF-Token": token.group(1)}
        )
        assert r.status_code == 201
    _, ev = portal.api("admin").get(f"/api/v1/events/{pk}")
    assert [n["text"] for n in ev["notes"]].count("forged") == 0


def test_disabling_a_user_or_changing_the_password_ends_sessions_at_once(portal: Portal) -> None:
    assert (
        _users_cli(
            portal, "add", "ca-tam", "--role", "police", "--commune", "da-ron", password="mat-khau-tam-1"
        ).returncode
        == 0
    )
    token = _users_cli(portal, "token", "ca-tam", "--name", "script").stdout.strip()
    with httpx.Client(base_url=portal.url, timeout=10) as web:
        assert _login(web, "ca-tam", "mat-khau-tam-1").status_code == 303
        assert web.get("/events").status_code == 200
        assert _users_cli(portal, "set-password", "ca-tam", password="mat-khau-moi-2").returncode == 0
        assert web.get("/events", follow_redirects=False).status_code == 303  # back to the login page
        assert _login(web, "ca-tam", "mat-khau-moi-2").status_code == 303
        assert _users_cli(portal, "disable", "ca-tam").returncode == 0
        assert web.get("/events", follow_redirects=False).headers["location"].startswith("/login")
    api = httpx.get(f"{portal.url}/api/v1/events", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    listing = _users_cli(portal, "list").stdout
    assert re.search(r"ca-tam\s+DISABLED", listing)


def test_scripts_trade_a_password_for_a_bearer_token(portal: Portal) -> None:
    form = {"username": "ca-daron", "password": PASSWORDS["ca-daron"]}
    r = httpx.post(f"{portal.url}/api/v1/auth/token", data=form)
    assert r.status_code == 200 and r.json()["token_type"] == "bearer"
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    page = httpx.get(f"{portal.url}/api/v1/events", headers=h).json()
    assert page["total"] >= 6 and {e["commune"] for e in page["events"]} == {"da-ron"}
    bad = httpx.post(f"{portal.url}/api/v1/auth/token", data={**form, "password": "wrong-password"})
    assert bad.status_code == 401


def test_revoked_token_is_refused(portal: Portal) -> None:
    token = _users_cli(portal, "token", "kythuat", "--name", "nagios").stdout.strip()
    h = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{portal.url}/api/v1/devices", headers=h).status_code == 200
    assert "1 token(s)" in _users_cli(portal, "revoke-tokens", "kythuat", "--name", "nagios").stdout
    assert httpx.get(f"{portal.url}/api/v1/devices", headers=h).status_code == 401


def test_pages_carry_security_headers_and_switch_language(portal: Portal) -> None:
    with httpx.Client(base_url=portal.url, timeout=10) as web:
        r = web.get("/login?next=//evil.example/x")
        assert 'value="/"' in r.text  # an off-site "next" is replaced by the home page
        for resp in (r, web.get("/api/v1/events")):
            assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert resp.headers["x-frame-options"] == "DENY"
        assert _login(web, "ca-daron", PASSWORDS["ca-daron"]).status_code == 303
        cookie = next(c for c in web.cookies.jar if c.name == "ciot_session")
        assert cookie.has_nonstandard_attr("HttpOnly")
        page = web.get("/events")
        assert "Sự kiện chuyển động" in page.text and page.headers["cache-control"] == "no-store"
        assert "Motion events" in web.get("/events?lang=en").text
        assert "Motion events" in web.get("/events").text  # the choice sticks (cookie)
        assert "Sự kiện chuyển động" in web.get("/events?lang=vi").text
