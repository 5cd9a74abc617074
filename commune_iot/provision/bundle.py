"""What to copy onto a board: its edge config, MQTT password, the CA, the systemd unit, the
update launcher and, when given, the release it starts with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "firmware_config" / "systemd" / "commune-iot-edge.service"
LAUNCHER = ROOT / "firmware_config" / "launcher" / "ciot_launcher.py"
ETC = "/etc/commune-iot"
OPT = "/opt/commune-iot"
LIB = "/usr/local/lib/commune-iot"

INSTALL = """\
# Install on the board {node} (as root), from this directory (docs/updates.md):
useradd --system --home /var/lib/commune-iot --shell /usr/sbin/nologin ciot || true
install -d -o ciot -g ciot -m 0750 /var/lib/commune-iot
install -d -o ciot -g ciot -m 0755 {opt}
install -d -o root -g ciot -m 0750 {etc}
install -o root -g ciot -m 0640 edge.yaml ca.crt {etc}/
install -o ciot -g ciot -m 0400 mqtt.password {etc}/mqtt.password
install -D -o root -g root -m 0755 ciot_launcher.py {lib}/ciot_launcher.py
# The first version of the agent, from the release bundle in ./release (made with
# `commune-iot release build --deps ...`, so that it carries its dependencies' wheels):
python3 -m venv /tmp/ciot-setup
/tmp/ciot-setup/bin/pip install --no-index --find-links release 'commune-iot[edge]'
/tmp/ciot-setup/bin/commune-iot edge update --bundle release --first --root {opt} --config {etc}/edge.yaml
chown -R ciot:ciot {opt}
rm -rf /tmp/ciot-setup
install -m 0644 commune-iot-edge.service /etc/systemd/system/
systemctl daemon-reload && systemctl enable --now commune-iot-edge
# Then add the board's collector (camera or SNMP) to {etc}/edge.yaml: see edge/sample.yaml.
"""


def edge_yaml(node: str, commune: str, site: str, broker_url: str, update: dict[str, Any]) -> dict[str, Any]:
    return {
        "node": node,
        "commune": commune,
        "site": site,
        "broker": {
            "url": broker_url,
            "ca_file": f"{ETC}/ca.crt",
            "username": node,
            "password_file": f"{ETC}/mqtt.password",
        },
        "health_interval_s": 10,
        "outbox": {"path": "/var/lib/commune-iot/outbox.sqlite3"},
        "collectors": [],
        "log": {"level": "INFO", "json": True},
        "update": update,
    }


def write(
    out: Path,
    node: str,
    commune: str,
    site: str,
    devices: list[str],
    broker_url: str,
    password: str,
    ca_pem: str,
    *,
    update: dict[str, Any] | None = None,
    release: Path | None = None,
) -> Path:
    d = out / node
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    cfg = edge_yaml(node, commune, site, broker_url, update or {})
    header = f"# Edge agent of board {node} ({commune}, {site}); devices: {', '.join(devices)}.\n"
    (d / "edge.yaml").write_text(
        header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    fd = os.open(d / "mqtt.password", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    (d / "ca.crt").write_text(ca_pem, encoding="utf-8")
    shutil.copyfile(UNIT, d / UNIT.name)
    shutil.copyfile(LAUNCHER, d / LAUNCHER.name)
    if release is not None:
        shutil.rmtree(d / "release", ignore_errors=True)
        shutil.copytree(release, d / "release")
    (d / "INSTALL.sh").write_text(INSTALL.format(node=node, etc=ETC, opt=OPT, lib=LIB), encoding="utf-8")
    return d
