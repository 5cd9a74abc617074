"""``commune-iot db upgrade|current|revision``: the SQL schema's migrations (cloud/storage/README.md).

The cloud upgrades its database itself when it starts; ``db upgrade`` does it beforehand,
e.g. before rolling a release out to several nodes, and says what it did.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _engine(args: argparse.Namespace) -> Engine:
    from cloud.config import load_config
    from wire import logs

    logs.setup()
    from cloud.storage.sql import SqlStore

    cfg = load_config(args.config, **({"sql": {"url": args.sql}} if args.sql else {}))
    # SqlStore would migrate on creation; these commands want the engine only.
    return SqlStore.engine_for(cfg.sql.url, password=cfg.sql.password_value())


def _upgrade(args: argparse.Namespace) -> int:
    from cloud.storage.schema import migrate

    engine = _engine(args)
    try:
        before, after = migrate(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    print(
        f"{url}: "
        + (f"at {after} already" if before == after else f"upgraded {before or '(none)'} -> {after}")
    )
    return 0


def _current(args: argparse.Namespace) -> int:
    from cloud.storage.schema import current, head

    engine = _engine(args)
    try:
        rev = current(engine)
    finally:
        engine.dispose()
    latest = head()
    print(
        f"database: {rev or '(none)'}, newest migration: {latest}"
        + ("" if rev == latest else " (run: db upgrade)")
    )
    return 0 if rev == latest else 1


def _revision(args: argparse.Namespace) -> int:
    from cloud.storage.schema import new_revision

    path = new_revision(args.message, autogenerate=not args.empty)
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():  # the generated file in the project's style (dev installs have ruff)
        subprocess.run([ruff, "check", "--fix", "-q", str(path)], check=False)
        subprocess.run([ruff, "format", "-q", str(path)], check=False)
    print(f"wrote {path}; read it, adjust it, and run the tests on both engines")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = sub.add_parser("db", help="SQL schema migrations: upgrade, current revision, write a new one")
    ds = db.add_subparsers(dest="db_cmd", required=True)
    for name, text, func in (
        (
            "upgrade",
            "upgrade the database to the newest migration (the cloud also does it when it starts)",
            _upgrade,
        ),
        ("current", "the database's revision and the newest one (exit 1 when behind)", _current),
    ):
        p = ds.add_parser(name, help=text)
        p.add_argument(
            "--config", type=Path, default=None, help="cloud config YAML (default $CIOT_CLOUD_CONFIG)"
        )
        p.add_argument("--sql", default=None, help="SQL URL instead of the config's sql.url")
        p.set_defaults(func=func)
    rev = ds.add_parser(
        "revision", help="developers: write the next migration from the table modules' changes"
    )
    rev.add_argument("-m", "--message", required=True, help='what changes, e.g. "fleet: device twins"')
    rev.add_argument(
        "--empty", action="store_true", help="no autogenerate: an empty upgrade() to write by hand"
    )
    rev.set_defaults(func=_revision)
