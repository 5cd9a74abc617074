"""One process's inventory, kept equal to SQL's.

Every part of a cloud process (ingest's converter, alerting, notifications, reports, the
fleet, the API and the pages) holds the same ``Inventory`` object. This polls the SQL
version counter (one indexed row, every ``inventory_poll_s``) and, when it moved, loads the
inventory and swaps it into that object (``Inventory.adopt``). A change made through this
process's own API is taken at once (``refresh`` right after the commit); one made by another
process (another cloud node, ``commune-iot inventory import``) within one poll. Parts that
derive something from the inventory compare ``inventory.version``: the converter drops its
cached topic tags, alerting stops watching decommissioned boards and resolves their alerts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from sqlalchemy import Engine

from cloud.inventory import Inventory, load_inventory
from cloud.onboarding.store import InventoryStore

log = logging.getLogger(__name__)


class LiveInventory:
    def __init__(self, store: InventoryStore, inventory: Inventory) -> None:
        self.store = store
        self.inventory = inventory
        self._lock = threading.Lock()

    @classmethod
    def open(cls, engine: Engine, seed: Path, *, by: str = "seed") -> LiveInventory:
        """The SQL inventory; an empty database is first filled from the YAML ``seed``."""
        store = InventoryStore(engine)
        if not store.version():
            if not seed.is_file():
                raise ValueError(
                    f"the database holds no inventory and {seed} does not exist: set `inventory` to the "
                    "inventory YAML to start from, or run `commune-iot inventory import FILE`"
                )
            if store.seed(load_inventory(seed), by):
                log.warning("inventory database was empty: filled from %s", seed)
        return cls(store, store.load())

    def refresh(self) -> bool:
        """Take SQL's inventory if it changed; True when it did."""
        with self._lock:  # the poller and an API call may refresh at once: load once
            version = self.store.version()
            if version == self.inventory.version:
                return False
            before = self.inventory.version
            self.inventory.adopt(self.store.load())
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.inventory.counts().items()))
        log.info(
            "inventory version %d (was %d): %s",
            self.inventory.version,
            before,
            counts,
            extra={"inventory_version": self.inventory.version},
        )
        return True

    async def run(self, every_s: float) -> None:
        """Poll until cancelled; a database that does not answer is tried again next round."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:
                log.warning(
                    "cannot read the inventory's version (%s: %s); next round", type(exc).__name__, exc
                )
