"""``commune-iot users ...``, ``evidence verify|rotate-key`` and ``events retention``: the police
event log's command line. Users are managed here (not over HTTP) so the first admin can be made
on the server before anyone can log in; every change goes to the audit trail as ``cli``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.audit.trail import AuditTrail
    from cloud.auth.users import UserStore
    from cloud.config import CloudConfig
    from cloud.inventory import Inventory
    from cloud.storage.sql import SqlStore


def _stores(config: Path | None) -> tuple[CloudConfig, SqlStore, UserStore, AuditTrail]:
    from cloud.audit.trail import AuditTrail
    from cloud.config import load_config
    from cloud.storage.sql import SqlStore
    from cloud.web.services import user_store

    cfg = load_config(config)
    sql = SqlStore(cfg.sql.url, password=cfg.sql.password_value(), busy_timeout_ms=cfg.sql.busy_timeout_ms)
    return cfg, sql, user_store(cfg, sql.engine), AuditTrail(sql.engine)


def _password(args: argparse.Namespace) -> str:
    """From --password-file, $CIOT_NEW_PASSWORD, or asked twice on the terminal."""
    if args.password_file:
        return Path(args.password_file).read_text().strip()
    env = os.environ.get("CIOT_NEW_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise SystemExit("no terminal: give --password-file or $CIOT_NEW_PASSWORD")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("passwords differ")
    return first


def _users(args: argparse.Namespace) -> int:
    from cloud.auth.roles import parse_roles
    from cloud.auth.users import UserError

    cfg, sql, users, audit = _stores(args.config)
    actor = "cli:" + (os.environ.get("SUDO_USER") or os.environ.get("USER") or "root")
    try:
        if args.users_cmd == "add":
            roles = parse_roles(args.role)
            known = {c.id for c in _inventory(cfg, sql).communes}
            communes = frozenset(c for part in args.commune for c in part.split(",") if c)
            unknown = communes - known
            if unknown:
                raise UserError(
                    f"unknown commune(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})"
                )
            u = users.add(
                args.username,
                _password(args),
                roles,
                communes=communes,
                display_name=args.name or "",
                lang=args.lang,
            )
            audit.record(
                actor,
                "user_add",
                f"user:{u.username}",
                detail={"roles": sorted(roles), "communes": sorted(communes)},
            )
            print(
                f"user {u.username} added: roles {', '.join(sorted(u.roles))}"
                + (f", communes {', '.join(sorted(u.communes))}" if u.communes else "")
            )
        elif args.users_cmd == "list":
            rows = users.all()
            if args.json:
                print(
                    json.dumps(
                        [
                            {
                                "username": u.username,
                                "display_name": u.display_name,
                                "roles": sorted(u.roles),
                                "communes": sorted(u.communes),
                                "disabled": u.disabled,
                            }
                            for u in rows
                        ],
                        ensure_ascii=False,
                    )
                )
            else:
                for u in rows:
                    state = "DISABLED" if u.disabled else "active"
                    role_text = ",".join(sorted(u.roles))
                    communes_text = ",".join(sorted(u.communes)) or "-"
                    print(f"{u.username:<20} {state:<8} {role_text:<20} {communes_text:<20} {u.display_name}")
        elif args.users_cmd in ("disable", "enable"):
            n = users.set_disabled(args.username, args.users_cmd == "disable")
            audit.record(
                actor, f"user_{args.users_cmd}", f"user:{args.username}", detail={"tokens_revoked": n}
            )
            print(
                f"user {args.username} {args.users_cmd}d"
                + (f" (sessions ended, {n} API token(s) revoked)" if args.users_cmd == "disable" else "")
            )
        elif args.users_cmd == "set-password":
            n = users.set_password(args.username, _password(args))
            audit.record(actor, "user_password", f"user:{args.username}", detail={"tokens_revoked": n})
            print(f"password of {args.username} changed; their sessions ended, {n} API token(s) revoked")
        elif args.users_cmd == "token":
            ttl = args.days * 86400 if args.days else None
            token = users.create_token(args.username, args.name, ttl)
            audit.record(
                actor, "token_create", f"user:{args.username}", detail={"name": args.name, "days": args.days}
            )
            print(token)
            print("(shown once: store it now; send it as 'Authorization: Bearer <token>')", file=sys.stderr)
        elif args.users_cmd == "revoke-tokens":
            n = users.revoke_tokens(args.username, args.name)
            audit.record(
                actor, "token_revoke", f"user:{args.username}", detail={"name": args.name, "revoked": n}
            )
            print(f"{n} token(s) of {args.username} revoked")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        sql.dispose()
    return 0


def _inventory(cfg: CloudConfig, sql: SqlStore) -> Inventory:
    from cloud.onboarding.live import LiveInventory

    return LiveInventory.open(sql.engine, cfg.inventory).inventory


def _evidence_verify(args: argparse.Namespace) -> int:
    from cloud.events.evidence import verify_export

    v = verify_export(Path(args.file), args.trusted_fingerprint, allow_unsigned=args.allow_unsigned)
    expect_ok = not args.expect_sha256 or args.expect_sha256.lower() == v.sha256
    if args.json:
        print(
            json.dumps(
                {
                    "ok": v.ok and expect_ok,
                    "sha256": v.sha256,
                    "files": v.files,
                    "events": v.events,
                    "key_fingerprint": v.key_fingerprint,
                    "trusted": v.trusted,
                    "problems": v.problems,
                }
            )
        )
    else:
        print(f"{args.file}: SHA-256 {v.sha256}")
        print(f"  {v.files} files listed, {v.events} events")
        for problem in v.problems:
            print(f"  PROBLEM: {problem}")
        if v.key_fingerprint:
            print(f"  signed with Ed25519 key {v.key_fingerprint}")
            if v.trusted:
                print("  that key is one of the trusted fingerprints given")
            elif v.trusted is None:
                print(
                    "  compare that fingerprint with the one the server publishes (its export page), "
                    "or pass --trusted-fingerprint"
                )
        if v.ok:
            print(
                "  OK: every file matches its SHA-256"
                + (" and is unchanged since the holder of that key signed it" if v.key_fingerprint else "")
            )
            print(
                "  (a signature proves integrity since signing by whoever holds the key; it does not "
                "prove the content true)"
            )
        else:
            print("  FAILED")
    if not expect_ok:
        print(f"  FAILED: the ZIP's SHA-256 is not the recorded {args.expect_sha256}", file=sys.stderr)
        return 1
    return 0 if v.ok else 1


def _rotate_key(args: argparse.Namespace) -> int:
    from cloud.audit.trail import AuditTrail
    from cloud.config import load_config
    from cloud.events.signing import EvidenceSigner
    from cloud.storage.sql import SqlStore

    cfg = load_config(args.config)
    old, new = EvidenceSigner(cfg.events.signing_key_file).rotate()
    sql = SqlStore(cfg.sql.url, password=cfg.sql.password_value(), busy_timeout_ms=cfg.sql.busy_timeout_ms)
    try:
        actor = "cli:" + (os.environ.get("SUDO_USER") or os.environ.get("USER") or "root")
        AuditTrail(sql.engine).record(
            actor,
            "evidence_key_rotate",
            detail={"old": old.fingerprint if old else None, "new": new.fingerprint},
        )
    finally:
        sql.dispose()
    if old:
        print(
            f"retired key {old.fingerprint} (its public key stays in "
            f"{cfg.events.signing_key_file.parent / 'retired'})"
        )
    print(f"new signing key {new.fingerprint}")
    return 0


def _retention(args: argparse.Namespace) -> int:
    from cloud.events.retention import run_retention
    from cloud.events.store import EventStore
    from cloud.storage.snapshots import SnapshotStore

    cfg, sql, _users, audit = _stores(args.config)
    try:
        days = args.days if args.days is not None else cfg.events.retention_days
        res = run_retention(EventStore(sql.engine), SnapshotStore(cfg.snapshots_dir), audit, days)
        print(json.dumps({"events_deleted": res.events_deleted, "snapshots_deleted": res.snapshots_deleted}))
    finally:
        sql.dispose()
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    """Recompute the audit trail's hash chain (after a restore, or any time)."""
    _cfg, sql, _users, audit = _stores(args.config)
    try:
        rows, bad = audit.verify()
    finally:
        sql.dispose()
    if bad is None:
        print(f"audit trail intact: {rows} rows, every hash and link checks out")
    else:
        print(f"audit trail BROKEN at row {bad} ({rows} rows checked): changed or removed since written")
    print(json.dumps({"rows": rows, "intact": bad is None, "first_bad_id": bad}))
    return 0 if bad is None else 1


