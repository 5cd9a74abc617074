"""Retention: events and snapshots older than the configured period are deleted.

Kept: events marked to keep and events in an evidence export (the ZIP holds their
pictures, but the record must stay to match it). A snapshot file goes only when nothing
still kept refers to it: no remaining event, and no alert that is still open or resolved
within the period (a tampered camera's alert picture, ``alerts.snapshot_sha256``). Pictures
of alerts resolved before the period go too; the alert row stays (the alert history, with
the picture's SHA-256), and its page says the picture was deleted. Each run is logged and
written to the audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select

from cloud.audit.trail import AuditTrail
from cloud.events.store import EventStore
from cloud.storage.alerts_sql import alerts
from cloud.storage.snapshots import SnapshotStore
from cloud.storage.sql import snapshots as snapshot_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    events_deleted: int
    snapshots_deleted: int
    cutoff: float


def run_retention(
    store: EventStore,
    snapshots: SnapshotStore,
    audit: AuditTrail | None,
    days: float,
    *,
    now: float | None = None,
    batch: int = 1000,
) -> RetentionResult:
    cutoff = (time.time() if now is None else now) - days * 86400
    events_deleted = snaps_deleted = 0
    while True:
        expired = store.expired(cutoff, batch)
        if not expired:
            break
        events_deleted += store.delete([pk for pk, _ in expired])
        for sha in {s for _, s in expired if s}:
            snaps_deleted += _forget(store, snapshots, sha, cutoff)
        if len(expired) < batch:
            break
    for sha in _old_alert_pictures(store, cutoff):
        if snapshots.path_for(sha).exists():
            snaps_deleted += _forget(store, snapshots, sha, cutoff)
    res = RetentionResult(events_deleted, snaps_deleted, cutoff)
    log.info(
        "retention: deleted %d events and %d snapshots older than %.0f days (kept: marked and exported "
        "events, pictures of alerts open or resolved since)",
        events_deleted,
        snaps_deleted,
        days,
    )
    if audit is not None and (events_deleted or snaps_deleted):
        audit.record(
            "system",
            "retention",
            detail={"events_deleted": events_deleted, "snapshots_deleted": snaps_deleted, "days": days},
        )
    return res


def _alert_keeps(sha: str, cutoff: float) -> Any:
    """Alerts that still need the picture: open, or resolved within the period."""
    c = alerts.c
    return (
        select(func.count())
        .select_from(alerts)
        .where(c.snapshot_sha256 == sha, or_(c.resolved_at.is_(None), c.resolved_at >= cutoff))
    )


def _forget(store: EventStore, snapshots: SnapshotStore, sha: str, cutoff: float) -> int:
    """Delete one snapshot file and its row unless an event or a kept alert refers to it; 1 if deleted."""
    if store.snapshot_in_use(sha):
        return 0
    with store.engine.connect() as conn:
        if conn.execute(_alert_keeps(sha, cutoff)).scalar_one():
            return 0
    deleted = int(snapshots.delete(sha))
    with store.engine.begin() as conn:
        conn.execute(delete(snapshot_rows).where(snapshot_rows.c.sha256 == sha))
    return deleted


def _old_alert_pictures(store: EventStore, cutoff: float) -> list[str]:
    """Pictures of alerts resolved before the period (their files may be gone already)."""
    c = alerts.c
    q = select(c.snapshot_sha256).where(c.snapshot_sha256.is_not(None), c.resolved_at < cutoff).distinct()
    with store.engine.connect() as conn:
        return [str(sha) for sha in conn.execute(q).scalars() if sha]


async def retention_loop(
    store: EventStore, snapshots: SnapshotStore, audit: AuditTrail, days: float, interval_s: float
) -> None:
    """Run now, then every ``interval_s``; failures are logged and retried next time."""
    while True:
        try:
            await asyncio.to_thread(run_retention, store, snapshots, audit, days)
        except Exception:
            log.exception("retention run failed; retrying in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
