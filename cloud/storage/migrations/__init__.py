"""The SQL schema's history as Alembic migrations, one file per change in ``versions/``.

Run by :func:`cloud.storage.schema.migrate` when a store first meets a database, and by
``commune-iot db upgrade``; ``commune-iot db revision -m "..."`` writes the next one
(see cloud/storage/README.md).
"""

from __future__ import annotations

from sqlalchemy import MetaData


def all_metadata() -> list[MetaData]:
    """Every table the cloud defines, for autogenerate and the schema check (imported late:
    the table modules import ``cloud.storage.schema``, which imports this package)."""
    from cloud.audit.trail import metadata as audit
    from cloud.auth.users import metadata as users
    from cloud.events.evidence import metadata as evidence
    from cloud.events.store import metadata as events
    from cloud.fleet.rollout import metadata as rollouts
    from cloud.fleet.store import metadata as fleet
    from cloud.onboarding.store import metadata as inventory
    from cloud.reports.store import metadata as reports
    from cloud.storage.alerts_sql import metadata as alerts
    from cloud.storage.notice_outbox import metadata as notices
    from cloud.storage.oauth_tokens import metadata as oauth
    from cloud.storage.sql import metadata as state

    return [
        state,
        events,
        alerts,
        notices,
        audit,
        users,
        evidence,
        reports,
        oauth,
        fleet,
        rollouts,
        inventory,
    ]
