"""The stores behind the web UI and its JSON API, built once per cloud process."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from cloud.audit.refusals import RefusalLog
from cloud.audit.trail import AuditTrail
from cloud.auth.users import LoginLimits, UserStore
from cloud.config import CloudConfig
from cloud.events.evidence import EvidenceExports
from cloud.events.signing import EvidenceSigner
from cloud.events.store import EventStore
from cloud.inventory import Inventory
from cloud.storage.snapshots import SnapshotStore


def user_store(cfg: CloudConfig, engine: Engine) -> UserStore:
    """Users with the configured session length and login throttling (the app and the CLI)."""
    w = cfg.web
    return UserStore(
        engine,
        session_ttl_s=w.session_ttl_h * 3600,
        limits=LoginLimits(w.login_window_s, w.login_max_per_user, w.login_max_per_ip, w.login_backoff_s),
    )


@dataclass
class WebServices:
    cfg: CloudConfig
    inventory: Inventory
    users: UserStore
    audit: AuditTrail
    refusals: RefusalLog
    events: EventStore
    exports: EvidenceExports
    snapshots: SnapshotStore

    @classmethod
    def build(
        cls, cfg: CloudConfig, engine: Engine, inventory: Inventory, snapshots: SnapshotStore
    ) -> WebServices:
        events = EventStore(engine)
        trail = AuditTrail(engine)
        signer = EvidenceSigner(cfg.events.signing_key_file)
        return cls(
            cfg=cfg,
            inventory=inventory,
            users=user_store(cfg, engine),
            audit=trail,
            refusals=RefusalLog(trail, window_s=cfg.web.refusal_window_s, max_rows=cfg.web.refusal_max_rows),
            events=events,
            exports=EvidenceExports(engine, events, snapshots, cfg.events.exports_dir, signer),
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

    def people(self) -> dict[str, str]:
        """User name -> display name, for pages and exports that name people (few users: all)."""
        return {u.username: u.display_name or u.username for u in self.users.all()}
