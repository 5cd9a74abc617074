"""Retention: events and snapshots older than the configured period are deleted.

Kept: events marked to keep and events in an evidence export (the ZIP holds their
pictures, but the record must stay to match it). A snapshot file goes only when no
remaining event refers to it. Each run is logged and written to the audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy import delete

from cloud.audit.trail import AuditTrail
from cloud.events.store import EventStore
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
            if store.snapshot_in_use(sha):
                continue
            if snapshots.delete(sha):
                snaps_deleted += 1
            with store.engine.begin() as conn:
                conn.execute(delete(snapshot_rows).where(snapshot_rows.c.sha256 == sha))
        if len(expired) < batch:
            break
    res = RetentionResult(events_deleted, snaps_deleted, cutoff)
    log.info(
        "retention: deleted %d events and %d snapshots older than %.0f days (kept: marked and exported)",
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
