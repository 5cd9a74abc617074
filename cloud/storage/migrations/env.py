"""Alembic's entry point: runs the migrations on the connection :mod:`cloud.storage.schema` hands it.

There is no alembic.ini and no URL here: the caller opens the connection (and holds the
migration lock), so ``alembic`` is never pointed at a database by hand.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cloud.storage.migrations import all_metadata

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=all_metadata(),
    # SQLite alters a table by copying it; batch mode writes migrations that do so.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
