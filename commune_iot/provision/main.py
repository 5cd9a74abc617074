"""The ``commune-iot provision`` command: one board, a revocation, the cloud's user, or the CA."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cloud.inventory import Inventory
from commune_iot.provision import broker, bundle, ca
from commune_iot.provision.broker import Reload
from commune_iot.provision.files import ProvisionError, read_text, replace

RELOAD = (
    "if the broker runs, reload it to apply: `docker compose kill -s HUP mosquitto`"
    " (or `systemctl reload mosquitto`), or add --reload COMMAND"
)


def _communes(inv: Inventory) -> dict[str, str]:
    return {n.id: n.commune for n in inv.nodes}


def _fail(exc: Exception) -> int:
    print(f"provision: {exc}", file=sys.stderr)
    return 1


def _reload(reload: Reload | None) -> int:
    """Last step of every change: the files are right by now, whatever the reload does."""
    if reload is None:
        print(RELOAD)
        return 0
    try:
        reload()
    except ProvisionError as exc:
        return _fail(exc)
    print("broker reloaded")
    return 0


def board(
    node_or_device: str,
    broker_dir: Path,
    out: Path,
    broker_url: str,
    inv: Inventory,
    reload: Reload | None = None,
    *,
    update_url: str | None = None,
    release_keys: list[str] | None = None,
    release: Path | None = None,
    cloud_key: str | None = None,
) -> int:
    node = inv.node(node_or_device)
    if node is None:
        dev = inv.device(node_or_device)
        node = inv.node(dev.node) if dev is not None else None
    if node is None:
        print(
            f"provision: {node_or_device!r} is neither a board nor a device of the inventory", file=sys.stderr
        )
        return 2
    if not broker_url.startswith("mqtts://"):
        print("provision: --broker-url must be mqtts://HOST:8883 (boards speak TLS only)", file=sys.stderr)
        return 2
    try:
        update = _update_section(update_url, release_keys or [])
    except ValueError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 2
    if cloud_key is not None:
        try:
            cloud_key = _cloud_key(cloud_key)
        except ValueError as exc:
            print(f"provision: {exc}", file=sys.stderr)
            return 2
    if release is not None and not (release / "manifest.json").is_file():
        print(f"provision: {release} is not a release bundle (no manifest.json)", file=sys.stderr)
        return 2
    password = broker.new_password()
    try:
        ca_pem = read_text(broker_dir / "ca.crt")
        if ca_pem is None:
            print(
                f"provision: no CA in {broker_dir}: run `commune-iot provision --ca --host HOST` first",
                file=sys.stderr,
            )
            return 2
        broker.add_board(broker_dir, node.id, password, _communes(inv))
    except ProvisionError as exc:
        return _fail(exc)
    devices = [d.id for d in inv.devices_of(node.id)]
    where = bundle.write(
        out,
        node.id,
        node.commune,
        node.site,
        devices,
        broker_url,
        password,
        ca_pem,
        update=update,
        release=release,
        cloud_key=cloud_key,
    )
    print(f"board {node.id} ({node.commune}): credentials added to {broker_dir}/passwd and acl")
    print(f"install bundle: {where} (see INSTALL.sh there)")
    return _reload(reload)


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


def _cloud_key(key: str) -> str:
    """The cloud's command key as given (``commune-iot fleet key`` prints it), or a file holding it."""
    from wire.crypto import CryptoError, check_verify_key

    text = Path(key).read_text(encoding="utf-8").strip() if Path(key).is_file() else key.strip()
    try:
        return check_verify_key(text)
    except CryptoError as exc:
        raise ValueError(f"--cloud-key: {exc}") from None


def revoke(node: str, broker_dir: Path, inv: Inventory, reload: Reload | None = None) -> int:
    try:
        if not broker.revoke_board(broker_dir, node, _communes(inv)):
            print(f"provision: no broker user {node!r} in {broker_dir}/passwd", file=sys.stderr)
            return 1
    except ProvisionError as exc:
        return _fail(exc)
    print(f"board {node} revoked: once reloaded, the broker drops it if connected and refuses it")
    return _reload(reload)


def cloud_user(name: str, broker_dir: Path, out: Path, inv: Inventory, reload: Reload | None = None) -> int:
    secret = out / f"{name}.password"
    password = broker.new_password()
    try:
        broker.add_cloud_user(broker_dir, name, password, _communes(inv))
        out.mkdir(parents=True, exist_ok=True)
        replace(out, {secret.name: (password + "\n").encode()}, owner_only={secret.name})
    except ProvisionError as exc:
        return _fail(exc)
    print(f"cloud user {name}: password in {secret} (set mqtt.username and mqtt.password_file)")
    return _reload(reload)


def init_ca(broker_dir: Path, hosts: list[str], reload: Reload | None = None) -> int:
    """The CA when there is none, and a new server certificate (Mosquitto 2.0 reloads it on SIGHUP)."""
    try:
        made = ca.create(broker_dir, hosts)
    except (ca.CaError, ProvisionError) as exc:
        return _fail(exc)
    print("created " + ", ".join(str(p) for p in made) + f" for {', '.join(hosts)}")
    return _reload(reload)
