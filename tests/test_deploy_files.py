"""docker-compose cannot run here (no Docker engine), so these keep it correct by reading:
every file it mounts or builds from exists, images are pinned, secrets come from .env, and
every CIOT_CLOUD_* variable it sets is a real setting of the cloud service."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.config import CloudConfig

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
#: Host paths that ``commune-iot provision`` creates before ``docker compose up`` (not in git).
PROVISIONED = ("./var/broker", "./var/secrets/")


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = COMPOSE["services"]
    return services


def test_compose_has_the_cloud_side() -> None:
    assert set(_services()) == {"mosquitto", "influxdb", "grafana", "cloud"}


@pytest.mark.parametrize("name", sorted(_services()))
def test_every_mounted_host_path_exists(name: str) -> None:
    for volume in _services()[name].get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith(PROVISIONED):
            continue  # made by `commune-iot provision` (test_compose_runs_the_secure_broker)
        if source.startswith((".", "/")):
            assert (REPO / source).exists(), f"{name} mounts missing {source}"
        else:
            assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"


def test_cloud_image_builds_from_files_that_exist() -> None:
    build = _services()["cloud"]["build"]
    dockerfile = REPO / build["context"] / build["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and not line.startswith("COPY --from="):  # --from: a build stage
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), f"Dockerfile copies missing {src}"


@pytest.mark.parametrize("name", ["mosquitto", "influxdb", "grafana"])
def test_images_are_pinned(name: str) -> None:
    image = _services()[name]["image"]
    assert re.search(r":\d+(\.\d+)+$", image), f"{name} image {image} is not pinned to a version"


def test_influxdb_image_serves_the_v1_api() -> None:
    assert _services()["influxdb"]["image"].startswith("influxdb:1.")


def test_ports_are_published_on_loopback_only() -> None:
    """Except the broker's TLS listener, which the boards reach over public networks."""
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            if name == "mosquitto" and port == "8883:8883":
                continue
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_runs_the_secure_broker() -> None:
    mosq = _services()["mosquitto"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in mosq["volumes"]}
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./firmware_config/mosquitto/mosquitto-secure.conf"
    conf = (REPO / "firmware_config/mosquitto/mosquitto-secure.conf").read_text()
    # every file the secure config reads lives in the mounted auth directory
    for key in ("password_file", "acl_file", "cafile", "certfile", "keyfile"):
        (path,) = re.findall(rf"^{key}\s+(\S+)$", conf, flags=re.M)
        assert path.startswith("/mosquitto/config/auth/"), (key, path)
    assert mounts["/mosquitto/config/auth"] == "./var/broker"
    assert "allow_anonymous false" in conf
    # boards: TLS 8883 only; the plain authenticated 1883 is never published
    assert mosq["ports"] == ["8883:8883"]


def test_cloud_gets_its_mqtt_password_from_a_secret_file() -> None:
    cloud = _services()["cloud"]
    env = cloud["environment"]
    user = env["CIOT_CLOUD_MQTT__USERNAME"]
    assert user.startswith("ciot-cloud")  # the ACL's cloud users (commune_iot/provision)
    assert "CIOT_CLOUD_MQTT__PASSWORD" not in env
    assert cloud["secrets"] == ["mqtt_password"]
    assert env["CIOT_CLOUD_MQTT__PASSWORD_FILE"] == "/run/secrets/mqtt_password"
    # the file `commune-iot provision --cloud-user <user> --out var/secrets` writes
    assert COMPOSE["secrets"]["mqtt_password"]["file"] == f"./var/secrets/{user}.password"


def _broker_dir_line() -> str:
    """The one command that makes ``var/broker``, the same in every document that prints it."""
    docs = [REPO / "README.md", REPO / "firmware_config/mosquitto/README.md", REPO / "docker-compose.yml"]
    lines = {
        re.sub(r"^#\s*", "", line).split("   #")[0].strip()
        for doc in docs
        for line in doc.read_text().splitlines()
        if "install -d" in line
    }
    assert len(lines) == 1, lines
    return lines.pop()


