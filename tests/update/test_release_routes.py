"""The release routes in process: boards authenticate with their broker credentials, downloads
resume with Range, and only technicians and admins see releases or start rollouts."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from update_helpers import Bundles

from cloud.api.app import create_app
from cloud.auth.roles import Role
from cloud.auth.users import UserStore
from cloud.config import load_config
from cloud.fleet.releases import ReleaseStore
from cloud.runtime import Runtime
from cloud.storage.sql import BatchUpdate, StatusUpdate
from commune_iot.provision.broker import BrokerFiles, add_board, add_cloud_user, revoke_board
from wire.release import MANIFEST, parse_manifest

BOARD, PASSWORD = "dr-cam-01", "board-secret-from-provision"
COMMUNES = {BOARD: "da-ron"}


@dataclass
class Api:
    rt: Runtime
    client: httpx.AsyncClient
    broker: BrokerFiles
    version: str
    wheel: str

    def token(self, name: str, role: Role, communes: frozenset[str] = frozenset()) -> dict[str, str]:
        users = UserStore(self.rt.sql.engine)
        users.add(name, "a-long-password-1", frozenset({role}), communes=communes)
        return {"Authorization": f"Bearer {users.create_token(name, 'test')}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
async def api(request: pytest.FixtureRequest, tmp_path: Path, bundles: Bundles) -> AsyncIterator[Api]:
    """The app in process (no lifespan); ``indirect`` parametrization False: fleet service off."""
    broker = BrokerFiles(tmp_path / "broker")
    add_board(broker.dir, BOARD, PASSWORD, COMMUNES)
    add_cloud_user(broker.dir, "ciot-cloud-1", "cloud-secret", COMMUNES)
    cfg = load_config(
        None,
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "release-api-test"},
        influx={"spool_dir": tmp_path / "spool"},
        sql={"url": f"sqlite:///{tmp_path / 'cloud.db'}"},
        snapshots_dir=tmp_path / "snapshots",
        releases={
            "dir": tmp_path / "releases",
            "trusted_keys": [bundles.public],
            "board_passwd_file": broker.passwd,
            "public_url": "https://ciot.example.vn",
        },
        fleet={"enabled": getattr(request, "param", True), "signing_key_file": tmp_path / "fleet.pem"},
        events={"exports_dir": tmp_path / "exports"},
    )
    rt = Runtime(cfg)
    app = create_app(rt, manage_runtime=False)
    m = parse_manifest((bundles.b / MANIFEST).read_bytes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ReleaseStore(cfg.releases.dir, []).publish(bundles.b)
        yield Api(rt, client, broker, m.version, m.project_file.name)
    rt.journal.close()
    await rt.influx.aclose()
    rt.sql.dispose()


async def test_a_board_downloads_with_its_broker_credentials_and_resumes(api: Api, bundles: Bundles) -> None:
    url = f"/api/v1/releases/{api.version}"
    r = await api.client.get(f"{url}/{MANIFEST}", headers=basic(BOARD, PASSWORD))
    assert r.status_code == 200 and r.content == (bundles.b / MANIFEST).read_bytes()
    whole = (bundles.b / api.wheel).read_bytes()
    r = await api.client.get(f"{url}/{api.wheel}", headers=basic(BOARD, PASSWORD) | {"Range": "bytes=1000-"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert r.content == whole[1000:]


@pytest.mark.parametrize(
    ("user", "password"),
    [(BOARD, "wrong"), ("ciot-cloud-1", "cloud-secret"), ("not-a-board", "x"), ("", "")],
    ids=["wrong-password", "cloud-user", "unknown", "empty"],
)
async def test_anyone_else_gets_401(api: Api, user: str, password: str) -> None:
    r = await api.client.get(f"/api/v1/releases/{api.version}/{MANIFEST}", headers=basic(user, password))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = await api.client.get(f"/api/v1/releases/{api.version}/{MANIFEST}")
    assert r.status_code == 401


async def test_a_revoked_board_is_locked_out_at_once(api: Api) -> None:
    url = f"/api/v1/releases/{api.version}/{MANIFEST}"
    assert (await api.client.get(url, headers=basic(BOARD, PASSWORD))).status_code == 200
    revoke_board(api.broker.dir, BOARD, COMMUNES)  # `commune-iot provision dr-cam-01 --revoke`
    assert (await api.client.get(url, headers=basic(BOARD, PASSWORD))).status_code == 401


async def test_only_files_the_manifest_lists_are_served(api: Api) -> None:
    for name in ("passwd", "..%2Fpasswd", "manifest.json.bak"):
        r = await api.client.get(f"/api/v1/releases/{api.version}/{name}", headers=basic(BOARD, PASSWORD))
        assert r.status_code in (404, 422), (name, r.status_code)
    r = await api.client.get(f"/api/v1/releases/9.9.9/{MANIFEST}", headers=basic(BOARD, PASSWORD))
    assert r.status_code == 404


async def test_releases_and_rollouts_are_for_technicians(api: Api) -> None:
    police = api.token("cong-an", Role.POLICE, frozenset({"da-ron"}))
    tech = api.token("kythuat", Role.TECHNICIAN)
    body = {"version": api.version, "canary": BOARD, "communes": []}
    for method, path, json in (
        ("GET", "/api/v1/releases", None),
        ("GET", f"/api/v1/releases/{api.version}/{MANIFEST}", None),
        ("GET", "/api/v1/rollouts", None),
        ("POST", "/api/v1/rollouts", body),
        ("POST", "/api/v1/rollouts/1/abort", None),
    ):
        r = await api.client.request(method, path, headers=police, json=json)
        assert r.status_code == 403, (method, path, r.status_code)
    commune = "da-ron"
    api.rt.sql.apply(
        BatchUpdate(
            statuses=[
                StatusUpdate(
                    BOARD,
                    commune,
                    True,
                    "online",
                    "birth",
                    1e9,
                    "0.0.9",
                    "0123abcd",
                    int(1e12),
                    update=("0.0.9", "active", "", 1e9),
                )
            ]
        )
    )
    r = await api.client.get("/api/v1/releases", headers=tech)
    assert r.status_code == 200
    doc = r.json()
    assert [rel["version"] for rel in doc["releases"]] == [api.version]
    board = next(n for n in doc["nodes"] if n["node"] == BOARD)
    assert board["agent_version"] == "0.0.9" and board["update"]["state"] == "active"
    r = await api.client.post("/api/v1/rollouts", headers=tech, json=body)
    assert r.status_code == 201 and r.json()["nodes"][0]["node"] == BOARD
    r = await api.client.post("/api/v1/rollouts", headers=tech, json=body)
    assert r.status_code == 409 and "still running or paused" in r.json()["detail"]
    r = await api.client.post("/api/v1/rollouts", headers=tech, json=body | {"canary": "no-such-board"})
    assert r.status_code == 409


@pytest.mark.parametrize("api", [False], indirect=True, ids=["fleet-off"])
async def test_without_the_fleet_service_a_rollout_is_refused_with_the_reason(api: Api) -> None:
    """Update commands go out only through the fleet service: no silent publishing around it."""
    tech = api.token("kythuat", Role.TECHNICIAN)
    body = {"version": api.version, "canary": BOARD, "communes": []}
    r = await api.client.post("/api/v1/rollouts", headers=tech, json=body)
    assert r.status_code == 409
    assert r.json()["detail"].startswith("the fleet service is off (fleet.enabled: false)")
    assert (await api.client.get("/api/v1/rollouts", headers=tech)).json() == []
