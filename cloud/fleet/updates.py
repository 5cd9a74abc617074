"""Agent updates as one service for the API and the command line: releases, rollouts, board
auth; and ``fleet_sender``, which makes rollouts' ``update`` commands fleet commands."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cloud.audit.trail import AuditTrail
from cloud.config import CloudConfig
from cloud.fleet.boardauth import BoardAuth
from cloud.fleet.releases import ReleaseStore
from cloud.fleet.rollout import ISSUER, Rollouts, UpdateSender
from cloud.inventory import Inventory, NodeIds
from cloud.storage.sql import SqlStore
from wire.release import UpdateArgs

if TYPE_CHECKING:
    from cloud.fleet.service import FleetService

#: Why rollouts are refused when the fleet service is off (updates are fleet commands).
NO_FLEET = (
    "the fleet service is off (fleet.enabled: false): update commands go to boards through it, "
    "so no rollout can start or resume; turn it on and restart `commune-iot cloud serve`"
)


@dataclass
class Updates:
    releases: ReleaseStore
    rollouts: Rollouts
    boards: BoardAuth
    sql: SqlStore
    inventory: Inventory

    @classmethod
    def build(cls, cfg: CloudConfig, sql: SqlStore, inventory: Inventory) -> Updates:
        rc = cfg.releases
        releases = ReleaseStore(rc.dir, rc.trusted_keys)
        rollouts = Rollouts(
            sql.engine,
            inventory,
            releases,
            sql.node_states,
            public_url=rc.public_url,
            timeout_s=rc.board_timeout_s,
            unavailable="" if cfg.fleet.enabled else NO_FLEET,
        )
        boards = BoardAuth(rc.board_passwd_file, NodeIds(inventory))  # boards onboarded later too
        return cls(releases, rollouts, boards, sql, inventory)

    def nodes(self) -> list[dict[str, Any]]:
        """Who runs what: every board of the inventory (and any other that reported), with its
        agent version and its last update's outcome."""
        states = self.sql.node_states()
        out = []
        listed = [(n.id, n.commune) for n in self.inventory.nodes]
        listed += [
            (node, st["commune"])
            for node, st in sorted(states.items())
            if self.inventory.node(node) is None and not self.inventory.is_retired(node)
        ]
        for node, commune in listed:
            st = states.get(node, {})
            update = None
            if st.get("update_version"):
                ts = st.get("update_ts")
                update = {
                    "version": st["update_version"],
                    "state": st["update_state"],
                    "error": st.get("update_error") or "",
                    "ts": datetime.fromtimestamp(ts, UTC) if ts else None,
                }
            out.append(
                {
                    "node": node,
                    "commune": commune,
                    "status": st.get("status"),
                    "agent_version": st.get("agent_version") or None,
                    "update": update,
                }
            )
        return out

    def overview(self) -> dict[str, Any]:
        nodes = self.nodes()
        releases = []
        for rel in self.releases.all():
            doc = rel.as_dict()
            doc["nodes"] = [n["node"] for n in nodes if n["agent_version"] == rel.version]
            releases.append(doc)
        return {"releases": releases, "nodes": nodes}


def fleet_sender(fleet: FleetService, audit: AuditTrail) -> UpdateSender:
    """Rollouts' ``update`` commands through ``fleet`` like any other command: signed, queued
    until the board is online, expiring, their state in the API, and in the audit trail
    (actor ``rollout``, with the rollout's id; who started the rollout is its own entry)."""

    async def send(node: str, commune: str, args: UpdateArgs, ttl_s: float, *, rollout: int) -> str:
        doc = args.model_dump(mode="json", exclude_none=True)
        row, _ = await asyncio.to_thread(fleet.issue, node, "update", doc, ttl_s=ttl_s, by=ISSUER)
        await asyncio.to_thread(
            audit.record,
            ISSUER,
            "fleet_command",
            f"command:{row.id}",
            commune=commune,
            detail={"node": node, "name": row.name, "args": row.args, "ttl_s": ttl_s, "rollout": rollout},
        )
        return row.id

    return send
