"""``commune-iot backup`` and ``commune-iot restore``: the cloud's data, copied while it runs.

A backup is one directory with everything a fresh node needs to give the same answers:

* ``sql/``: the SQL database (devices, alerts, notices, the event log, users, the audit chain,
  twins, reports, releases' rollouts): SQLite's online backup API (a consistent copy while
  ingest writes) or ``pg_dump`` (one snapshot transaction);
* ``influx/``: InfluxDB's portable backup (``influxd backup -portable`` over its RPC bind
  address, ``influx.backup_address``): shards, retention policies, continuous queries;
* ``files/``: snapshots, evidence export ZIPs, kept report files, published releases;
* ``keys/``: the public halves of the evidence signing keys (current and retired) and of the
  fleet key. The private keys are never in a backup (docs/scaling.md: keep them apart).

The parts are taken one after the other, SQL first: each part is consistent in itself, and a
later part holds at least what an earlier one refers to (a snapshot file for every event, an
export ZIP for every export row; a few seconds more of time series). ``manifest.json`` lists
every file with its SHA-256; restore checks them before it touches anything.

Restore is for a fresh node: an empty SQL database, no such InfluxDB database, empty data
folders (it refuses otherwise, saying what is in the way). Then start the cloud: the schema
is upgraded if the backup came from an older release.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commune_iot import __version__

if TYPE_CHECKING:
    from cloud.config import CloudConfig

FORMAT = 1


class BackupError(RuntimeError):
    """What went wrong, for the operator."""


def _say(msg: str) -> None:
    print(msg, flush=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_PACKAGES = {"influxd": "influxdb", "pg_dump": "postgresql-client", "pg_restore": "postgresql-client"}


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    except FileNotFoundError:
        raise BackupError(
            f"{what}: {argv[0]} not found (apt-get install {_PACKAGES.get(argv[0], argv[0])})"
        ) from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise BackupError(f"{what} failed ({done.returncode}): {tail}")


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return Path(u.database) if u.get_backend_name() == "sqlite" and u.database else None


def _pg(url: str, password: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password (it goes in PGPASSWORD, not in the process list)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    pw = password or (u.password or "")
    u = u.set(drivername="postgresql", password=None)
    return u.render_as_string(hide_password=False), {**os.environ, "PGPASSWORD": str(pw)}


def _file_dirs(cfg: CloudConfig) -> dict[str, Path]:
    return {
        "snapshots": cfg.snapshots_dir,
        "exports": cfg.events.exports_dir,
        "reports": cfg.reports.output_dir,
        "releases": cfg.releases.dir,
    }


# --------------------------------------------------------------------------- backup
def backup(cfg: CloudConfig, out: Path) -> Path:
    """Write one backup under ``out``; returns its directory."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = out / f"ciot-backup-{stamp}"
    dest = out / f"ciot-backup-{stamp}.partial"  # renamed once complete: a half backup never looks whole
    dest.mkdir(parents=True)
    manifest: dict[str, Any] = {"format": FORMAT, "release": __version__, "started_at": time.time()}
    took: dict[str, float] = {}

    t = time.monotonic()
    manifest["sql"] = _backup_sql(cfg, dest / "sql")
    took["sql_s"] = time.monotonic() - t
    _say(
        f"  SQL ({manifest['sql']['engine']}, revision {manifest['sql']['revision']}): {took['sql_s']:.1f} s"
    )

    t = time.monotonic()
    _run(
        [
            "influxd",
            "backup",
            "-portable",
            "-host",
            cfg.influx.backup_address,
            "-db",
            cfg.influx.database,
            str(dest / "influx"),
        ],
        f"InfluxDB backup of {cfg.influx.database} from {cfg.influx.backup_address}",
    )
    manifest["influx"] = {"database": cfg.influx.database}
    took["influx_s"] = time.monotonic() - t
    _say(f"  InfluxDB {cfg.influx.database} (portable backup): {took['influx_s']:.1f} s")

    t = time.monotonic()
    counts = {}
    for name, src in _file_dirs(cfg).items():
        counts[name] = _copy_tree(src, dest / "files" / name) if src.is_dir() else 0
    manifest["files"] = counts
    took["files_s"] = time.monotonic() - t
    _say("  files: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + f": {took['files_s']:.1f} s")

    manifest["keys"] = _backup_public_keys(cfg, dest / "keys")
    manifest["finished_at"] = time.time()
    manifest["durations_s"] = {k: round(v, 2) for k, v in took.items()}
    manifest["sha256"] = {
        str(p.relative_to(dest)): _sha256(p) for p in sorted(dest.rglob("*")) if p.is_file()
    }
    manifest["bytes"] = sum((dest / p).stat().st_size for p in manifest["sha256"])
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    dest.rename(final)
    return final


def _backup_sql(cfg: CloudConfig, dest: Path) -> dict[str, Any]:
    from cloud.storage.schema import current
    from cloud.storage.sql import SqlStore

    dest.mkdir()
    url, password = cfg.sql.url, cfg.sql.password_value()
    engine = SqlStore.engine_for(url, password=password)
    try:
        revision = current(engine)
    finally:
        engine.dispose()
    path = _sqlite_path(url)
    if path is not None:
        if not path.is_file():
            raise BackupError(f"no SQLite database at {path}")
        src = sqlite3.connect(path)
        dst = sqlite3.connect(dest / "cloud.sqlite3")
        try:
            src.backup(dst)  # one step: a consistent snapshot while the cloud writes (WAL)
        finally:
            dst.close()
            src.close()
        return {"engine": "sqlite", "file": "sql/cloud.sqlite3", "revision": revision}
    libpq, env = _pg(url, password)
    _run(
        ["pg_dump", "--format=custom", "--no-owner", "--file", str(dest / "cloud.pgdump"), libpq],
        "pg_dump",
        env,
    )
    return {"engine": "postgresql", "file": "sql/cloud.pgdump", "revision": revision}


def _copy_tree(src: Path, dest: Path) -> int:
    """Copy the files of ``src`` (not the ones being written: ``*.tmp*``); a file deleted
    meanwhile (retention) is skipped."""
    n = 0
    for p in sorted(src.rglob("*")):
        if not p.is_file() or ".tmp" in p.name:
            continue
        target = dest / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(p, target)
        except FileNotFoundError:
            continue
        n += 1
    return n


def _backup_public_keys(cfg: CloudConfig, dest: Path) -> list[dict[str, str]]:
    from cloud.events.signing import EvidenceSigner

    keys: list[dict[str, str]] = []
    ev = EvidenceSigner(cfg.events.signing_key_file)
    (dest / "evidence").mkdir(parents=True)
    found = ev.retired() + ([ev.current()] if cfg.events.signing_key_file.exists() else [])
    for pub in found:
        (dest / "evidence" / f"{pub.fingerprint}.pub.pem").write_text(pub.pem)
        keys.append({"kind": "evidence", "fingerprint": pub.fingerprint})
    fleet = cfg.fleet.signing_key_file
    if fleet.exists():
        from wire import crypto

        pub_b64 = crypto.verify_key_b64(crypto.load_signing_key(fleet.read_bytes()))
        (dest / "fleet.pub").write_text(pub_b64 + "\n")
        keys.append({"kind": "fleet", "public_key": pub_b64})
    return keys


# --------------------------------------------------------------------------- restore
def restore(cfg: CloudConfig, src: Path) -> dict[str, float]:
    """Restore the backup ``src`` onto this (fresh) node; returns seconds per part."""
    manifest = json.loads((src / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src}: backup format {manifest.get('format')}, this release reads {FORMAT}")
    t = time.monotonic()
    bad = [p for p, h in manifest["sha256"].items() if not (src / p).is_file() or _sha256(src / p) != h]
    if bad:
        raise BackupError(f"{src}: {len(bad)} files missing or changed since the backup, e.g. {bad[:3]}")
    took = {"check_s": time.monotonic() - t}
    _fresh(cfg, manifest)

    t = time.monotonic()
    _restore_sql(cfg, src, manifest["sql"])
    took["sql_s"] = time.monotonic() - t
    t = time.monotonic()
    _run(
        [
            "influxd",
            "restore",
            "-portable",
            "-host",
            cfg.influx.backup_address,
            "-db",
            manifest["influx"]["database"],
            "-newdb",
            cfg.influx.database,
            str(src / "influx"),
        ],
        f"InfluxDB restore into {cfg.influx.database} at {cfg.influx.backup_address}",
    )
    took["influx_s"] = time.monotonic() - t
    t = time.monotonic()
    for name, dest in _file_dirs(cfg).items():
        if (src / "files" / name).is_dir():
            _copy_tree(src / "files" / name, dest)
    _restore_public_keys(cfg, src / "keys")
    took["files_s"] = time.monotonic() - t
    return took


def _fresh(cfg: CloudConfig, manifest: dict[str, Any]) -> None:
    """Refuse to restore over data: say what is in the way."""
    from sqlalchemy import inspect

    from cloud.storage.sql import SqlStore

    problems = []
    path = _sqlite_path(cfg.sql.url)
    if path is not None:
        if path.exists():
            problems.append(f"the SQLite database {path} exists (move it away)")
    else:
        engine = SqlStore.engine_for(cfg.sql.url, password=cfg.sql.password_value())
        try:
            tables = inspect(engine).get_table_names()
        finally:
            engine.dispose()
        if tables:
            problems.append(f"the SQL database has {len(tables)} tables (restore into an empty database)")
    if (path is None) != (manifest["sql"]["engine"] == "postgresql"):
        problems.append(f"the backup's SQL is {manifest['sql']['engine']}; sql.url is another engine")
    for name, d in _file_dirs(cfg).items():
        if d.is_dir() and any(d.iterdir()):
            problems.append(f"{name} folder {d} is not empty")
    if problems:
        raise BackupError("this is not a fresh node: " + "; ".join(problems))


def _restore_sql(cfg: CloudConfig, src: Path, sql: dict[str, Any]) -> None:
    path = _sqlite_path(cfg.sql.url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        s = sqlite3.connect(src / sql["file"])
        d = sqlite3.connect(path)
        try:
            s.backup(d)
            d.execute("PRAGMA journal_mode=WAL")
        finally:
            d.close()
            s.close()
        return
    libpq, env = _pg(cfg.sql.url, cfg.sql.password_value())
    _run(
        [
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "-d",
            libpq,
            str(src / sql["file"]),
        ],
        "pg_restore",
        env,
    )


def _restore_public_keys(cfg: CloudConfig, keys: Path) -> None:
    """The backed-up evidence public keys become the node's retired keys (its own, for verifying
    old exports); the current key is the operator's to put back (its private file)."""
    retired = cfg.events.signing_key_file.parent / "retired"
    pubs = sorted((keys / "evidence").glob("*.pub.pem")) if (keys / "evidence").is_dir() else []
    if pubs:
        retired.mkdir(mode=0o700, parents=True, exist_ok=True)
        for p in pubs:
            shutil.copy2(p, retired / p.name)


# --------------------------------------------------------------------------- command line
def _backup_cmd(args: argparse.Namespace) -> int:
    from cloud.config import load_config

    cfg = load_config(args.config)
    t0 = time.monotonic()
    _say(f"backing up the cloud of {args.config or '$CIOT_CLOUD_CONFIG'} into {args.out}")
    try:
        dest = backup(cfg, args.out)
    except BackupError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 1
    m = json.loads((dest / "manifest.json").read_text())
    took = time.monotonic() - t0
    mb = m["bytes"] / 1e6
    _say(f"backup {dest}: {mb:.1f} MB in {took:.1f} s (without the private keys: docs/scaling.md)")
    print(
        json.dumps({"backup": str(dest), "bytes": m["bytes"], "seconds": round(took, 2), **m["durations_s"]})
    )
    return 0


def _restore_cmd(args: argparse.Namespace) -> int:
    from cloud.config import load_config

    cfg = load_config(args.config)
    t0 = time.monotonic()
    _say(f"restoring {args.backup} onto the node of {args.config or '$CIOT_CLOUD_CONFIG'}")
    try:
        took = restore(cfg, args.backup)
    except BackupError as exc:
        print(f"restore: {exc}", file=sys.stderr)
        return 1
    total = time.monotonic() - t0
    _say(
        f"restored in {total:.1f} s. Put the private keys back from where you keep them "
        f"({cfg.events.signing_key_file}, {cfg.fleet.signing_key_file}), then start the cloud."
    )
    print(json.dumps({"seconds": round(total, 2), **{k: round(v, 2) for k, v in took.items()}}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("backup", help="copy the cloud's SQL, InfluxDB, files and public keys while it runs")
    b.add_argument("--config", type=Path, default=None, help="cloud YAML (default: $CIOT_CLOUD_CONFIG)")
    b.add_argument("--out", type=Path, required=True, help="folder the backup directory is made in")
    b.set_defaults(func=_backup_cmd)
    r = sub.add_parser("restore", help="restore a backup onto a fresh node (empty databases and folders)")
    r.add_argument("backup", type=Path, help="the backup directory (ciot-backup-<time>)")
    r.add_argument("--config", type=Path, default=None, help="cloud YAML of the new node")
    r.set_defaults(func=_restore_cmd)
