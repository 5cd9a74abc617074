"""docker-compose cannot run here (no Docker engine), so these keep it correct by reading:
every file it mounts or builds from exists, images are pinned, secrets come from .env, and
every CIOT_CLOUD_* variable it sets is a real setting of the cloud service."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.config import CloudConfig

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = COMPOSE["services"]
    return services


def test_compose_has_the_cloud_side() -> None:
    assert set(_services()) == {"mosquitto", "influxdb", "grafana", "cloud"}


@pytest.mark.parametrize("name", sorted(_services()))
def test_every_mounted_host_path_exists(name: str) -> None:
    for volume in _services()[name].get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith((".", "/")):
            assert (REPO / source).exists(), f"{name} mounts missing {source}"
        else:
            assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"


def test_cloud_image_builds_from_files_that_exist() -> None:
    build = _services()["cloud"]["build"]
    dockerfile = REPO / build["context"] / build["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), f"Dockerfile copies missing {src}"


@pytest.mark.parametrize("name", ["mosquitto", "influxdb", "grafana"])
def test_images_are_pinned(name: str) -> None:
    image = _services()[name]["image"]
    assert re.search(r":\d+(\.\d+)+$", image), f"{name} image {image} is not pinned to a version"


def test_influxdb_image_serves_the_v1_api() -> None:
    assert _services()["influxdb"]["image"].startswith("influxdb:1.")


def test_ports_are_published_on_loopback_only() -> None:
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_secrets_come_from_the_environment() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for key in re.findall(r"(\w*PASSWORD\w*):\s*(\S+)", text):
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
