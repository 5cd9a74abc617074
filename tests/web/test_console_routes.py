"""The console's pages in process (no broker, no browser): the configuration form generated from the
schema and its Vietnamese validation messages, maintenance windows edited and ended, a
technician scoped to one commune, and the link notifications carry to the alert's page.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud.alerting.engine import Cause, Change, Scope, Severity
from cloud.api.app import create_app
from cloud.audit.trail import AuditTrail
from cloud.auth.roles import Role
from cloud.auth.users import UserStore
from cloud.config import load_config
from cloud.fleet.store import FleetStore
from cloud.inventory import load_inventory
from cloud.notify.messages import Notice, render
from cloud.runtime import Runtime

NODE = "dr-cam-03"
CAMERA = {
    "type": "camera",
    "device": NODE,
    "url": "rtsp://192.168.1.64:554/Streaming/Channels/102",
    "detect_fps": 4.0,
    "masks": [[[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]],
}
USERS = {
    "kythuat": (Role.TECHNICIAN, set()),
    "kythuat-tutra": (Role.TECHNICIAN, {"tu-tra"}),
    "ca-daron": (Role.POLICE, {"da-ron"}),
    "mic": (Role.MIC, set()),
}
REPO = Path(__file__).resolve().parents[2]


class Web:
    """A logged-in browser session: GETs, and form posts with the session's CSRF token."""

    def __init__(self, client: httpx.AsyncClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, form: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, data={**form, "csrf_token": self.csrf})


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    cfg = load_config(
        None,
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "console-routes"},
        influx={"spool_dir": tmp_path / "spool", "url": "http://127.0.0.1:1"},
        sql={"url": f"sqlite:///{tmp_path / 'cloud.db'}"},
        snapshots_dir=tmp_path / "snapshots",
        fleet={"signing_key_file": tmp_path / "fleet.pem"},
    )
    runtime = Runtime(cfg)
    users = UserStore(runtime.sql.engine)
    for name, (role, communes) in USERS.items():
        users.add(name, f"{name}-password-1", frozenset({role}), communes=frozenset(communes))
    FleetStore(runtime.sql.engine).reported(
        NODE,
        "da-ron",
        state="applied",
        version=0,
        running=0,
        tried=0,
        good=True,
        error=None,
        config={"health_interval_s": 10.0, "log": {"level": "INFO", "json": False}, "collectors": [CAMERA]},
        board_key=None,
        agent_version="0.1.0",
        at=time.time(),
    )
    yield runtime
    runtime.journal.close()
    await runtime.influx.aclose()
    runtime.sql.dispose()


@pytest.fixture
async def web(rt: Runtime) -> AsyncIterator[dict[str, Web]]:
    app = create_app(rt, manage_runtime=False)
    sessions: dict[str, Web] = {}
    clients = []
    for name in USERS:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        clients.append(client)
        r = await client.post("/api/v1/auth/login", json={"username": name, "password": f"{name}-password-1"})
        sessions[name] = Web(client, r.json()["csrf_token"])
    yield sessions
    for client in clients:
        await client.aclose()


