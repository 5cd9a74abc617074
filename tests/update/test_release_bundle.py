"""Release keys and bundles: what a board accepts, and what it and the cloud refuse."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from update_helpers import Bundles, installed

from cloud.fleet.releases import ReleaseStore
from commune_iot.release import keys
from commune_iot.release.build import default_version
from edge.update.apply import apply_bundle
from edge.update.config import UpdateConfig
from edge.update.install import make_stable
from edge.update.layout import Layout
from wire.release import MANIFEST, SIGNATURE, ReleaseError, key_id, public_key_text, sign, verify
from wire.version import __version__

ROOT = Path(__file__).resolve().parents[2]


def _copy(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    return dest


def test_keygen_keeps_the_private_key_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "k" / "release.key"
    key = keys.generate(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_key_text(key.public_key()) in (tmp_path / "k" / "release.key.pub").read_text()
    with pytest.raises(ReleaseError, match="never overwritten"):
        keys.generate(path)
    path.chmod(0o644)
    with pytest.raises(ReleaseError, match="readable by others"):
        keys.load(path)


def test_a_board_checks_the_signature_before_it_believes_the_manifest(bundles: Bundles) -> None:
    body, sig = (bundles.b / MANIFEST).read_bytes(), (bundles.b / SIGNATURE).read_bytes()
    manifest, signer = verify(body, sig, [bundles.public])
    assert manifest.project_file.name.startswith("commune_iot-") and manifest.version.endswith("+test.b")

    altered = body.replace(b'"size": ', b'"size": 1', 1)
    with pytest.raises(ReleaseError, match="bad signature"):
        verify(altered, sig, [bundles.public])
    other = keys.load(bundles.other_key)
    with pytest.raises(ReleaseError, match="none of them a trusted key"):
        verify(body, sign(body, [other]), [bundles.public])
    with pytest.raises(ReleaseError, match="no trusted release key"):
        verify(body, sig, [])

    # Key rotation: a bundle co-signed by the old and the new key passes on boards that
    # trust either; boards are moved to the new key before the old one is retired.
    both = sign(body, [keys.load(bundles.key), other])
    assert verify(body, both, [public_key_text(other.public_key())])[1] == key_id(other.public_key())
    assert verify(body, both, [bundles.public])[1] == signer


def test_publishing_refuses_what_a_board_would_refuse(bundles: Bundles, tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "releases", [bundles.public])
    tampered = _copy(bundles.b, tmp_path / "tampered")
    doc = json.loads((tampered / MANIFEST).read_text())
    doc["min_previous_version"] = "0.0.1"
    (tampered / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(ReleaseError, match="bad signature"):
        store.publish(tampered)

    short = _copy(bundles.b, tmp_path / "short")
    wheel = next(short.glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-1])
    with pytest.raises(ReleaseError, match="the manifest says"):
        store.publish(short)
    assert store.all() == []

    rel = store.publish(bundles.b)
    assert store.publish(bundles.b) == rel  # publishing twice is harmless
    changed = _copy(bundles.b, tmp_path / "changed")  # validly signed, but not what was published
    doc = json.loads((changed / MANIFEST).read_text())
    doc["created"] = "2020-01-01T00:00:00Z"
    body = json.dumps(doc).encode()
    (changed / MANIFEST).write_bytes(body)
    (changed / SIGNATURE).write_bytes(sign(body, [keys.load(bundles.key)]))
    with pytest.raises(ReleaseError, match="already published with other contents"):
        store.publish(changed)


def test_a_release_that_needs_a_newer_base_is_refused_before_anything_changes(
    bundles: Bundles, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "root")
    (layout.version_dir("0.0.9") / "venv" / "bin").mkdir(parents=True)
    make_stable(layout, "0.0.9")
    needs = _copy(bundles.b, tmp_path / "needs")
    doc = json.loads((needs / MANIFEST).read_text())
    doc["min_previous_version"] = "0.1.0"
    body = json.dumps(doc).encode()
    (needs / MANIFEST).write_bytes(body)
    (needs / SIGNATURE).write_bytes(sign(body, [keys.load(bundles.key)]))
    before = installed(layout.root)
    res = apply_bundle(needs, UpdateConfig(trusted_keys=[bundles.public]), layout)
    assert not res.ok and "needs at least 0.1.0 installed first; this board runs 0.0.9" in res.error
    assert installed(layout.root) == before
    assert layout.read_state()["last"]["state"] == "failed"  # for the next birth


def test_a_build_of_a_checkout_that_is_not_a_tagged_release_says_so() -> None:
    assert re.match(rf"^{re.escape(__version__)}(\+g[0-9a-f]{{8}}(\.dirty)?)?$", default_version(ROOT))


def test_a_provisioned_board_gets_the_launcher_its_keys_and_its_first_release(
    bundles: Bundles, tmp_path: Path
) -> None:
    from commune_iot.cli import main as cli
    from edge.config import load_config

    broker, out = tmp_path / "broker", tmp_path / "bundles"
    assert cli(["provision", "--ca", "--host", "mqtt.example.vn", "--broker-dir", str(broker)]) == 0
    pub = bundles.key.with_name(bundles.key.name + ".pub")  # as `release keygen` wrote it
    argv = ["provision", "dr-cam-01", "--broker-dir", str(broker), "--out", str(out)]
    argv += ["--broker-url", "mqtts://mqtt.example.vn:8883", "--update-url", "https://ciot.example.vn"]
    assert cli([*argv, "--release-key", str(pub), "--release", str(bundles.a)]) == 0
    board = out / "dr-cam-01"
    cfg = load_config(board / "edge.yaml")
    assert cfg.update.server_url == "https://ciot.example.vn" and cfg.update.trusted_keys == [bundles.public]
    assert (board / "ciot_launcher.py").read_bytes() == (
        ROOT / "firmware_config/launcher/ciot_launcher.py"
    ).read_bytes()
    assert (board / "release" / MANIFEST).read_bytes() == (bundles.a / MANIFEST).read_bytes()
    install = (board / "INSTALL.sh").read_text()
    assert "edge update --bundle release --first --root /opt/commune-iot" in install
    assert "ciot_launcher.py /usr/local/lib/commune-iot/ciot_launcher.py" in install
    assert cli([*argv, "--release-key", "not-a-key"]) == 2
    assert cli([*argv, "--update-url", "http://plain.example.vn"]) == 2
