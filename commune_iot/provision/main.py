"""The ``commune-iot provision`` command: one board, a revocation, the cloud's user, or the CA."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from cloud.inventory import Inventory, load_inventory
from commune_iot.provision import bundle, ca
from commune_iot.provision.broker import CLOUD_PREFIX, BrokerFiles

RELOAD = (
    "reload the broker to apply: `docker compose kill -s HUP mosquitto` (or `systemctl reload mosquitto`)"
)


def _communes(inv: Inventory) -> dict[str, str]:
    return {n.id: n.commune for n in inv.nodes}


def board(node_or_device: str, broker_dir: Path, out: Path, broker_url: str, inventory: Path) -> int:
    inv = load_inventory(inventory)
    node = inv.node(node_or_device)
    if node is None:
        dev = inv.device(node_or_device)
        node = inv.node(dev.node) if dev is not None else None
    if node is None:
        print(
            f"provision: {node_or_device!r} is neither a board nor a device in {inventory}", file=sys.stderr
        )
        return 2
    if not broker_url.startswith("mqtts://"):
        print("provision: --broker-url must be mqtts://HOST:8883 (boards speak TLS only)", file=sys.stderr)
        return 2
    ca_crt = broker_dir / "ca.crt"
    if not ca_crt.exists():
        print(
            f"provision: no CA in {broker_dir}: run `commune-iot provision --ca --host HOST` first",
            file=sys.stderr,
        )
        return 2
    files = BrokerFiles(broker_dir)
    password = secrets.token_urlsafe(24)
    files.set_user(node.id, password)
    files.write_acl(_communes(inv))
    devices = [d.id for d in inv.devices_of(node.id)]
    where = bundle.write(out, node.id, node.commune, node.site, devices, broker_url, password, ca_crt)
    print(f"board {node.id} ({node.commune}): credentials added to {files.passwd} and {files.acl}")
    print(f"install bundle: {where} (see INSTALL.sh there); {RELOAD}")
    return 0


def revoke(node: str, broker_dir: Path, inventory: Path) -> int:
    files = BrokerFiles(broker_dir)
    if not files.remove_user(node):
        print(f"provision: no broker user {node!r} in {files.passwd}", file=sys.stderr)
        return 1
    files.write_acl(_communes(load_inventory(inventory)))
    print(f"board {node} revoked: it can no longer connect once the broker reloads; {RELOAD}")
    return 0


def cloud_user(name: str, broker_dir: Path, out: Path, inventory: Path) -> int:
    if not name.startswith(CLOUD_PREFIX):
        print(f"provision: cloud users are named {CLOUD_PREFIX}..., not {name!r}", file=sys.stderr)
        return 2
    files = BrokerFiles(broker_dir)
    password = secrets.token_urlsafe(24)
    files.set_user(name, password)
    files.write_acl(_communes(load_inventory(inventory)))
    out.mkdir(parents=True, exist_ok=True)
    secret = out / f"{name}.password"
    secret.write_text(password + "\n", encoding="utf-8")
    secret.chmod(0o600)
    print(f"cloud user {name}: password in {secret} (set mqtt.username and mqtt.password_file); {RELOAD}")
    return 0


def init_ca(broker_dir: Path, hosts: list[str]) -> int:
    try:
        made = ca.create(broker_dir, hosts)
    except ca.CaError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 1
    print("created " + ", ".join(str(p) for p in made) + f" for {', '.join(hosts)}")
    return 0
