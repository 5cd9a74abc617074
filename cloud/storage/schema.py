"""The SQL schema, kept by Alembic migrations (``cloud/storage/migrations``), for SQLite and PostgreSQL.

A deployment keeps its database across upgrades. The first store to meet a database
upgrades it to the newest migration; each store then checks that its tables and columns
are there, so a table changed in code without a migration stops the start with the fix in
the message instead of failing at the first query. Workers starting together take turns:
on PostgreSQL the migrating transaction holds an advisory lock, on SQLite a file lock
beside the database file; whoever comes second finds the work done.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: The advisory lock the migration holds on PostgreSQL ("ciot" in ASCII).
LOCK_KEY = 0x63696F74
HOW_TO = "see cloud/storage/README.md"


class SchemaError(RuntimeError):
    """The database and the code disagree in a way only a developer can mend."""


def alembic_config() -> Config:
    """Alembic's settings, without an alembic.ini (the caller hands it a connection)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


@functools.cache
def _history() -> tuple[str, frozenset[str]]:
    """The newest migration's revision, and every revision (read once per process)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    heads = scripts.get_heads()
    if len(heads) != 1:
        raise SchemaError(
            f"the migrations have {len(heads)} heads ({', '.join(sorted(heads))}): two branches each "
            f"added one; renumber the later one and make it revise the other ({HOW_TO})"
        )
    return heads[0], frozenset(s.revision for s in scripts.walk_revisions())


def head() -> str:
    """The newest migration's revision."""
    return _history()[0]


def current(engine: Engine) -> str | None:
    """The database's revision; None for an empty database or one made before migrations."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the database to the newest migration; returns (revision before, after)."""
    target = head()
    if current(engine) == target:
        return target, target
    with _exclusive(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None and before not in _history()[1]:
            raise SchemaError(
                f"the database is at revision {before}, which this release does not know (its "
                f"newest is {target}): a newer release upgraded it; run that one (no downgrades)"
            )
        if before != target:  # not done meanwhile by a worker that held the lock first
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    if before != target:
        log.warning(
            "database %s upgraded from revision %s to %s",
            engine.url.render_as_string(hide_password=True),
            before or "(none)",
            target,
        )
    return before, target


@contextlib.contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A transaction that only one process at a time gets, across the machine or the cluster."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield conn  # released with the transaction
        return
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        with engine.begin() as conn:
            yield conn
        return
    with open(f"{path}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


#: Per engine, the tables already found complete (the check runs once per table).
_checked: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def ensure_schema(engine: Engine, metadata: MetaData) -> None:
    """Migrate ``engine``'s database once, then check that ``metadata``'s tables are in it."""
    with _guard:
        checked = _checked.get(engine)
        if checked is None:
            migrate(engine)
            checked = _checked[engine] = set()
        todo = [t for t in metadata.sorted_tables if t.name not in checked]
        if not todo:
            return
        insp = inspect(engine)
        tables = set(insp.get_table_names())
        missing: list[str] = []
        for table in todo:
            if table.name not in tables:
                missing.append(f"table {table.name}")
                continue
            have = {c["name"] for c in insp.get_columns(table.name)}
            gone = [f"column {table.name}.{c.name}" for c in table.columns if c.name not in have]
            missing += gone
            if not gone:
                checked.add(table.name)
    if missing:
        raise SchemaError(
            f"the database (revision {head()}) lacks {', '.join(missing)}: the code defines "
            f"them but no migration creates them; write one with "
            f'`commune-iot db revision -m "what changed"` ({HOW_TO})'
        )


def new_revision(message: str, *, autogenerate: bool = True) -> Path:
    """Write the next migration file (``NNNN_<slug>.py``) and return its path.

    With ``autogenerate``, its operations are what the table modules define beyond the
    newest migration, found by comparing them with a scratch SQLite database at head;
    read it before committing (Alembic cannot tell a rename from a drop and an add).
    """
    import tempfile

    from sqlalchemy import create_engine

    scripts = ScriptDirectory.from_config(alembic_config())
    numbers = [int(s.revision) for s in scripts.walk_revisions() if s.revision.isdigit()]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    with tempfile.TemporaryDirectory(prefix="ciot-revision-") as tmp:
        engine = create_engine(f"sqlite:///{tmp}/scratch.db")
        try:
            with engine.begin() as conn:
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                script = command.revision(cfg, message=message, autogenerate=autogenerate, rev_id=rev_id)
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
