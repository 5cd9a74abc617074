"""Configuration: YAML, environment overrides, and errors a technician can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.collectors.sim_ap import SimAPOptions
from edge.collectors.sim_camera import SimCameraOptions
from edge.config import ConfigError, EdgeConfig, load_config

SAMPLE = Path(__file__).resolve().parents[2] / "edge" / "sample.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CIOT_EDGE_"):
            monkeypatch.delenv(key)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return path


def test_sample_config_is_valid_and_documents_defaults() -> None:
    cfg = load_config(SAMPLE)
    assert (cfg.node, cfg.commune, cfg.site) == ("tt-ap-03", "tu-tra", "tt-thon-03")
    # the shipped 3G profile (docs/field.md): the keepalive (Will after 12 s) is the liveness
    # path, so health and readings can be rare; the agent's own default stays 10 s
    assert cfg.broker.keepalive_s == 8 and cfg.health_interval_s == 300
    assert cfg.collectors[0].options.interval_s == 300  # type: ignore[attr-defined]
    assert EdgeConfig.model_fields["health_interval_s"].default == 10
    # what the provisioning bundles ship is the same profile
    from commune_iot.provision import bundle

    assert (cfg.health_interval_s, cfg.broker.keepalive_s) == (bundle.HEALTH_INTERVAL_S, bundle.KEEPALIVE_S)
    assert cfg.broker.check_link_s == bundle.CHECK_LINK_S  # beats between link checks
    assert cfg.collectors[0].options.interval_s == bundle.COLLECTOR_INTERVAL_S  # type: ignore[attr-defined]
    assert cfg.outbox.sync == "full"
    assert isinstance(cfg.collectors[0].options, SimAPOptions)
    assert cfg.devices == ["tt-ap-03"]
    # Every field carries a description (the sample and docs are written from them).
    for model in (EdgeConfig, type(cfg.broker), type(cfg.outbox), type(cfg.log)):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_env_overrides_yaml_field_by_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path,
        "node: dr-cam-01\ncommune: da-ron\nbroker:\n  url: mqtt://10.0.0.5:1883\n  username: dr-cam-01\n"
        "collectors:\n  - type: sim_camera\n    events_per_hour: 12\n",
    )
    monkeypatch.setenv("CIOT_EDGE_BROKER__PASSWORD", "s3cret")
    monkeypatch.setenv("CIOT_EDGE_HEALTH_INTERVAL_S", "2.5")
    monkeypatch.setenv("CIOT_EDGE_OUTBOX__MAX_MESSAGES", "1000")
    cfg = load_config(path)
    assert cfg.broker.url == "mqtt://10.0.0.5:1883"  # from the file
    assert cfg.broker.username == "dr-cam-01"
    assert cfg.broker.secret() == "s3cret"  # from the environment, nested
    assert "s3cret" not in repr(cfg)
    assert cfg.health_interval_s == 2.5
    assert cfg.outbox.max_messages == 1000
    assert cfg.client_id == "dr-cam-01"
    opts = cfg.collectors[0].options
    assert isinstance(opts, SimCameraOptions) and opts.events_per_hour == 12


def test_a_cluster_is_a_list_of_brokers_in_one_mqtt_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(
        tmp_path,
        "node: a\ncommune: b\nbroker:\n  urls: [mqtt://n1:1883, mqtt://n2:1883]\n  protocol: 3.1.1\n",
    )
    cfg = load_config(path).broker
    assert cfg.endpoints == ["mqtt://n1:1883", "mqtt://n2:1883"] and cfg.protocol == "3.1.1"
    assert (cfg.url, cfg.host) == ("mqtt://n1:1883", "n1")  # url: the first, for what names one broker
    monkeypatch.setenv("CIOT_EDGE_BROKER__URLS", '["mqtt://n3:1883"]')
    assert load_config(path).broker.endpoints == ["mqtt://n3:1883"]
    monkeypatch.delenv("CIOT_EDGE_BROKER__URLS")
    plain = load_config(_write(tmp_path, "node: a\ncommune: b\nbroker:\n  protocol: 5\n")).broker
    assert plain.endpoints == ["mqtt://127.0.0.1:1883"] and plain.protocol == "5"  # YAML's number 5


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "node: lx-ap-01\ncommune: lac-xuan\n")
    monkeypatch.setenv("CIOT_EDGE_CONFIG", str(path))
    assert load_config(None).node == "lx-ap-01"


def test_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    path = _write(tmp_path, f"node: a\ncommune: b\nbroker:\n  password_file: {secret}\n")
    assert load_config(path).broker.secret() == "from-file"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "node: a\ncommune: b\nbroker:\n  keepalive_s: -1\n",
            ["broker.keepalive_s", "greater than or equal to 2"],
        ),
        ("node: a\ncommune: b\nbroker:\n  url: http://x\n", ["broker.url", "mqtt://host:port"]),
        (
            "node: a\ncommune: b\nbroker:\n  pasword: x\n",
            ["broker.pasword", "Extra inputs are not permitted"],
        ),
        ("commune: b\n", ["node: Field required", "CIOT_EDGE_NODE"]),
        ("node: Bad Id\ncommune: b\n", ["node", "should match pattern"]),
        ("node: a\ncommune: b\noutbox:\n  sync: sometimes\n", ["outbox.sync", "'full' or 'normal'"]),
        (
            "node: a\ncommune: b\ncollectors:\n  - type: snmp_magic\n",
            ["collectors[0]", "unknown collector type"],
        ),
        (
            "node: a\ncommune: b\ncollectors:\n  - type: sim_ap\n    interval_s: 0\n",
            ["collectors[0] (sim_ap): interval_s", "greater than 0"],
        ),
        (
            "node: a\ncommune: b\nbroker:\n  urls: [mqtt://n1:1883, mqtts://n2:8883]\n",
            ["broker.urls", "one cluster, one scheme"],
        ),
        (
            "node: a\ncommune: b\nbroker:\n  url: mqtt://n9:1883\n  urls: [mqtt://n1:1883]\n",
            ["broker.url 'mqtt://n9:1883' is not one of broker.urls"],
        ),
        ("node: a\ncommune: b\nbroker:\n  protocol: 4\n", ["broker.protocol", "'5' or '3.1.1'"]),
        ("node: a\ncommune: b\nbroker: [\n", ["not valid YAML", "line"]),
        ("- just\n- a list\n", ["expected a mapping"]),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_run_from_config_exits_2_on_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.runtime import run_from_config

    assert run_from_config(_write(tmp_path, "node: a\n")) == 2
    assert "commune: Field required" in capsys.readouterr().err
