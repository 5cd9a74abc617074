"""Configuration sources and inventory validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cloud.config import REPO_ROOT, CloudConfig, load_config
from cloud.inventory import load_inventory

INVENTORY = REPO_ROOT / "firmware_config" / "inventory.yaml"


def test_sample_config_loads_with_paths_relative_to_it() -> None:
    cfg = load_config(REPO_ROOT / "cloud" / "sample.yaml")
    assert cfg.inventory.resolve() == INVENTORY.resolve()
    assert cfg.influx.precision == "ms"
    assert cfg.mqtt.session_expiry_s > 0
    assert cfg.sql.url.startswith("sqlite:////")  # made absolute


def test_env_overrides_yaml_and_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "influx.pw"
    secret.write_text("s3cret\n")
    conf = tmp_path / "cloud.yaml"
    conf.write_text(yaml.safe_dump({"influx": {"database": "from_yaml", "password_file": str(secret)}}))
    monkeypatch.setenv("CIOT_CLOUD_CONFIG", str(conf))
    monkeypatch.setenv("CIOT_CLOUD_MQTT__URL", "mqtt://broker.example:1884")
    cfg = load_config()
    assert cfg.influx.database == "from_yaml"
    assert cfg.influx.password_value() == "s3cret"
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("broker.example", 1884)
    monkeypatch.setenv("CIOT_CLOUD_INFLUX__PASSWORD", "inline")
    monkeypatch.setenv("CIOT_CLOUD_INFLUX__PASSWORD_FILE", "")
    assert load_config().influx.password_value() == "inline"
    assert "inline" not in repr(load_config())  # secrets never printed


def test_invalid_values_refused(tmp_path: Path) -> None:
    conf = tmp_path / "cloud.yaml"
    conf.write_text(yaml.safe_dump({"mqtt": {"session_expiry_s": 0}}))
    with pytest.raises(ValueError, match="session_expiry_s"):
        load_config(conf)
    conf.write_text(yaml.safe_dump({"mqtt": {"sesion_expiry_s": 5}}))  # typo
    with pytest.raises(ValueError, match="sesion_expiry_s"):
        load_config(conf)


def test_every_field_documented() -> None:
    def walk(model: type[CloudConfig] | type[object], prefix: str = "") -> list[str]:
        missing = []
        for name, f in getattr(model, "model_fields", {}).items():
            if not f.description:
                missing.append(prefix + name)
            ann = f.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                missing += walk(ann, f"{prefix}{name}.")
        return missing

    assert walk(CloudConfig) == []


def test_pilot_inventory_counts_and_lookups() -> None:
    inv = load_inventory(INVENTORY)
    assert inv.counts() == {"ap": 35, "camera": 24}
    assert {c.id for c in inv.communes} == {"da-ron", "tu-tra", "lac-xuan"}
    node = inv.node("tt-cam-01")
    assert node is not None and node.commune == "tu-tra"
    assert inv.node_kind("tt-cam-01") == "camera"
    assert inv.node("nope") is None


def test_broken_inventory_reports_every_problem(tmp_path: Path) -> None:
    data = yaml.safe_load(INVENTORY.read_text())
    data["devices"].append(dict(data["devices"][0]))  # duplicate id
    data["devices"][1]["node"] = "ghost-node"
    data["nodes"][2]["site"] = "nowhere"
    bad = tmp_path / "inventory.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValueError) as err:
        load_inventory(bad)
    text = str(err.value)
    assert "duplicate devices ids: dr-ap-01" in text
    assert "unknown node ghost-node" in text
    assert "unknown site nowhere" in text


def test_mqtt_cluster_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "cloud1.commune.vn")
    cfg = CloudConfig(mqtt={"urls": ["mqtt://n1:1883", "mqtt://n2:1883"], "protocol": "3.1.1"}).mqtt
    assert cfg.endpoints == ["mqtt://n1:1883", "mqtt://n2:1883"] and (cfg.host, cfg.port) == ("n1", 1883)
    # NATS refuses '.' in topics, and the worker's presence topic carries its id
    assert cfg.effective_client_id("ingest") == "ciot-cloud-cloud1-commune-vn-ingest"
    assert CloudConfig().mqtt.effective_client_id("ingest") == "ciot-cloud-cloud1.commune.vn-ingest"
    for mqtt, words in [
        ({"protocol": "3.1.1", "share_group": "g"}, "share_group needs MQTT 5"),
        ({"protocol": "3.1.1", "client_id": "cloud.1"}, "no '.' or ' ' with protocol 3.1.1"),
        ({"url": "mqtt://n9:1883", "urls": ["mqtt://n1:1883"]}, "not one of mqtt.urls"),
        ({"url": "mqtts://n1:8883"}, "expected mqtt://host:port"),
    ]:
        with pytest.raises(ValueError, match=words):
            CloudConfig(mqtt=mqtt)