def test_provision_writes_what_compose_mounts(tmp_path: Path) -> None:
    """The documented commands, run for real, create exactly the files compose expects, each
    readable by the broker's user in the image (uid/gid 1883: through the group) and by no
    one else; the CA's key not even by the broker."""
    from commune_iot.cli import main as cli

    make_dir = _broker_dir_line()
    assert make_dir == 'mkdir -p var && sudo install -d -o "$USER" -g 1883 -m 2750 var/broker'
    if os.geteuid() != 0:
        pytest.skip("makes a directory of group 1883 (CI runs as root)")
    env = dict(os.environ, USER="root")
    subprocess.run(["sh", "-c", make_dir.replace("sudo ", "")], cwd=tmp_path, env=env, check=True)

    broker, secrets = tmp_path / "var/broker", tmp_path / "var/secrets"
    assert cli(["provision", "--ca", "--host", "mqtt.example.vn", "--broker-dir", str(broker)]) == 0
    user = _services()["cloud"]["environment"]["CIOT_CLOUD_MQTT__USERNAME"]
    assert cli(["provision", "--cloud-user", user, "--broker-dir", str(broker), "--out", str(secrets)]) == 0
    secret = COMPOSE["secrets"]["mqtt_password"]["file"]
    assert (tmp_path / secret).read_text().strip()
    assert (tmp_path / secret).stat().st_mode & 0o077 == 0
    conf = (REPO / "firmware_config/mosquitto/mosquitto-secure.conf").read_text()
    for path in re.findall(r"^(?:password_file|acl_file|cafile|certfile|keyfile)\s+(\S+)$", conf, flags=re.M):
        st = (broker / path.removeprefix("/mosquitto/config/auth/")).stat()
        assert (st.st_gid, st.st_mode & 0o777) == (1883, 0o640), path
    assert (broker / "ca.key").stat().st_mode & 0o777 == 0o600


def test_secrets_come_from_the_environment() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for key in re.findall(r"(\w*PASSWORD\w*):\s*(\S+)", text):
        if key[0].endswith("_FILE"):  # where a secret file is mounted, not a secret
            assert key[1].startswith("/run/secrets/"), key
            continue
        assert key[1].startswith("${") and ":?" in key[1], f"{key[0]} must be required from .env"


def test_cloud_environment_names_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: str(v) for k, v in _services()["cloud"]["environment"].items()}
    for key, value in env.items():
        if "${" in value:
            env[key] = "from-env-file"
    for key in list(os.environ):
        if key.startswith("CIOT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = CloudConfig()
    assert cfg.mqtt.url == "mqtt://mosquitto:1883"
    assert cfg.mqtt.username == "ciot-cloud-1"
    assert str(cfg.mqtt.password_file) == "/run/secrets/mqtt_password"
    assert cfg.influx.url == "http://influxdb:8086"
    assert cfg.influx.password_value() == "from-env-file"
    assert cfg.http.host == "0.0.0.0" and cfg.http.port == 8000
    assert str(cfg.inventory) == "/etc/commune-iot/inventory.yaml"
    assert str(cfg.influx.spool_dir).startswith("/var/lib/commune-iot")


def test_broker_config_sets_queue_limits_deliberately() -> None:
    conf = (REPO / "firmware_config" / "mosquitto" / "mosquitto.conf").read_text()
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#")
    )
    assert int(settings["max_queued_messages"]) >= 1_000_000
    assert "max_inflight_messages" in settings
    assert settings["persistence"] == "true"


def test_grafana_provisioning_reads_credentials_from_environment() -> None:
    ds = yaml.safe_load((REPO / "dashboards/provisioning/datasources/influxdb.yaml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "influxdb" and source["url"] == "$INFLUX_URL"
    assert source["secureJsonData"]["basicAuthPassword"] == "$INFLUX_PASSWORD"
    env = _services()["grafana"]["environment"]
    assert {"INFLUX_URL", "INFLUX_DB", "INFLUX_USER", "INFLUX_PASSWORD"} <= set(env)
