"""The plug-in's configuration as a technician writes it: the sample loads, mistakes are named,
and every vendor profile file is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from snmp_helpers import REPO

from edge.collectors.snmp.client import Credentials
from edge.collectors.snmp.collector import ApSpec, SnmpApOptions
from edge.collectors.snmp.profile import builtin_profiles, candidates
from edge.config import ConfigError, load_config

SAMPLE = REPO / "edge" / "collectors" / "snmp" / "sample.yaml"


def test_sample_loads_and_the_board_announces_every_ap() -> None:
    cfg = load_config(SAMPLE)
    opts = cfg.collectors[0].options
    assert isinstance(opts, SnmpApOptions)
    assert [a.device for a in opts.aps] == ["lx-ap-11", "lx-ap-12"]
    assert cfg.devices == ["lx-ap-11", "lx-ap-12"]  # listed in the birth message
    assert opts.deadline == 20.0 and opts.ping == "on_failure"
    assert (
        opts.snmp is not None and opts.snmp.version == "3" and opts.snmp.priv_key_env == "CIOT_SNMP_PRIV_KEY"
    )
    for model in (SnmpApOptions, ApSpec, Credentials):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def _config(tmp_path: Path, collector: str) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(f"node: lx-nvh-11\ncommune: lac-xuan\ncollectors:\n  - type: snmp_ap\n{collector}")
    return path


@pytest.mark.parametrize(
    ("collector", "message"),
    [
        ("    profile: acme\n    snmp: {community: x}\n    aps: [{device: lx-ap-11, host: 10.0.3.2}]\n",
         "unknown SNMP profile 'acme'"),
        ("    aps: [{device: lx-ap-11, host: 10.0.3.2}]\n", "AP lx-ap-11: no SNMP credentials"),
        ("    snmp: {version: '3', user: ciot}\n    aps: [{device: lx-ap-11, host: 10.0.3.2}]\n",
         "SNMP v3 needs auth_key"),
        ("    snmp: {community: x}\n    aps: [{device: lx-ap-11, host: a}, {device: lx-ap-11, host: b}]\n",
         "each AP needs its own device id"),
    ],
)  # fmt: skip
def test_mistakes_are_named(tmp_path: Path, collector: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, collector))


def test_secrets_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "community"
    secret.write_text("s3cret-community\n")
    from_file = Credentials(community_file=str(secret))
    assert from_file.auth_data().communityName == "s3cret-community"
    monkeypatch.setenv("CIOT_TEST_COMMUNITY", "from-env")
    assert Credentials(community_env="CIOT_TEST_COMMUNITY").auth_data().communityName == "from-env"
    assert "s3cret" not in repr(Credentials(community="s3cret"))  # type: ignore[arg-type]


def test_every_profile_file_is_valid_and_covers_the_vendors() -> None:
    profiles = builtin_profiles()
    assert set(profiles) >= {
        "unifi", "airmax", "routeros", "cisco-wlc", "aruba-instant", "zyxel-nwa", "zyxel-nxc",
        "cambium-epmp", "huawei-ac", "openwrt", "tplink-eap", "generic",
    }  # fmt: skip
    assert not profiles["generic"].knows_clients
    for p in profiles.values():
        assert p.notes, f"{p.name}: say where its OIDs come from"
        if p.name != "generic":
            assert p.knows_clients and (p.match.sys_object_id or p.match.sys_descr or p.match.probe_alone)
    # A TP-Link switch shares the enterprise number with the EAPs; its probe tells them apart.
    assert [p.name for _, p in candidates("1.3.6.1.4.1.11863.1.1.3", "JetStream 24-Port")][:1] == [
        "tplink-eap"
    ]
    assert profiles["tplink-eap"].match.probe
