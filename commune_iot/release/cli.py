"""The ``commune-iot release`` command line (docs/updates.md)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.audit.trail import AuditTrail
    from cloud.fleet.updates import Updates

REPO = Path(__file__).resolve().parents[2]


def _keygen(args: argparse.Namespace) -> int:
    from commune_iot.release import keys
    from wire.release import ReleaseError, key_id, public_key_text

    try:
        key = keys.generate(args.out)
    except ReleaseError as exc:
        print(f"release keygen: {exc}", file=sys.stderr)
        return 1
    pub = key.public_key()
    print(f"private key: {args.out} (mode 0600; keep it on this machine, never on the cloud server)")
    print(f"public key:  {public_key_text(pub)}")
    print(f"key id:      {key_id(pub)}")
    print(f"boards trust it with update.trusted_keys: ['{public_key_text(pub)}'] (also in {args.out}.pub)")
    return 0


def _build(args: argparse.Namespace) -> int:
    from commune_iot.release import keys
    from commune_iot.release.build import build
    from wire.release import ReleaseError

    try:
        built = build(
            args.source,
            args.out,
            [keys.load(k) for k in args.key],
            version=args.release,
            min_previous=args.min_previous,
            deps_dir=args.deps,
            deps_platform=args.deps_platform,
            deps_extras=args.deps_extras,
            force=args.force,
        )
    except ReleaseError as exc:
        print(f"release build: {exc}", file=sys.stderr)
        return 1
    m = built.manifest
    print(f"bundle {built.bundle}: version {m.version}, {len(m.files)} file(s), {m.total_bytes:,} bytes")
    print(f"signed by key(s) {', '.join(built.key_ids)}; publish: commune-iot release publish {built.bundle}")
    return 0


@contextlib.contextmanager
def _updates(config: Path | None) -> Iterator[tuple[Updates, AuditTrail]]:
    from cloud.audit.trail import AuditTrail
    from cloud.config import load_config
    from cloud.fleet.updates import Updates
    from cloud.onboarding.live import LiveInventory
    from cloud.storage.sql import SqlStore

    cfg = load_config(config)
    sql = SqlStore(cfg.sql.url, password=cfg.sql.password_value(), busy_timeout_ms=cfg.sql.busy_timeout_ms)
    try:
        inventory = LiveInventory.open(sql.engine, cfg.inventory).inventory
        yield Updates.build(cfg, sql, inventory), AuditTrail(sql.engine)
    finally:
        sql.dispose()


def _actor() -> str:
    return "cli:" + (os.environ.get("SUDO_USER") or os.environ.get("USER") or "root")


def _publish(args: argparse.Namespace) -> int:
    from wire.release import ReleaseError

    with _updates(args.config) as (upd, audit):
        try:
            rel = upd.releases.publish(args.bundle)
        except ReleaseError as exc:
            print(f"release publish: {exc}", file=sys.stderr)
            return 1
        audit.record(_actor(), "release_publish", rel.version, detail={"key_ids": rel.key_ids})
    print(f"published {rel.version} ({rel.total_bytes:,} bytes, signed by {', '.join(rel.key_ids)})")
    print(f"roll it out: commune-iot release rollout start {rel.version} --canary BOARD")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _updates(args.config) as (upd, _):
        doc = upd.overview()
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
        return 0
    print("releases:")
    for r in doc["releases"]:
        when, size, boards = f"{r['created']:%Y-%m-%d %H:%M}", f"{r['total_bytes']:,} B", len(r["nodes"])
        print(f"  {r['version']:<28} {when}  {size:>13}  on {boards} board(s)")
    print("boards:")
    for n in doc["nodes"]:
        u = n["update"]
        last = f"  last update {u['version']}: {u['state']} {u['error']}".rstrip() if u else ""
        status, running = n["status"] or "never_seen", n["agent_version"] or "-"
        print(f"  {n['node']:<14} {n['commune']:<9} {status:<10} {running}{last}")
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from cloud.fleet.rollout import RolloutError

    with _updates(args.config) as (upd, audit):
        ro = upd.rollouts
        try:
            if args.rollout_cmd == "start":
                communes = [c for part in args.commune for c in part.split(",") if c] or None
                doc = ro.create(
                    args.version,
                    canary=args.canary,
                    communes=communes,
                    timeout_s=args.timeout,
                    created_by=_actor(),
                )
                audit.record(_actor(), "rollout_start", args.version, detail={"rollout": doc["id"]})
            elif args.rollout_cmd == "resume":
                doc = ro.resume(args.id, _actor(), skip_failed=args.skip_failed)
                audit.record(_actor(), "rollout_resume", doc["version"], detail={"rollout": doc["id"]})
            elif args.rollout_cmd == "abort":
                doc = ro.abort(args.id, _actor())
                audit.record(_actor(), "rollout_abort", doc["version"], detail={"rollout": doc["id"]})
            else:
                found = ro.get(args.id) if args.id else ro.latest()
                if found is None:
                    print("no rollout")
                    return 1 if args.id else 0
                doc = found
        except RolloutError as exc:
            print(f"release rollout: {exc}", file=sys.stderr)
            return 1
    if getattr(args, "json", False):
        print(json.dumps(doc, indent=1, default=str))
        return 0
    print(
        f"rollout {doc['id']}: {doc['version']} {doc['state']}"
        + (f": {doc['reason']}" if doc["reason"] else "")
    )
    for n in doc["nodes"]:
        here = ">" if n["stage"] == doc["stage"] and doc["state"] in ("running", "paused") else " "
        detail = f"  {n['detail']}" if n["detail"] else ""
        print(f" {here} stage {n['stage']}  {n['node']:<14} {n['commune']:<9} {n['state']:<8}{detail}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rel = sub.add_parser("release", help="signed agent updates: keys, bundles, publishing, staged rollouts")
    rs = rel.add_subparsers(dest="release_cmd", required=True)

    kg = rs.add_parser("keygen", help="new Ed25519 release key (private file 0600) and its public key")
    kg.add_argument("--out", type=Path, default=Path("release.key"))
    kg.set_defaults(func=_keygen)

    b = rs.add_parser("build", help="wheel of this tree, manifest and signature: an update bundle")
    b.add_argument("--key", type=Path, action="append", default=[], help="release key (repeat to co-sign)")
    b.add_argument("--out", type=Path, default=Path("dist"), help="bundles go to OUT/<version>/")
    b.add_argument("--source", type=Path, default=REPO, help="source tree (default: this checkout)")
    b.add_argument("--version", dest="release", default=None, help="override (e.g. 0.2.0+test.1)")
    b.add_argument("--min-previous", default=None, help="boards must run at least this version first")
    b.add_argument("--deps", type=Path, default=None, help="also ship the wheels in this directory")
    b.add_argument(
        "--deps-platform",
        default=None,
        help="also ship the dependency wheels for this board platform, from the package index "
        "(e.g. manylinux2014_aarch64 for a Raspberry Pi with a 64-bit OS)",
    )
    b.add_argument("--deps-extras", default="edge", help="extras whose dependencies ship (edge or camera)")
    b.add_argument("--force", action="store_true", help="replace an existing bundle of that version")
    b.set_defaults(func=_build)

    cfg = argparse.ArgumentParser(add_help=False)
    cfg.add_argument("--config", type=Path, default=None, help="cloud YAML (default: $CIOT_CLOUD_CONFIG)")

    p = rs.add_parser("publish", parents=[cfg], help="store a bundle where the cloud serves it to boards")
    p.add_argument("bundle", type=Path)
    p.set_defaults(func=_publish)

    ls = rs.add_parser("list", parents=[cfg], help="published releases and which board runs what")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    ro = rs.add_parser("rollout", help="staged rollouts: canary, then commune by commune")
    ros = ro.add_subparsers(dest="rollout_cmd", required=True)
    st = ros.add_parser("start", parents=[cfg], help="roll a published version out")
    st.add_argument("version")
    st.add_argument("--canary", default=None, help="board updated alone first (default: none)")
    st.add_argument("--commune", action="append", default=[], help="communes in order (default: all)")
    st.add_argument("--timeout", type=float, default=None, help="seconds a board has to report the version")
    st.add_argument("--json", action="store_true")
    stat = ros.add_parser("status", parents=[cfg], help="a rollout board by board (default: the latest)")
    stat.add_argument("id", type=int, nargs="?", default=None)
    stat.add_argument("--json", action="store_true")
    rs_ = ros.add_parser("resume", parents=[cfg], help="go on after a pause (failed boards are tried again)")
    rs_.add_argument("id", type=int)
    rs_.add_argument("--skip-failed", action="store_true", help="leave the failed boards behind instead")
    ab = ros.add_parser(
        "abort", parents=[cfg], help="stop a rollout (boards already updated keep the version)"
    )
    ab.add_argument("id", type=int)
    ro.set_defaults(func=_rollout)
