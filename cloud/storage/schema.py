"""Create and extend the SQL schema in place, for SQLite and PostgreSQL alike.

A deployment keeps its database across upgrades. Tables are created when missing; a
column added by a newer release is added with ``ALTER TABLE ... ADD COLUMN`` (new
columns are always nullable or have a server default, so existing rows stay valid), and an
index added by a newer release is created.
Nothing is ever dropped or renamed here: that would need a real migration.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateColumn

log = logging.getLogger(__name__)


def ensure_schema(engine: Engine, metadata: MetaData) -> None:
    """Create missing tables and columns; workers starting together may race, so retry."""
    for attempt in range(10):
        try:
            metadata.create_all(engine)
            _add_missing_columns(engine, metadata)
            return
        except (OperationalError, IntegrityError, ProgrammingError):
            if attempt == 9:
                raise
            time.sleep(0.1 * (attempt + 1))


def _add_missing_columns(engine: Engine, metadata: MetaData) -> None:
    insp = inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in insp.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            ddl = CreateColumn(column).compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
            log.warning("database upgraded: added column %s.%s", table.name, column.name)
        indexes = {i["name"] for i in insp.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(engine, checkfirst=True)
                log.warning("database upgraded: added index %s on %s", index.name, table.name)
