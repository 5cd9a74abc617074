"""Onboarding on the running hardened broker (issue 15 item 4): a technician adds a device
through the API while two boards and the cloud stay connected; the cloud writes the broker's
passwd and ACL and has the broker's reload watcher reload it (as in compose, where the cloud
cannot signal the broker); the bundle downloads once; an agent started from it turns up
("never seen" -> up); decommissioned, its board is dropped and refused, nobody else is."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml
from onboarding_lab import BOARDS, Lab
from support import wait_until

from cloud.web.onboarding import onboarding_router
from commune_iot.localsvc import broker_account

NEW = "dr-cam-13"


def _broker_uid(lab: Lab) -> int:
    """The uid Mosquitto runs as (the watcher, its parent, stays root as in the image)."""
    assert lab.broker.proc is not None
    children = Path(f"/proc/{lab.broker.proc.pid}/task/{lab.broker.proc.pid}/children").read_text().split()
    for pid in children:
        if "mosquitto" in Path(f"/proc/{pid}/comm").read_text():
            status = Path(f"/proc/{pid}/status").read_text()
            return int(re.search(r"^Uid:\s+(\d+)", status, flags=re.M).group(1))  # type: ignore[union-attr]
    raise AssertionError("no mosquitto under the reload watcher")


def test_a_device_added_in_the_cloud_comes_up_with_its_bundle_and_is_refused_once_decommissioned(
    lab: Lab,
) -> None:
    account = broker_account()
    if account is not None:  # the tests run as root: the broker must not
        assert _broker_uid(lab) == account.pw_uid, "the broker runs as root"
    tech = lab.api("kythuat")

    t0 = time.monotonic()
    status, out = tech.call(
        "POST",
        "/api/v1/inventory/devices",
        {
            "id": NEW,
            "kind": "camera",
            "commune": "da-ron",
            "site": "dr-diem-13",
            "site_name": "Cổng chợ mới",
            "name": "Camera cổng chợ mới",
        },
    )
    added_s = time.monotonic() - t0
    assert status == 201, out
    assert out["new_board"] and out["warnings"] == [], out  # credentials in force: the watcher acknowledged
    assert out["device"]["state"] == "never_seen"
    assert re.search(rf"^{NEW}:\$7\$", (lab.broker.auth / "passwd").read_text(), flags=re.M)
    assert f"topic write ciot/v1/da-ron/{NEW}/status" in (lab.broker.auth / "acl").read_text()

    status, data = tech.call("GET", out["bundle"]["url"])
    assert status == 200 and hashlib.sha256(data).hexdigest() == out["bundle"]["sha256"]
    status, again = tech.call("GET", out["bundle"]["url"])
    assert status == 410, again  # once: the sealed copy is gone from the cloud
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {f"{NEW}/{n}" for n in ("edge.yaml", "mqtt.password", "ca.crt", "INSTALL.sh")} <= set(names)
    password = zipfile.ZipFile(io.BytesIO(data)).read(f"{NEW}/mqtt.password").decode().strip()

    agent = lab.agent_from_zip(data)
    t1 = time.monotonic()
    wait_until(f"{NEW} up", lambda: lab.state("kythuat", NEW) == "up", 30)
    up_s = time.monotonic() - t1

    # The bundle carries the cloud's command key: the new board runs the cloud's signed
    # commands and would refuse forged ones (tests/fleet/test_fleet_commands.py).
    cfg = yaml.safe_load(zipfile.ZipFile(io.BytesIO(data)).read(f"{NEW}/edge.yaml"))
    status, key = tech.call("GET", "/api/v1/fleet/key")
    assert status == 200 and cfg["control"] == {"cloud_public_key": key["cloud_public_key"]}, cfg
    status, cmd = tech.call("POST", f"/api/v1/fleet/nodes/{NEW}/commands", {"name": "diag"})
    assert status in (200, 201), cmd
    wait_until(
        "the signed command done",
        lambda: tech.call("GET", f"/api/v1/fleet/commands/{cmd['id']}")[1]["state"] == "done",
        30,
    )

    t2 = time.monotonic()
    status, out = tech.call("POST", f"/api/v1/inventory/devices/{NEW}/decommission")
    assert status == 200, out
    assert out["board_retired"] and out["revoked"] and out["warnings"] == [], out
    assert out["device"]["state"] == "decommissioned"
    wait_until(
        f"{NEW} refused", lambda: "refused the connection: Not authorized" in agent.log_path.read_text(), 30
    )
    refused_s = time.monotonic() - t2
    print(f"\nadd (files + watcher reload) {added_s:.2f} s, up {up_s:.2f} s, refused {refused_s:.2f} s later")

    # the others never noticed: one connection each, in the broker's log and in the agents'
    log = lab.broker.log()
    assert "Error" not in log, log[-3000:]
    assert f"Client {NEW} disconnected" in log
    assert log.count("reload-watcher: broker reloaded") == 2  # added, then revoked: one reload each
    for client in (*BOARDS, lab.cloud_client_id, f"{lab.cloud_client_id}-fleet"):
        assert lab.broker.connections(client) == 1, (client, log[-3000:])
    for board in BOARDS:
        text = lab.agents[board].log_path.read_text()
        assert text.count("connected to broker") == 1 and " lost" not in text, board
    assert lab.broker.connections(NEW) == 1

    # it leaves the lists and alerting, its history stays in SQL
    admin = lab.api("admin")
    listed = {d["id"] for d in admin.call("GET", "/api/v1/devices")[1]}
    assert NEW not in listed and set(BOARDS) <= listed
    _, alerts = admin.call("GET", "/api/v1/alerts?state=active")
    assert not [a for a in alerts if NEW in (a["subject"], *a.get("members", []))]
    _, inv = admin.call("GET", "/api/v1/inventory?decommissioned=true")
    gone = next(d for d in inv["devices"] if d["id"] == NEW)
    assert gone["decommissioned_by"] == "kythuat" and gone["added_by"] == "kythuat"

    # audited, and the board's password is nowhere in the cloud's database
    _, trail = admin.call("GET", "/api/v1/audit?limit=200")
    actions = [e["action"] for e in trail if e["target"] in (f"device:{NEW}", f"node:{NEW}")]
    assert {"inventory_add", "inventory_bundle_download", "inventory_decommission"} <= set(actions)
    assert password not in json.dumps(trail)
    db = Path(lab.cloud.config_path).parent / "cloud" / "ciot-cloud.db"
    for f in db.parent.glob("ciot-cloud.db*"):
        assert password.encode() not in f.read_bytes(), f


def test_police_and_mic_are_refused_every_inventory_route_and_scoped_technicians_stay_in_their_communes(
    lab: Lab,
) -> None:
    routes = [
        (method.upper(), path)
        for path, ops in lab.api("admin").call("GET", "/openapi.json")[1]["paths"].items()
        if path.startswith("/api/v1/inventory")
        for method in ops
    ]
    routes += [(m, r.path) for r in onboarding_router().routes for m in r.methods]  # type: ignore[attr-defined]
    assert len(routes) >= 12, routes
    fill = {"{device}": "dr-cam-01", "{token}": "A" * 43}
    for user in ("ca-daron", "mic"):
        api = lab.api(user)
        for method, path in routes:
            for k, v in fill.items():
                path = path.replace(k, v)
            status, body = api.call(method, path, {} if method in ("POST", "PATCH") else None)
            assert status == 403, (user, method, path, status, body)

    scoped = lab.api("kythuat-daron")
    _, inv = scoped.call("GET", "/api/v1/inventory")
    assert {d["commune"] for d in inv["devices"]} == {"da-ron"}
    assert {c["id"] for c in inv["communes"]} == {"da-ron"}
    assert scoped.call("GET", "/api/v1/inventory/devices/tt-ap-01")[0] == 404
    assert scoped.call("POST", "/api/v1/inventory/devices/tt-ap-01/decommission")[0] == 404
    new = {"id": "tt-cam-13", "kind": "camera", "commune": "tu-tra", "site": "tt-diem-12"}
    assert scoped.call("POST", "/api/v1/inventory/devices", new)[0] == 403
    assert (
        scoped.call(
            "POST", "/api/v1/inventory/devices/dr-cam-01/move", {"commune": "tu-tra", "site": "tt-diem-01"}
        )[0]
        == 403
    )

    tech = lab.api("kythuat")
    taken = {"id": "dr-cam-01", "kind": "camera", "commune": "da-ron", "site": "dr-diem-01"}
    assert tech.call("POST", "/api/v1/inventory/devices", taken)[0] == 409
    status, body = tech.call(
        "POST", "/api/v1/inventory/devices", taken | {"id": "dr-cam-14", "site": "nowhere"}
    )
    assert status == 422 and "unknown site nowhere" in body["detail"]
    status, body = tech.call(
        "POST", "/api/v1/inventory/devices", taken | {"id": "dr-cam-14", "camera_url": "not a url"}
    )
    assert status == 422 and "camera URL" in body["detail"]
    _, inv = tech.call("GET", "/api/v1/inventory")
    assert "dr-cam-14" not in {d["id"] for d in inv["devices"]}, "a refused device was stored"


def test_the_command_line_adds_lists_exports_imports_and_decommissions(lab: Lab, tmp_path: Path) -> None:
    """docs/onboarding.md's commands, as printed there (with this lab's URL and token)."""
    env = dict(os.environ, CIOT_API_TOKEN=lab.tokens["kythuat"], CIOT_API_URL=lab.cloud.url)

    def run(*args: str) -> str:
        argv = [sys.executable, "-m", "commune_iot", "inventory", *args]
        res = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res
        return res.stdout

    (tmp_path / "cam.pw").write_text("m4t-khau\n")
    said = run(
        "add", "dr-cam-31", "--kind", "camera", "--commune", "da-ron", "--site", "dr-diem-31",
        "--site-name", "Cổng chợ mới", "--camera-url", "rtsp://192.168.1.64:554/Streaming/Channels/102",
        "--camera-password-file", "cam.pw", "--out", "bundles/",
    )  # fmt: skip
    assert "device dr-cam-31 (camera) on board dr-cam-31 at dr-diem-31 (da-ron): never_seen" in said
    zip_path = tmp_path / "bundles" / "ciot-dr-cam-31.zip"
    assert zip_path.stat().st_mode & 0o077 == 0  # it holds the board's password
    assert zipfile.ZipFile(zip_path).read("dr-cam-31/camera.password") == b"m4t-khau\n"
    assert re.search(
        r"^dr-cam-31 +camera +dr-cam-31 +da-ron +dr-diem-31 +never_seen$",
        run("list", "--commune", "da-ron"),
        flags=re.M,
    )
    run("rename", "dr-cam-31", "--name", "Camera cổng chợ mới")
    run("move", "dr-cam-31", "--commune", "da-ron", "--site", "dr-diem-12")

    config = str(lab.cloud.config_path)
    run("export", "inventory.yaml", "--config", config)
    exported = yaml.safe_load((tmp_path / "inventory.yaml").read_text(encoding="utf-8"))
    mine = next(d for d in exported["devices"] if d["id"] == "dr-cam-31")
    assert mine["name"] == "Camera cổng chợ mới" and mine["site"] == "dr-diem-12"
    assert mine["camera_url"] == "rtsp://192.168.1.64:554/Streaming/Channels/102"
    assert "added nothing; updated nothing" in run("import", "inventory.yaml", "--config", config)

    said = run("decommission", "dr-cam-31", "--yes")
    assert "board dr-cam-31: credentials revoked" in said
    assert "dr-cam-31:" not in (lab.broker.auth / "passwd").read_text()
