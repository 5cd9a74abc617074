"""What to copy onto a board: its edge config, MQTT password, the CA, the systemd unit, the
update launcher and, when given, its collectors' secrets and the release it starts with.

``files`` is the bundle as (name -> content, mode); ``write`` puts it in a directory for
``commune-iot provision``, the cloud's onboarding zips it (``cloud.onboarding.bundles``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: The unit and the launcher come from here: the repository's firmware_config, or where an
#: installed copy put them (the cloud's image sets CIOT_FIRMWARE_CONFIG).
FIRMWARE = Path(os.environ.get("CIOT_FIRMWARE_CONFIG") or ROOT / "firmware_config")
UNIT = FIRMWARE / "systemd" / "commune-iot-edge.service"
LAUNCHER = FIRMWARE / "launcher" / "ciot_launcher.py"
#: Kernel settings for a metered uplink (no TCP timestamps: docs/field.md).
SYSCTL = FIRMWARE / "sysctl" / "90-commune-iot-uplink.conf"
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
{sysctl}{secrets}# The first version of the agent, from the release bundle in ./release (made with
# `commune-iot release build --deps ...`, so that it carries its dependencies' wheels):
python3 -m venv /tmp/ciot-setup
/tmp/ciot-setup/bin/pip install --no-index --find-links release 'commune-iot[edge]'
/tmp/ciot-setup/bin/commune-iot edge update --bundle release --first --root {opt} --config {etc}/edge.yaml
chown -R ciot:ciot {opt}
rm -rf /tmp/ciot-setup
install -m 0644 commune-iot-edge.service /etc/systemd/system/
systemctl daemon-reload && systemctl enable --now commune-iot-edge
{then}"""
NO_COLLECTOR = "# Then add the board's collector (camera or SNMP) to {etc}/edge.yaml: see edge/sample.yaml.\n"


#: What a provisioned board ships with (edge/sample.yaml has the same): health, AP polls and
#: camera stream health every 5 minutes, a camera's change of state at once; about 3 MB/day
#: per board on 3G with the outage alert still within 20 s (docs/field.md).
HEALTH_INTERVAL_S = 300
COLLECTOR_INTERVAL_S = 300
#: An AP board asks its AP for its uptime this often between polls (nothing goes upstream) and
#: polls and publishes at once when it stops or starts answering: the AP-down alert stays ~30 s.
AP_CHECK_INTERVAL_S = 30
#: The liveness path: the broker's Will after 1.5 x this of silence (plus Mosquitto 2.0's 5 s
#: keepalive scan), the cloud's alert 3 s later: p95 19.2 s at 8, over 20 s at 9 and 10.
KEEPALIVE_S = 8
#: The board checks the link with a PINGREQ only after this long without a sign of the broker;
#: between checks empty QoS 0 beats keep the keepalive: 0.3-0.44 MB/day less (edge/keepalive.py).
CHECK_LINK_S = 32


def edge_yaml(
    node: str,
    commune: str,
    site: str,
    broker_url: str,
    update: dict[str, Any],
    collectors: list[dict[str, Any]] | None = None,
    cloud_key: str | None = None,
) -> dict[str, Any]:
    """A board's edge.yaml. ``cloud_key``: the cloud's command key (``commune-iot fleet key``);
    a board without it acts on any command its MQTT credentials let through, one with it
    only on commands the cloud signed."""
    control = {"control": {"cloud_public_key": cloud_key}} if cloud_key else {}
    return {
        "node": node,
        "commune": commune,
        "site": site,
        "broker": {
            "url": broker_url,
            "ca_file": f"{ETC}/ca.crt",
            "username": node,
            "password_file": f"{ETC}/mqtt.password",
            "connect_timeout_s": 30,  # a 3G attach plus TLS takes 5-20 s (docs/field.md)
            "keepalive_s": KEEPALIVE_S,
            "check_link_s": CHECK_LINK_S,
            "compress": True,  # JSON deflated with the wire's dictionary (wire/compression.py)
        },
        # bytes on 3G (docs/field.md): health need not be the heartbeat, the keepalive is
        "health_interval_s": HEALTH_INTERVAL_S,
        # spares the SD card (docs/field.md). clock.sync_check stays "not_before": "kernel" is
        # right only where timesyncd or chrony runs, and holds all data until it has synced.
        "outbox": {"path": "/var/lib/commune-iot/outbox.sqlite3", "commit_interval_s": 120},
        "collectors": collectors or [],
        "log": {"level": "INFO", "json": True},
        "update": update,
        **control,
    }


def files(
    node: str,
    commune: str,
    site: str,
    devices: list[str],
    broker_url: str,
    password: str,
    ca_pem: str,
    *,
    update: dict[str, Any] | None = None,
    collectors: list[dict[str, Any]] | None = None,
    secrets: Mapping[str, str] | None = None,
    cloud_key: str | None = None,
) -> dict[str, tuple[bytes, int]]:
    """The bundle of board ``node``: file name -> (content, mode). ``secrets``: more files for
    ``/etc/commune-iot`` that only the agent reads (a camera's password, an SNMP community),
    named in ``collectors`` as ``/etc/commune-iot/<name>``."""
    cfg = edge_yaml(node, commune, site, broker_url, update or {}, collectors, cloud_key)
    header = f"# Edge agent of board {node} ({commune}, {site}); devices: {', '.join(devices)}.\n"
    extra = "".join(
        f"install -o ciot -g ciot -m 0400 {name} {ETC}/{name}\n" for name in sorted(secrets or {})
    )
    install = INSTALL.format(
        node=node,
        etc=ETC,
        opt=OPT,
        lib=LIB,
        secrets=extra,
        sysctl=(
            f"install -m 0644 {SYSCTL.name} /etc/sysctl.d/ && sysctl -q -p /etc/sysctl.d/{SYSCTL.name}\n"
            if SYSCTL.exists()
            else ""
        ),
        then="" if collectors else NO_COLLECTOR.format(etc=ETC),
    )
    out = {
        "edge.yaml": (
            (header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)).encode(),
            0o644,
        ),
        "mqtt.password": ((password + "\n").encode(), 0o600),
        "ca.crt": (ca_pem.encode(), 0o644),
        UNIT.name: (UNIT.read_bytes(), 0o644),
        LAUNCHER.name: (LAUNCHER.read_bytes(), 0o755),
        **({SYSCTL.name: (SYSCTL.read_bytes(), 0o644)} if SYSCTL.exists() else {}),
        "INSTALL.sh": (install.encode(), 0o755),
    }
    out |= {name: ((value + "\n").encode(), 0o600) for name, value in (secrets or {}).items()}
    return out


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
    cloud_key: str | None = None,
) -> Path:
    d = out / node
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    for name, (body, mode) in files(
        node, commune, site, devices, broker_url, password, ca_pem, update=update, cloud_key=cloud_key
    ).items():
        fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.chmod(d / name, mode)
    if release is not None:
        shutil.rmtree(d / "release", ignore_errors=True)
        shutil.copytree(release, d / "release")
    return d
