"""The ``commune-iot provision`` command: one board, a revocation, the cloud's user, or the CA."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

from cloud.inventory import Inventory, load_inventory
from commune_iot.provision import bundle, ca
from commune_iot.provision.broker import CLOUD_PREFIX, BrokerFiles

RELOAD = (
    "reload the broker to apply: `docker compose kill -s HUP mosquitto` (or `systemctl reload mosquitto`)"
)


def _communes(inv: Inventory) -> dict[str, str]:
    return {n.id: n.commune for n in inv.nodes}


def board(
    node_or_device: str,
    broker_dir: Path,
    out: Path,
    broker_url: str,
    inventory: Path,
    *,
    update_url: str | None = None,
    release_keys: list[str] | None = None,
    release: Path | None = None,
) -> int:
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
    try:
        update = _update_section(update_url, release_keys or [])
    except ValueError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 2
    if release is not None and not (release / "manifest.json").is_file():
        print(f"provision: {release} is not a release bundle (no manifest.json)", file=sys.stderr)
        return 2
    files = BrokerFiles(broker_dir)
    password = secrets.token_urlsafe(24)
    files.set_user(node.id, password)
    files.write_acl(_communes(inv))
    devices = [d.id for d in inv.devices_of(node.id)]
    where = bundle.write(
        out,
        node.id,
        node.commune,
        node.site,
        devices,
        broker_url,
        password,
        ca_crt,
        update=update,
        release=release,
    )
    print(f"board {node.id} ({node.commune}): credentials added to {files.passwd} and {files.acl}")
    print(f"install bundle: {where} (see INSTALL.sh there); {RELOAD}")
    return 0


def _update_section(url: str | None, keys: list[str]) -> dict[str, Any]:
    """The edge config's ``update:``: where releases come from and the keys that sign them
    (public keys, or the ``.pub`` files ``commune-iot release keygen`` writes)."""
    from wire.release import ReleaseError, parse_public_key

    trusted = []
    for k in keys:
        text = Path(k).read_text(encoding="utf-8").split()[0] if Path(k).is_file() else k
        try:
            parse_public_key(text)
        except ReleaseError as exc:
            raise ValueError(f"--release-key {k}: {exc}") from None
        trusted.append(text)
    section: dict[str, Any] = {"trusted_keys": trusted}
    if url:
        if not url.startswith("https://"):
            raise ValueError("--update-url must be https:// (the address boards download releases from)")
        section["server_url"] = url
    return section


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
