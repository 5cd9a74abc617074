"""What the onboarding service says and puts in a bundle when the broker is not (fully) there:
no broker_admin, a reload that fails, a watcher that never answers; the collector built
from the technician's answers; bundles that expire; a board moved to another commune.
The broker's files are real (written by the same code as `commune-iot provision`); the
running broker is the live tests' (test_onboarding_live.py)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.config import load_config
from cloud.onboarding.bundles import BundleError, Collector, bundle_id, public_camera_url, unseal
from cloud.onboarding.live import LiveInventory
from cloud.onboarding.service import Gone, Onboarding
from cloud.onboarding.store import NewDevice, bundles
from cloud.storage.sql import SqlStore
from commune_iot.cli import main as cli
from commune_iot.provision.bundle import CHECK_LINK_S, KEEPALIVE_S

YAML = Path(__file__).resolve().parents[2] / "firmware_config" / "inventory.yaml"


@pytest.fixture
def sql(sql_url: str) -> Iterator[SqlStore]:
    store = SqlStore(sql_url)
    yield store
    store.dispose()


def _service(sql: SqlStore, tmp_path: Path, **broker_admin: Any) -> Onboarding:
    cfg = load_config(None, broker_admin=broker_admin)
    return Onboarding(cfg, LiveInventory.open(sql.engine, YAML))


def _broker_dir(tmp_path: Path) -> Path:
    auth = tmp_path / "auth"
    assert cli(["provision", "--ca", "--host", "127.0.0.1", "--broker-dir", str(auth)]) == 0
    return auth


def _unzip(data: bytes) -> dict[str, tuple[bytes, int]]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return {i.filename.split("/", 1)[1]: (z.read(i), (i.external_attr >> 16) & 0o777) for i in z.infolist()}


def test_without_broker_admin_devices_are_added_and_decommissioned_with_what_to_do(
    sql: SqlStore, tmp_path: Path
) -> None:
    svc = _service(sql, tmp_path)
    out = svc.add(
        NewDevice("dr-cam-13", "camera", "da-ron", "dr-diem-12"), Collector("camera", "dr-cam-13"), "t"
    )
    assert out.new_board and out.bundle is None
    assert "broker_admin.dir is not set" in out.warnings[0]
    assert svc.live.inventory.node("dr-cam-13") is not None  # never seen, waiting for credentials
    done = svc.decommission("dr-cam-13", "t")
    assert done.board_retired and not done.revoked and "revoke board dr-cam-13 by hand" in done.warnings[0]


def test_a_failed_reload_still_issues_the_bundle_and_says_to_reload(sql: SqlStore, tmp_path: Path) -> None:
    auth = _broker_dir(tmp_path)
    board_url = "mqtts://127.0.0.1:8883"
    svc = _service(sql, tmp_path, dir=str(auth), reload_command="false", board_url=board_url)
    out = svc.add(
        NewDevice("dr-cam-13", "camera", "da-ron", "dr-diem-12"), Collector("camera", "dr-cam-13"), "t"
    )
    assert (
        out.bundle is not None and "`false` failed" in out.warnings[0] and "reload by hand" in out.warnings[0]
    )
    assert (auth / "passwd").read_text().startswith("dr-cam-13:")  # the files are right already
    # a watcher that never answers: said, not hidden
    svc = _service(
        sql,
        tmp_path,
        dir=str(auth),
        board_url=board_url,
        reload_request_file=str(auth / "reload.request"),
        reload_ack_file=str(tmp_path / "ack"),
        reload_timeout_s=0.3,
    )
    out = svc.reissue("dr-cam-13", "t")
    assert out.bundle is not None and "did not acknowledge within 0.3 s" in out.warnings[0]
    assert (auth / "reload.request").read_text().strip().isdigit()


def test_the_bundle_carries_the_collector_and_its_secret_never_the_cloud(
    sql: SqlStore, tmp_path: Path
) -> None:
    auth = _broker_dir(tmp_path)
    svc = _service(sql, tmp_path, dir=str(auth), reload_command="true", board_url="mqtts://127.0.0.1:8883")
    url = "rtsp://viewer:m%40t-khau@192.168.1.64:554/Streaming/Channels/102"
    clean, user, password = public_camera_url(url)
    assert (clean, user, password) == ("rtsp://192.168.1.64:554/Streaming/Channels/102", "viewer", "m@t-khau")
    new = NewDevice("dr-cam-13", "camera", "da-ron", "dr-diem-12", extra={"camera_url": clean})
    out = svc.add(new, Collector("camera", "dr-cam-13", camera_url=url), "t")
    assert out.bundle is not None and not out.warnings
    row = svc.store.bundle(bundle_id(out.bundle.token))
    assert row is not None and row.sealed is None  # bundle() never returns the sealed copy
    with svc.store.engine.connect() as conn:
        sealed = conn.execute(bundles.select()).one().sealed
    assert "m@t-khau" not in sealed and unseal("A" * 43, sealed) is None  # only the link's token opens it

    _, data = svc.download(out.bundle.token, "t")
    files = _unzip(data)
    cfg = yaml.safe_load(files["edge.yaml"][0])
    assert cfg["collectors"] == [
        {
            "type": "camera",
            "device": "dr-cam-13",
            "url": clean,
            "interval_s": 300,
            "username": "viewer",
            "password_file": "/etc/commune-iot/camera.password",
        }
    ]
    assert (cfg["node"], cfg["commune"], cfg["site"]) == ("dr-cam-13", "da-ron", "dr-diem-12")
    # the shipped 3G profile (docs/field.md): rare health, the keepalive is the liveness path
    assert (cfg["health_interval_s"], cfg["broker"]["keepalive_s"]) == (300, KEEPALIVE_S)
    assert cfg["broker"]["check_link_s"] == CHECK_LINK_S  # beats keep the keepalive (edge/keepalive.py)
    # and no TCP timestamps on the board (12 bytes a packet, docs/field.md)
    assert b"net.ipv4.tcp_timestamps = 0" in files["90-commune-iot-uplink.conf"][0]
    assert "sysctl -q -p /etc/sysctl.d/90-commune-iot-uplink.conf" in files["INSTALL.sh"][0].decode()
    assert files["camera.password"] == (b"m@t-khau\n", 0o600)
    assert files["mqtt.password"][1] == 0o600
    assert (
        "install -o ciot -g ciot -m 0400 camera.password /etc/commune-iot/camera.password"
        in files["INSTALL.sh"][0].decode()
    )
    with pytest.raises(Gone, match="downloaded already"):
        svc.download(out.bundle.token, "t")

    # an AP: the SNMP collector with the community in a file; without one, refused before any change
    v = svc.store.version()
    with pytest.raises(BundleError, match="SNMP community"):
        svc.add(
            NewDevice("lx-ap-21", "ap", "lac-xuan", "lx-thon-01"),
            Collector("ap", "lx-ap-21", ap_host="10.0.3.2"),
            "t",
        )
    assert svc.store.version() == v
    out = svc.add(
        NewDevice("lx-ap-21", "ap", "lac-xuan", "lx-thon-01"),
        Collector("ap", "lx-ap-21", ap_host="10.0.3.2", ap_profile="routeros", snmp_community="c0ng-d0ng"),
        "t",
    )
    assert out.bundle is not None
    files = _unzip(svc.download(out.bundle.token, "t")[1])
    (spec,) = yaml.safe_load(files["edge.yaml"][0])["collectors"]
    assert (
        spec["type"] == "snmp_ap"
        and spec["interval_s"] == 300
        and spec["aps"] == [{"device": "lx-ap-21", "host": "10.0.3.2"}]
    )
    assert (
        spec["profile"] == "routeros" and spec["snmp"]["community_file"] == "/etc/commune-iot/snmp-community"
    )
    assert files["snmp-community"] == (b"c0ng-d0ng\n", 0o600)


def test_bundles_expire_unread_and_a_move_to_another_commune_gets_a_new_one(
    sql: SqlStore, tmp_path: Path
) -> None:
    auth = _broker_dir(tmp_path)
    svc = _service(
        sql,
        tmp_path,
        dir=str(auth),
        reload_command="true",
        board_url="mqtts://127.0.0.1:8883",
        bundle_ttl_s=0.001,
    )
    out = svc.add(
        NewDevice("dr-cam-13", "camera", "da-ron", "dr-diem-12"), Collector("camera", "dr-cam-13"), "t"
    )
    assert out.bundle is not None
    assert svc.expire() == 1
    with pytest.raises(Gone, match="expired unread"):
        svc.download(out.bundle.token, "t")

    moved, how = svc.move("dr-cam-13", "tu-tra", "tt-diem-12", "t")
    assert how.from_commune == "da-ron" and moved.bundle is not None
    assert "now belongs to tu-tra" in moved.warnings[0]
    acl = (auth / "acl").read_text()
    assert "topic write ciot/v1/tu-tra/dr-cam-13/status" in acl and "ciot/v1/da-ron/dr-cam-13/" not in acl
    within, _ = svc.move("dr-cam-13", "tu-tra", "tt-diem-11", "t")
    assert within.bundle is None and not within.warnings  # same commune: tags only
