"""The alerting HTTP routes, in process (no broker needed: the routes read SQL and the engine)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support import admin_headers

from cloud.alerting.engine import Cause, Change, Scope, Severity
from cloud.api.app import create_app
from cloud.config import load_config
from cloud.runtime import Runtime
from commune_iot.cli import build_parser


@pytest.fixture
async def api(tmp_path: Path, sql_url: str) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    cfg = load_config(
        None,
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "api-test"},
        influx={"spool_dir": tmp_path / "spool"},
        sql={"url": sql_url},
        snapshots_dir=tmp_path / "snapshots",
    )
    rt = Runtime(cfg)
    app = create_app(rt, manage_runtime=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=admin_headers(rt.sql.engine)
    ) as client:
        yield rt, client
    rt.journal.close()
    await rt.influx.aclose()
    rt.sql.dispose()


def _open(rt: Runtime, scope: Scope, subject: str, commune: str, at: float) -> int:
    assert rt.alerting is not None
    key = f"{scope.value}:{subject}"
    ch = Change("open", key, scope, subject, commune, Cause.SILENT, Severity.CRITICAL, at - 20, at)
    row = rt.alerting.store.apply(ch)
    assert row is not None
    return row.id


async def test_list_filter_ack_and_silence(api: tuple[Runtime, httpx.AsyncClient]) -> None:
    rt, client = api
    now = time.time()
    a = _open(rt, Scope.NODE, "dr-ap-01", "da-ron", now)
    _open(rt, Scope.NODE, "tt-ap-01", "tu-tra", now)
    r = await client.get("/api/v1/alerts", params={"commune": "da-ron"})
    assert [x["subject"] for x in r.json()] == ["dr-ap-01"]
    r = await client.get("/api/v1/alerts", params={"state": "active"})
    assert len(r.json()) == 2
    lan = admin_headers(rt.sql.engine, "lan")
    r = await client.post(f"/api/v1/alerts/{a}/ack", json={"comment": "đã gọi nhà mạng"}, headers=lan)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    r = await client.post(f"/api/v1/alerts/{a}/ack", json={})
    assert r.status_code == 409  # already taken by Lan
    r = await client.post(f"/api/v1/alerts/{a}/silence", json={"for_s": 3600})
    assert r.json()["silenced_until"] is not None
    assert (await client.get("/api/v1/alerts/999")).status_code == 404
    r = await client.get("/api/v1/alerts", params={"state": "acknowledged"})
    assert [x["acked_by"] for x in r.json()] == ["lan"]  # the logged-in user, whatever a body says


async def test_maintenance_windows_are_validated_listed_and_deleted(
    api: tuple[Runtime, httpx.AsyncClient],
) -> None:
    _, client = api
    bad = {"target_kind": "commune", "target": "tu-tra", "starts_at": "2027-01-01T00:00:00Z"}
    assert (await client.post("/api/v1/maintenance", json=bad)).status_code == 422
    weekly = {**bad, "weekdays": [1], "local_start": "22:00", "duration_s": 7200, "comment": "bảo trì"}
    r = await client.post("/api/v1/maintenance", json=weekly)
    assert r.status_code == 201
    wid = r.json()["id"]
    assert [w["id"] for w in (await client.get("/api/v1/maintenance")).json()] == [wid]
    assert (await client.delete(f"/api/v1/maintenance/{wid}")).status_code == 204
    assert (await client.delete(f"/api/v1/maintenance/{wid}")).status_code == 404


async def test_commune_summary_and_availability(api: tuple[Runtime, httpx.AsyncClient]) -> None:
    rt, client = api
    r = await client.get("/api/v1/communes/summary")
    rows = {c["commune"]: c for c in r.json()}
    assert rows["tu-tra"]["name"] == "Tu Tra" and rows["da-ron"]["name"] == "Đạ Ròn"
    assert rows["lac-xuan"]["nodes_unknown"] == 11 and rows["lac-xuan"]["judging"] is False
    now = time.time()
    _open(rt, Scope.COMMUNE, "lac-xuan", "lac-xuan", now)  # no members: does not count for a device
    _open(rt, Scope.NODE, "lx-ap-02", "lac-xuan", now)  # 20 s down so far
    r = await client.get("/api/v1/availability", params={"device": "lx-ap-02", "start": now - 200})
    body = r.json()
    assert body["outages"] == 1 and body["availability"] == pytest.approx(0.9, abs=0.01)


def test_bench_outage_is_a_subcommand() -> None:
    args = build_parser().parse_args(["bench", "outage", "--trials", "3"])
    assert args.trials == 3


async def test_acks_silences_and_maintenance_are_the_logged_in_users_and_audited(
    api: tuple[Runtime, httpx.AsyncClient],
) -> None:
    """Issue 17 item 16: a technician cannot ack in an admin's name; every such action is audited."""
    from cloud.audit.trail import AuditTrail
    from cloud.auth.roles import Role
    from cloud.auth.users import UserStore

    rt, client = api
    users = UserStore(rt.sql.engine)
    users.add("kythuat", "ky-thuat-vien-1", frozenset({Role.TECHNICIAN}))
    tech = {"Authorization": f"Bearer {users.create_token('kythuat', 'tests')}"}
    a = _open(rt, Scope.NODE, "dr-ap-02", "da-ron", time.time())
    r = await client.post(f"/api/v1/alerts/{a}/ack", json={"by": "admin", "comment": "đi ngay"}, headers=tech)
    assert r.status_code == 200 and r.json()["acked_by"] == "kythuat"
    await client.post(f"/api/v1/alerts/{a}/silence", json={"for_s": 600}, headers=tech)
    window = {
        "target_kind": "node",
        "target": "dr-ap-02",
        "starts_at": "2027-01-01T00:00:00Z",
        "ends_at": "2027-01-01T02:00:00Z",
    }
    wid = (await client.post("/api/v1/maintenance", json=window, headers=tech)).json()["id"]
    assert (await client.delete(f"/api/v1/maintenance/{wid}", headers=tech)).status_code == 204
    rows = AuditTrail(rt.sql.engine).entries(actor="kythuat", newest_first=False)
    assert [(e.action, e.target) for e in rows] == [
        ("alert_ack", f"alert:{a}"),
        ("alert_silence", f"alert:{a}"),
        ("maintenance_add", f"maintenance:{wid}"),
        ("maintenance_delete", f"maintenance:{wid}"),
    ]
    assert rows[0].detail["comment"] == "đi ngay" and rows[0].commune == "da-ron"
    assert rows[3].detail["target"] == "dr-ap-02"
