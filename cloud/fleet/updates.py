"""Agent updates as one service for the API and the command line: releases, rollouts, board auth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud.config import CloudConfig
from cloud.fleet.boardauth import BoardAuth
from cloud.fleet.releases import ReleaseStore
from cloud.fleet.rollout import Rollouts
from cloud.inventory import Inventory, NodeIds
from cloud.storage.sql import SqlStore


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
