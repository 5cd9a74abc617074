"""Must-show 2 of the event log: a Da Ron police officer cannot reach anything of Tu Tra,
through any route of the API (walked from the OpenAPI schema) or of the web UI; and (issue 17)
every such refusal leaves exactly one audit row, while a burst of refusals does not flood it."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

import httpx
import pytest
from web_portal import PASSWORDS, Portal

TU_TRA_MARKERS = ("tu-tra", "tt-cam", "Tu Tra")

#: Request bodies by route, shaped as valid as possible so only scope can refuse them.
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/api/v1/events/{event_pk}/review"): {"reviewed": True},
    ("post", "/api/v1/events/{event_pk}/notes"): {"text": "thử truy cập trái phép"},
    ("post", "/api/v1/events/{event_pk}/keep"): {"keep": True},
    ("post", "/api/v1/auth/login"): {"username": "ca-daron", "password": PASSWORDS["ca-daron"]},
    ("post", "/api/v1/alerts/{alert_id}/ack"): {"by": "ca-daron"},
    ("post", "/api/v1/alerts/{alert_id}/silence"): {"for_s": 60},
    ("post", "/api/v1/maintenance"): {
        "target_kind": "commune",
        "target": "tu-tra",
        "starts_at": "2027-01-01T00:00:00Z",
        "ends_at": "2027-01-01T01:00:00Z",
    },
}


@pytest.fixture(scope="module")
def tu_tra(portal: Portal) -> dict[str, Any]:
    """Tu Tra's objects: an event, its camera, and an export made by Tu Tra's police."""
    tt = portal.api("ca-tutra")
    ids = portal.ids_of("tu-tra")
    status, export = tt.post("/api/v1/exports", {"event_ids": ids[:2], "reason": "Tu Tra"})
    assert status == 201, export
    return {
        "event_pk": ids[0],
        "export_id": export["id"],
        "device": "tt-cam-01",
        "node": "tt-cam-01",
        "command_id": "0123456789abcdef",
        "alert_id": 1,
        "window_id": 1,
        "report_id": 1,
        "fmt": "html",
        "version": "0.1.0",  # a release (served to boards and technicians only)
        "name": "manifest.json",
        "rollout_id": 1,
        "token": "x" * 43,  # a one-time bundle link (technicians only)
    }


def _fill(path: str, objs: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        assert name in objs, f"route {path}: no Tu Tra object for parameter {name!r}; add one to the test"
        return str(objs[name])

    return re.sub(r"\{([^}]+)\}", sub, path)


def _denials(portal: Portal, actor: str, after_id: int) -> list[dict[str, Any]]:
    status, rows = portal.api("admin").get(
        f"/api/v1/audit?actor={actor}&action=access_denied&after_id={after_id}&limit=5000"
    )
    assert status == 200, rows
    return list(rows)


def _last_audit_id(portal: Portal) -> int:
    _, rows = portal.api("admin").get("/api/v1/audit?limit=1")
    return int(rows[0]["id"])


def test_every_api_route_refuses_tu_tra_to_da_ron_police(portal: Portal, tu_tra: dict[str, Any]) -> None:
    police = portal.api("ca-daron")
    _, schema = portal.api("admin").get("/openapi.json")
    walked = refused = 0
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if path in ("/api/v1/auth/logout", "/api/v1/auth/token"):
                continue  # no commune data behind them (token: a form login, tested on its own)
            url = _fill(path, tu_tra)
            query = {
                p["name"]: (date(2026, 11, 20).isoformat() if p["name"] == "day" else "tu-tra")
                for p in op.get("parameters", [])
                if p["in"] == "query" and (p.get("required") or p["name"] == "commune")
            }
            if query:
                url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
            body = BODIES.get((method, path))
            if (method, path) == ("post", "/api/v1/exports"):
                body = {"event_ids": portal.ids_of("tu-tra")}
            mark = _last_audit_id(portal)
            status, resp = police.call(
                method.upper(), url, body if method in ("post", "put", "patch") else None
            )
            walked += 1
            # Issue 17: each refusal is exactly one audit row naming the route; nothing else is one.
            denials = _denials(portal, "ca-daron", mark)
            if status in (403, 404):
                refused += 1
                assert len(denials) == 1, f"{method.upper()} {url} ({status}): {len(denials)} audit rows"
                d = denials[0]["detail"]
                assert (d["method"], d["route"], d["status"]) == (method.upper(), path, status), d
                if "{" in path and status == 404:  # a Tu Tra object: the audit knows it exists
                    assert d["outcome"] == "out_of_scope" and denials[0]["commune"] == "tu-tra", denials[0]
            else:
                assert denials == [], f"{method.upper()} {url} ({status}) audited as refused"
            text = resp.decode(errors="replace") if isinstance(resp, bytes) else repr(resp)
            assert status != 500, f"{method.upper()} {url}: 500 {text[:300]}"
            if "{" in path or (method, path) == ("post", "/api/v1/exports"):
                assert status in (403, 404), f"{method.upper()} {url} answered {status}: {text[:300]}"
            elif path not in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                assert status in (200, 201, 403), f"{method.upper()} {url} answered {status}: {text[:300]}"
            if status < 300 and path not in ("/healthz", "/readyz", "/metrics"):
                leaked = [m for m in TU_TRA_MARKERS if m in text]
                assert not leaked, f"{method.upper()} {url} leaked {leaked}: {text[:300]}"
    assert walked >= 20, f"only {walked} routes in the schema?"
    assert refused >= 15, f"only {refused} refusals?"
    # Nothing of Tu Tra changed on the way.
    _, ev = portal.api("ca-tutra").get(f"/api/v1/events/{tu_tra['event_pk']}")
    assert ev["reviewed_at"] is None and ev["notes"] == [] and ev["keep"] is False


def test_web_ui_refuses_tu_tra_to_da_ron_police(portal: Portal, tu_tra: dict[str, Any]) -> None:
    with httpx.Client(base_url=portal.url, follow_redirects=False, timeout=10) as web:
        r = web.post(
            "/login", data={"username": "ca-daron", "password": PASSWORDS["ca-daron"], "next": "/events"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/events"
        page = web.get("/events?commune=tu-tra").text
        assert "0 sự kiện" in page and not any(m in page.split("<main>")[1] for m in ("tt-cam",))
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/events").text)
        assert csrf
        pk, xid = tu_tra["event_pk"], tu_tra["export_id"]
        for url in (
            f"/events/{pk}",
            f"/api/v1/events/{pk}/snapshot",
            f"/api/v1/events/{pk}/snapshot?thumb=1",
            "/cameras/tt-cam-01/timeline?day=2026-11-20",
            f"/exports/{xid}",
            f"/api/v1/exports/{xid}/download",
        ):
            r = web.get(url)
            assert r.status_code == 404, (url, r.status_code)
            assert "image/jpeg" not in r.headers.get("content-type", "")
        for url, form in (
            (f"/events/{pk}/review", {"reviewed": "yes"}),
            (f"/events/{pk}/notes", {"text": "x"}),
            (f"/events/{pk}/keep", {"keep": "yes"}),
            ("/exports", {"event": str(pk)}),
        ):
            r = web.post(url, data={**form, "csrf_token": csrf.group(1)})
            assert r.status_code == 404, (url, r.status_code)
        assert web.get("/audit").status_code == 403  # police are not admins
        assert "tu-tra" not in web.get("/exports").text.split("<main>")[1]


def test_roles_see_only_their_part(portal: Portal) -> None:
    mic, tech, police = portal.api("mic-lamdong"), portal.api("kythuat"), portal.api("ca-daron")
    assert mic.get("/api/v1/events")[0] == 403  # MIC staff read Wi-Fi reports, not police events
    assert tech.get("/api/v1/events")[0] == 403
    assert tech.get("/api/v1/devices")[0] == 200
    assert police.get("/api/v1/devices")[0] == 403
    assert police.get("/api/v1/audit")[0] == 403
    assert police.get("/api/v1/auth/users")[0] == 403
    # Wi-Fi reports: MIC staff (and admins), not police unless given the role.
    assert police.get("/api/v1/reports/wifi?from=2026-11-01&to=2026-11-07")[0] == 403
    assert police.get("/reports/wifi?from=2026-11-01&to=2026-11-07")[0] == 403
    status, report = mic.get("/api/v1/reports/wifi?from=2026-11-01&to=2026-11-07")
    assert status == 200, report
    status, page = mic.get("/reports/wifi?from=2026-11-01&to=2026-11-07")
    assert status == 200 and b"<svg" in page
    _, entries = portal.api("admin").get("/api/v1/audit?actor=mic-lamdong&action=report_view")
    assert len(entries) >= 2
    status, listed = portal.api("admin").get("/api/v1/auth/users")
    assert status == 200 and {"ca-daron", "ca-tutra"} <= {u["username"] for u in listed}
    assert portal.api(None).get("/api/v1/events")[0] == 401
    status, me = police.get("/api/v1/auth/me")
    assert status == 200 and me["communes"] == ["da-ron"] and me["roles"] == ["police"]


def test_a_burst_of_refusals_does_not_flood_the_audit_trail(portal: Portal, tu_tra: dict[str, Any]) -> None:
    """1,000 identical refusals are one row (the count follows when the window closes); 300
    different ones are capped at web.refusal_max_rows rows (100) per user and window."""
    mark = _last_audit_id(portal)
    h = {"Authorization": f"Bearer {portal.tokens['mic-lamdong']}"}
    started = time.monotonic()
    with httpx.Client(base_url=portal.url, headers=h, timeout=10) as mic:
        for _ in range(1000):
            assert mic.get(f"/api/v1/events/{tu_tra['event_pk']}").status_code == 403
    elapsed = time.monotonic() - started
    rows = _denials(portal, "mic-lamdong", mark)
    assert len(rows) == 1, f"{len(rows)} rows for 1,000 identical refusals"
    assert rows[0]["detail"]["outcome"] == "role" and rows[0]["detail"]["status"] == 403
    h = {"Authorization": f"Bearer {portal.tokens['ca-tutra']}"}
    with httpx.Client(base_url=portal.url, headers=h, timeout=10) as tt:
        for i in range(300):  # probing ids one by one
            assert tt.get(f"/api/v1/events/{10_000 + i}").status_code == 404
    probes = _denials(portal, "ca-tutra", mark)
    assert len(probes) == 100, len(probes)
    assert {r["detail"]["outcome"] for r in probes} == {"missing"}
    _, chain = portal.api("admin").get("/api/v1/audit/verify")
    assert chain["intact"] is True
    print(f"\n1,000 refusals in {elapsed:.1f} s: 1 audit row")
