"""``commune-iot inventory ...``: the device inventory in the cloud's database.

``import`` and ``export`` work on the database itself (an operator on the server, with the
cloud's config), like ``db``; the YAML is the import/export format. The changes go through
the running cloud's API (``--url``, an API token from ``--token-file`` or
``$CIOT_API_TOKEN``), so roles, commune scopes, the broker's files and the audit trail apply
exactly as on the web page:

    commune-iot inventory export inventory.yaml --config cloud.yaml
    commune-iot inventory import inventory.yaml --config cloud.yaml
    commune-iot inventory list --commune da-ron
    commune-iot inventory add dr-cam-13 --kind camera --commune da-ron --site dr-diem-13 \\
        --site-name "Cổng chợ mới" --camera-url rtsp://192.168.1.64:554/Streaming/Channels/102 \\
        --camera-password-file cam.pw --out bundles/
    commune-iot inventory rename dr-cam-13 --name "Camera cổng chợ mới"
    commune-iot inventory move dr-cam-13 --commune da-ron --site dr-diem-12
    commune-iot inventory bundle dr-cam-13 --out bundles/        # a new bundle (new password)
    commune-iot inventory decommission dr-cam-13 --yes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from commune_iot.fleet_cli import Api, ApiError, _api, _explain

FILE_HEADER = (
    "# Device inventory exported from the cloud's database by `commune-iot inventory export`;\n"
    "# `commune-iot inventory import` takes it back (docs/onboarding.md).\n"
)


def _actor() -> str:
    return "cli:" + (os.environ.get("SUDO_USER") or os.environ.get("USER") or "root")


def _store(args: argparse.Namespace) -> Any:
    from cloud.config import load_config
    from cloud.onboarding.store import InventoryStore
    from cloud.storage.sql import SqlStore
    from wire import logs

    logs.setup()
    cfg = load_config(args.config, **({"sql": {"url": args.sql}} if args.sql else {}))
    sql = SqlStore(cfg.sql.url, password=cfg.sql.password_value(), busy_timeout_ms=cfg.sql.busy_timeout_ms)
    return sql, InventoryStore(sql.engine)


def _import(args: argparse.Namespace) -> int:
    from cloud.audit.trail import AuditTrail
    from cloud.inventory import load_inventory
    from cloud.onboarding.store import InventoryError

    try:
        inv = load_inventory(args.file)
    except ValueError as exc:
        print(f"inventory: {exc}", file=sys.stderr)
        return 2
    sql, store = _store(args)
    try:
        report = store.import_(inv, _actor())
        AuditTrail(sql.engine).record(
            _actor(),
            "inventory_import",
            str(args.file)[:128],
            detail={"added": report.added, "updated": report.updated, "skipped": report.skipped},
        )
    except InventoryError as exc:
        print(f"inventory: {exc}; nothing was imported", file=sys.stderr)
        return 1
    finally:
        sql.dispose()
    added = ", ".join(f"{n} {k}" for k, n in report.added.items()) or "nothing"
    updated = ", ".join(f"{n} {k}" for k, n in report.updated.items()) or "nothing"
    print(f"imported {args.file}: added {added}; updated {updated}")
    if report.skipped:
        print(f"decommissioned, not brought back: {', '.join(report.skipped)}")
    print(
        "the running cloud takes it within inventory_poll_s; new boards need credentials: docs/onboarding.md"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    sql, store = _store(args)
    try:
        doc = store.export()
    finally:
        sql.dispose()
    text = FILE_HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if args.file is None:
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
        print(f"wrote {args.file}: {len(doc['devices'])} devices on {len(doc['nodes'])} boards")
    return 0


def _q(item: str) -> str:
    return urllib.parse.quote(item, safe="")


def _secret_file(path: str | None) -> str:
    return Path(path).read_text(encoding="utf-8").strip() if path else ""


def _report(api: Api, out: dict[str, Any], save_to: Path | None) -> int:
    """Print what happened; download the bundle once into ``save_to``."""
    d = out["device"]
    print(
        f"device {d['id']} ({d['kind']}) on board {d['node']} at {d['site']} ({d['commune']}): {d['state']}"
    )
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    b = out.get("bundle")
    if b is None:
        return 0
    if save_to is None:
        print(f"bundle: {api.url}{b['url']} (downloadable once)")
        return 0
    _, data = api.call("GET", b["url"])
    save_to.mkdir(parents=True, exist_ok=True)
    target = save_to / b["filename"]
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the board's password
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    print(f"bundle: {target} (sha256 {b['sha256']}); unzip it on the board and run INSTALL.sh as root")
    return 0


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[Api, Any] | None:
    api = _api(args)
    try:
        return api, api.call(method, path, body)[1]
    except ApiError as exc:
        print(f"inventory: {_explain(exc)}", file=sys.stderr)
        return None


def _list(args: argparse.Namespace) -> int:
    q = "?decommissioned=true" if args.all else ""
    done = _call(args, "GET", f"/api/v1/inventory{q}")
    if done is None:
        return 2
    rows = [d for d in done[1]["devices"] if args.commune is None or d["commune"] == args.commune]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{'device':<12} {'kind':<7} {'board':<12} {'commune':<9} {'site':<12} state")
    for d in rows:
        print(f"{d['id']:<12} {d['kind']:<7} {d['node']:<12} {d['commune']:<9} {d['site']:<12} {d['state']}")
    return 0


def _add(args: argparse.Namespace) -> int:
    body = {
        "id": args.device,
        "kind": args.kind,
        "commune": args.commune,
        "site": args.site,
        "site_name": args.site_name,
        "node": args.node,
        "name": args.name,
        "address": args.address,
        "camera_url": args.camera_url,
        "camera_password": _secret_file(args.camera_password_file),
        "ap_host": args.ap_host,
        "ap_profile": args.ap_profile,
        "snmp_community": _secret_file(args.snmp_community_file),
    }
    done = _call(args, "POST", "/api/v1/inventory/devices", body)
    return 2 if done is None else _report(done[0], done[1], args.out)


def _rename(args: argparse.Namespace) -> int:
    body = {k: v for k, v in (("name", args.name), ("address", args.address)) if v is not None}
    done = _call(args, "PATCH", f"/api/v1/inventory/devices/{_q(args.device)}", body)
    return 2 if done is None else _report(done[0], done[1], None)


def _move(args: argparse.Namespace) -> int:
    body = {"commune": args.commune, "site": args.site, "site_name": args.site_name}
    done = _call(args, "POST", f"/api/v1/inventory/devices/{_q(args.device)}/move", body)
    return 2 if done is None else _report(done[0], done[1], args.out)


def _bundle(args: argparse.Namespace) -> int:
    done = _call(args, "POST", f"/api/v1/inventory/devices/{_q(args.device)}/bundle")
    return 2 if done is None else _report(done[0], done[1], args.out)


def _decommission(args: argparse.Namespace) -> int:
    if not args.yes:
        typed = input(f"Decommission {args.device}? Its board's credentials are revoked. Type its id: ")
        if typed.strip() != args.device:
            print("inventory: not confirmed; nothing changed", file=sys.stderr)
            return 1
    done = _call(args, "POST", f"/api/v1/inventory/devices/{_q(args.device)}/decommission")
    if done is None:
        return 2
    out = done[1]
    _report(done[0], out, None)
    if out["board_retired"]:
        print(
            f"board {out['device']['node']}: " + ("credentials revoked" if out["revoked"] else "NOT revoked")
        )
    return 0 if not out["board_retired"] or out["revoked"] else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    inv = sub.add_parser(
        "inventory", help="the device inventory: import/export YAML, add, move, decommission"
    )
    inv.add_argument(
        "--url",
        default=os.environ.get("CIOT_API_URL", "http://127.0.0.1:8000"),
        help="cloud API base URL (default $CIOT_API_URL or http://127.0.0.1:8000)",
    )
    inv.add_argument("--token-file", default=None, help="file holding an API token (default $CIOT_API_TOKEN)")
    s = inv.add_subparsers(dest="inventory_cmd", required=True)

    for name, text, func in (
        ("import", "add and update devices from an inventory YAML (never removes any)", _import),
        ("export", "write the inventory in service as YAML (stdout without FILE)", _export),
    ):
        p = s.add_parser(name, help=text)
        p.add_argument("file", type=Path, nargs=None if name == "import" else "?")
        p.add_argument(
            "--config", type=Path, default=None, help="cloud config YAML (default $CIOT_CLOUD_CONFIG)"
        )
        p.add_argument("--sql", default=None, help="SQL URL instead of the config's sql.url")
        p.set_defaults(func=func)

    ls = s.add_parser("list", help="devices with their state (never_seen, up, down, ...)")
    ls.add_argument("--commune", default=None)
    ls.add_argument("--all", action="store_true", help="also the decommissioned ones")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    add = s.add_parser("add", help="add a device; a new board's bundle is downloaded into --out")
    add.add_argument("device", help="the new device's id, e.g. dr-cam-13 (never changes)")
    add.add_argument("--kind", choices=("camera", "ap"), required=True)
    add.add_argument("--commune", required=True)
    add.add_argument("--site", required=True, help="site id (give --site-name to create it)")
    add.add_argument("--site-name", default="", help="name of a new site")
    add.add_argument("--node", default=None, help="an existing board that serves it too (default: a new one)")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--address", default="", help="where it is, in words")
    add.add_argument("--camera-url", default="", help="rtsp://HOST/PATH of the camera")
    add.add_argument("--camera-password-file", default=None, help="file holding the camera's password")
    add.add_argument("--ap-host", default="", help="the AP's address, polled over SNMP by the board")
    add.add_argument("--ap-profile", default="auto", help="SNMP vendor profile (default: auto)")
    add.add_argument("--snmp-community-file", default=None, help="file holding the AP's SNMP v2c community")
    add.add_argument("--out", type=Path, default=Path("."), help="where the bundle ZIP goes (default: here)")
    add.set_defaults(func=_add)

    ren = s.add_parser("rename", help="change a device's display name or address (its id stays)")
    ren.add_argument("device")
    ren.add_argument("--name", default=None)
    ren.add_argument("--address", default=None)
    ren.set_defaults(func=_rename)

    mv = s.add_parser("move", help="move a device's board (and its devices) to another site or commune")
    mv.add_argument("device")
    mv.add_argument("--commune", required=True)
    mv.add_argument("--site", required=True)
    mv.add_argument("--site-name", default="", help="name of a new site")
    mv.add_argument("--out", type=Path, default=Path("."), help="another commune: where its new bundle goes")
    mv.set_defaults(func=_move)

    b = s.add_parser("bundle", help="a new bundle for a device's board (a new password; the old one stops)")
    b.add_argument("device")
    b.add_argument("--out", type=Path, default=Path("."), help="where the bundle ZIP goes (default: here)")
    b.set_defaults(func=_bundle)

    dec = s.add_parser(
        "decommission", help="take a device out of service; its board's credentials are revoked"
    )
    dec.add_argument("device")
    dec.add_argument("--yes", action="store_true", help="do not ask to type the id")
    dec.set_defaults(func=_decommission)
