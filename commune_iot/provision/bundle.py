"""What to copy onto a board: its edge config, MQTT password, the CA and the systemd unit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "firmware_config" / "systemd" / "commune-iot-edge.service"
ETC = "/etc/commune-iot"

INSTALL = """\
# Install on the board {node} (as root), from this directory:
useradd --system --home /var/lib/commune-iot --shell /usr/sbin/nologin ciot || true
install -d -o ciot -g ciot -m 0750 /var/lib/commune-iot
install -d -o root -g ciot -m 0750 {etc}
install -o root -g ciot -m 0640 edge.yaml ca.crt {etc}/
install -o ciot -g ciot -m 0400 mqtt.password {etc}/mqtt.password
install -m 0644 commune-iot-edge.service /etc/systemd/system/
systemctl daemon-reload && systemctl enable --now commune-iot-edge
# Then add the board's collector (camera or SNMP) to {etc}/edge.yaml: see edge/sample.yaml.
"""


def edge_yaml(node: str, commune: str, site: str, broker_url: str) -> dict[str, Any]:
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
) -> Path:
    d = out / node
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    cfg = edge_yaml(node, commune, site, broker_url)
    header = f"# Edge agent of board {node} ({commune}, {site}); devices: {', '.join(devices)}.\n"
    (d / "edge.yaml").write_text(
        header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    fd = os.open(d / "mqtt.password", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    (d / "ca.crt").write_text(ca_pem, encoding="utf-8")
    shutil.copyfile(UNIT, d / UNIT.name)
    (d / "INSTALL.sh").write_text(INSTALL.format(node=node, etc=ETC), encoding="utf-8")
    return d