def _bench_events(args: argparse.Namespace) -> int:
    from commune_iot.bench.events import main

    return int(main(events=args.events, requests=args.requests, run_dir=args.run_dir))


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = sub.add_parser("users", help="web UI users: add, list, disable, set-password, API tokens")
    users.add_argument(
        "--config", type=Path, default=None, help="cloud config YAML (default $CIOT_CLOUD_CONFIG)"
    )
    us = users.add_subparsers(dest="users_cmd", required=True)
    add = us.add_parser("add", help="add a user (password asked, or --password-file / $CIOT_NEW_PASSWORD)")
    add.add_argument("username")
    add.add_argument("--role", required=True, help="admin, technician, police, mic; several comma-separated")
    add.add_argument("--commune", action="append", default=[], help="police: commune id(s) they may see")
    add.add_argument("--name", default="", help="display name, e.g. 'Công an xã Đạ Ròn'")
    add.add_argument("--lang", choices=("vi", "en"), default="vi")
    add.add_argument("--password-file", type=Path, default=None)
    lst = us.add_parser("list", help="all users")
    lst.add_argument("--json", action="store_true")
    for name, text in (("disable", "lock a user out (sessions end at once)"), ("enable", "unlock a user")):
        x = us.add_parser(name, help=text)
        x.add_argument("username")
    sp = us.add_parser("set-password", help="new password (the user's sessions end)")
    sp.add_argument("username")
    sp.add_argument("--password-file", type=Path, default=None)
    tok = us.add_parser("token", help="new API token for scripts (printed once)")
    tok.add_argument("username")
    tok.add_argument("--name", default="script", help="what the token is for")
    tok.add_argument("--days", type=float, default=None, help="expires after this many days")
    rv = us.add_parser("revoke-tokens", help="revoke a user's API tokens")
    rv.add_argument("username")
    rv.add_argument("--name", default=None, help="only tokens with this name")
    users.set_defaults(func=_users)

    ev = sub.add_parser("evidence", help="evidence exports")
    evs = ev.add_subparsers(dest="evidence_cmd", required=True)
    ver = evs.add_parser(
        "verify",
        help="check an export ZIP offline: its signature, every file against what was signed and "
        "SHA256SUMS, the manifests",
    )
    ver.add_argument("file", type=Path)
    ver.add_argument(
        "--trusted-fingerprint",
        action="append",
        default=[],
        metavar="FP",
        help="the server's signing key fingerprint (export page); the ZIP must be signed by one of these",
    )
    ver.add_argument("--expect-sha256", default="", help="the ZIP's SHA-256 as recorded when it was made")
    ver.add_argument(
        "--allow-unsigned", action="store_true", help="accept an export made before exports were signed"
    )
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=_evidence_verify)
    rot = evs.add_parser(
        "rotate-key", help="new signing key; the old public key is kept so earlier exports still verify"
    )
    rot.add_argument(
        "--config", type=Path, default=None, help="cloud config YAML (default $CIOT_CLOUD_CONFIG)"
    )
    rot.set_defaults(func=_rotate_key)

    events = sub.add_parser("events", help="police event log maintenance")
    es = events.add_subparsers(dest="events_cmd", required=True)
    ret = es.add_parser("retention", help="delete old events now (kept and exported ones stay)")
    ret.add_argument("--config", type=Path, default=None)
    ret.add_argument("--days", type=float, default=None, help="default: events.retention_days")
    ret.set_defaults(func=_retention)

    au = sub.add_parser("audit", help="the audit trail")
    aus = au.add_subparsers(dest="audit_cmd", required=True)
    av = aus.add_parser("verify", help="check the audit trail's hash chain (exit 1 when broken)")
    av.add_argument("--config", type=Path, default=None)
    av.set_defaults(func=_audit_verify)

    be = bench_sub.add_parser("events", help="event list page latency with 100,000 events in the store")
    be.add_argument("--events", type=int, default=100_000)
    be.add_argument("--requests", type=int, default=50)
    be.add_argument("--run-dir", type=Path, default=None)
    be.set_defaults(func=_bench_events)
