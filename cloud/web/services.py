"""The stores behind the web UI and its JSON API, built once per cloud process."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from cloud.audit.trail import AuditTrail
from cloud.auth.users import LoginLimits, UserStore
from cloud.config import CloudConfig
from cloud.events.evidence import EvidenceExports
from cloud.events.store import EventStore
from cloud.inventory import Inventory
from cloud.storage.snapshots import SnapshotStore


@dataclass
class WebServices:
    cfg: CloudConfig
    inventory: Inventory
    users: UserStore
    audit: AuditTrail
    events: EventStore
    exports: EvidenceExports
    snapshots: SnapshotStore

    @classmethod
    def build(
        cls, cfg: CloudConfig, engine: Engine, inventory: Inventory, snapshots: SnapshotStore
    ) -> WebServices:
        w = cfg.web
        users = UserStore(
            engine,
            session_ttl_s=w.session_ttl_h * 3600,
            limits=LoginLimits(w.login_window_s, w.login_max_per_user, w.login_max_per_ip),
        )
        events = EventStore(engine)
        return cls(
            cfg=cfg,
            inventory=inventory,
            users=users,
            audit=AuditTrail(engine),
            events=events,
            exports=EvidenceExports(engine, events, snapshots, cfg.events.exports_dir),
            snapshots=snapshots,
        )

    def names(self) -> dict[str, str]:
        """Display names of communes and sites (Vietnamese, from the inventory)."""
        out: dict[str, str] = {}
        for c in self.inventory.communes:
            out[c.id] = c.name or c.id
        for s in self.inventory.sites:
            out[s.id] = s.name or s.id
        return out