def _form(html: str) -> dict[str, str]:
    """The configuration form's fields as the browser would send them unchanged."""
    form = html.split('id="config-form"')[1].split("</form>")[0]
    out = {}
    for m in re.finditer(r'<input type="(text|time)"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form):
        out[m.group(2)] = m.group(3).replace("&#34;", '"').replace("&amp;", "&")
    for m in re.finditer(r'<input type="checkbox" name="([^"]+)" checked', form):
        out[m.group(1)] = "on"
    for m in re.finditer(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', m.group(2))
        out[m.group(1)] = chosen.group(1) if chosen else ""
    for m in re.finditer(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        out[m.group(1)] = m.group(2).replace("&#34;", '"').replace("&amp;", "&")
    return out


async def test_the_configuration_form_is_the_schema_and_refuses_in_vietnamese(
    rt: Runtime, web: dict[str, Web]
) -> None:
    tech = web["kythuat"]
    page = (await tech.get(f"/boards/{NODE}")).text
    form = _form(page)
    # Generated from the camera collector's own model: its fields, with the board's values.
    assert form["collectors.0.detect_fps"] == "4" and form["collectors.0.motion.sensitivity"] == "4.5"
    assert form["collectors.0.transport"] == "tcp" and form["log.level"] == "INFO"
    assert "collectors.0.password" in page and 'type="password"' in page

    bad = await tech.post(
        f"/boards/{NODE}/config", {**form, "collectors.0.motion.sensitivity": "-1", "action": "apply"}
    )
    assert bad.status_code == 422
    assert "Phải lớn hơn 0." in bad.text and "config-invalid" in bad.text
    field = bad.text.split('data-path="collectors.0.motion.sensitivity"')[1].split("</div>")[0]
    assert "Phải lớn hơn 0." in field  # the message sits on the field itself
    secret = await tech.post(
        f"/boards/{NODE}/config", {**form, "collectors.0.password": "hunter2", "action": "apply"}
    )
    assert (
        secret.status_code == 422 and "Bo mạch chưa gửi khóa" in secret.text and "hunter2" not in secret.text
    )
    twin = FleetStore(rt.sql.engine).twin(NODE)
    assert twin is not None and twin.desired_version == 0  # nothing refused was stored

    preview = await tech.post(
        f"/boards/{NODE}/config", {**form, "collectors.0.motion.sensitivity": "6,5", "action": "preview"}
    )
    assert preview.status_code == 200 and "config-valid" in preview.text
    change = preview.text.split('id="change-preview"')[1].split("</table>")[0]
    assert (
        "collectors.0.motion.sensitivity" in change
        and "6.5" in change
        and change.count("<code>collectors") == 1
    )

    done = await tech.post(
        f"/boards/{NODE}/config", {**form, "collectors.0.motion.sensitivity": "6,5", "action": "apply"}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/boards/{NODE}?saved=1#state"
    twin = FleetStore(rt.sql.engine).twin(NODE)
    assert twin is not None and twin.desired is not None and twin.desired_version == 1
    want = {**CAMERA, "motion": {"sensitivity": 6.5}}
    assert twin.desired["collectors"] == [want]  # only what was changed: the rest as written
    (entry,) = AuditTrail(rt.sql.engine).entries(actor="kythuat", action="fleet_config_set")
    assert entry.detail["changes"] == [
        {"path": "collectors.0.motion.sensitivity", "desired": 6.5, "before": None}  # None: the default
    ]
    page = (await tech.get(f"/boards/{NODE}")).text
    assert 'data-sync="pending"' in page and 'id="drift"' in page


async def test_maintenance_windows_are_edited_and_ended_in_local_time(
    rt: Runtime, web: dict[str, Web]
) -> None:
    assert rt.alerting is not None
    store = rt.alerting.store
    tech = web["kythuat"]
    once = {
        "target_kind": "device",
        "target": "dr-ap-01",
        "mode": "once",
        "start": "2031-05-04T08:00",
        "end": "2031-05-04T11:30",
    }
    r = await tech.post("/maintenance", {**once, "action": "save", "comment": "thay điểm phát"})
    assert r.status_code == 303
    wid = int(r.headers["location"].split("saved=")[1].split("#")[0])
    page = (await tech.get(f"/maintenance/{wid}")).text
    assert 'value="2031-05-04T08:00"' in page and "dr-ap-01" in page.split('id="covered-devices"')[1]
    r = await tech.post(f"/maintenance/{wid}", {**once, "end": "2031-05-04T12:00", "action": "save"})
    assert r.status_code == 303
    (w,) = [x for x in store.windows() if x.id == wid]
    assert w.ends_at == datetime(2031, 5, 4, 12, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp()
    wrong = await tech.post(f"/maintenance/{wid}", {**once, "end": "2031-05-04T07:00", "action": "save"})
    assert wrong.status_code == 422 and "Kết thúc phải sau bắt đầu." in wrong.text
    r = await tech.post(f"/maintenance/{wid}/end", {})
    assert r.status_code == 303 and all(x.id != wid for x in store.windows())  # not started: gone

    weekly = {
        "target_kind": "commune",
        "target": "lac-xuan",
        "mode": "weekly",
        "weekdays": ["6"],
        "at": "23:00",
        "hours": "1,5",
    }
    r = await tech.post("/maintenance", {**weekly, "action": "save"})
    wid = int(r.headers["location"].split("saved=")[1].split("#")[0])
    (w,) = [x for x in store.windows() if x.id == wid]
    assert (w.weekdays, w.local_start, w.duration_s, w.ends_at) == (frozenset({6}), "23:00", 5400.0, None)
    before = time.time()
    assert (await tech.post(f"/maintenance/{wid}/end", {})).status_code == 303
    (w,) = [x for x in store.windows() if x.id == wid]
    assert w.ends_at is not None and before <= w.ends_at <= time.time()  # under way: stops now
    actions = [e.action for e in AuditTrail(rt.sql.engine).entries(actor="kythuat", newest_first=False)]
    assert actions.count("maintenance_end") == 2 and "maintenance_edit" in actions


async def test_a_technician_of_tu_tra_sees_and_acts_on_tu_tra_only(rt: Runtime, web: dict[str, Web]) -> None:
    assert rt.alerting is not None
    now = time.time()
    store = rt.alerting.store
    dr = store.apply(
        Change(
            "open",
            "node:dr-ap-04",
            Scope.NODE,
            "dr-ap-04",
            "da-ron",
            Cause.SILENT,
            Severity.CRITICAL,
            now - 60,
            now,
        )
    )
    tt = store.apply(
        Change(
            "open",
            "node:tt-ap-04",
            Scope.NODE,
            "tt-ap-04",
            "tu-tra",
            Cause.SILENT,
            Severity.CRITICAL,
            now - 60,
            now,
        )
    )
    assert dr is not None and tt is not None
    tutra = web["kythuat-tutra"]
    fleet = (await tutra.get("/fleet")).text
    rows = re.findall(r'data-device="([a-z0-9-]+)"', fleet)
    inventory = load_inventory(rt.cfg.inventory)
    assert rows and set(rows) == {d.id for d in inventory.devices if d.commune == "tu-tra"}
    listed = (await tutra.get("/api/v1/devices")).json()
    assert listed and {d["commune"] for d in listed} == {"tu-tra"}
    assert (await tutra.get("/devices/dr-cam-01")).status_code == 404
    assert (await tutra.get("/devices/tt-cam-01")).status_code == 200
    alerts = (await tutra.get("/alerts")).text
    assert f'data-alert="{tt.id}"' in alerts and f'data-alert="{dr.id}"' not in alerts
    assert (await tutra.post(f"/alerts/{dr.id}/ack", {"comment": "x"})).status_code == 404
    assert (await tutra.post(f"/alerts/{tt.id}/ack", {"comment": "đi ngay"})).status_code == 303
    r = await tutra.post(
        "/maintenance",
        {
            "target_kind": "site",
            "target": "dr-thon-01",
            "mode": "once",
            "start": "2031-01-01T08:00",
            "end": "2031-01-01T09:00",
            "action": "save",
        },
    )
    assert r.status_code == 422 and "Không có đối tượng này trong các xã bạn quản lý" in r.text
    denied = AuditTrail(rt.sql.engine).entries(actor="kythuat-tutra", action="access_denied")
    assert {e.target for e in denied} >= {"device:dr-cam-01", f"alert:{dr.id}"}
    assert all(e.detail["outcome"] == "out_of_scope" for e in denied)


def test_notifications_link_to_the_alert_page() -> None:
    inventory = load_inventory(REPO / "firmware_config" / "inventory.yaml")
    notice = Notice("open", 42, "node:dr-ap-02", "node", "dr-ap-02", "da-ron", "silent", "critical", 0.0, 1.0)
    message = render(notice, inventory, "vi", "https://ciot.example.vn/")
    assert message.url == "https://ciot.example.vn/alerts/42"
    assert message.text.splitlines()[-1] == message.url
    assert render(notice, inventory, "vi").url == ""  # no public URL configured: no link


async def test_the_help_link_opens_each_roles_guide_with_its_screenshots(web: dict[str, Web]) -> None:
    for user, guide in (("kythuat", "technician"), ("ca-daron", "police"), ("mic", "mic")):
        r = await web[user].get("/help")
        assert r.status_code == 303 and r.headers["location"] == f"/help/vi/{guide}", user
        page = await web[user].get(f"/help/vi/{guide}")
        assert page.status_code == 200 and 'id="help-link"' in page.text
        images = re.findall(r'<img src="\.\./screenshots/([^"]+)"', page.text)
        assert images, guide
        for name in images:  # resolved against /help/vi/<guide>: /help/screenshots/<name>
            shot = await web[user].get(f"/help/screenshots/{name}")
            assert shot.status_code == 200 and shot.content[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (await web["mic"].get("/help/screenshots/..%2Fvi%2Fmic.md")).status_code == 404


def test_the_guides_and_screenshots_are_where_the_readme_says() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for guide in ("technician", "police", "mic"):
        assert f"docs/vi/{guide}.md" in readme
        text = (REPO / "docs" / "vi" / f"{guide}.md").read_text(encoding="utf-8")
        for name in re.findall(r"\]\(\.\./screenshots/([^)]+)\)", text):
            assert (REPO / "docs" / "screenshots" / name).is_file(), f"{guide}.md shows a missing {name}"
    for name in re.findall(r"\(docs/screenshots/([^)]+)\)", readme):
        assert (REPO / "docs" / "screenshots" / name).is_file(), f"the README links a missing {name}"
