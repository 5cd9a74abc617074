"""A small inventory and a fake-clock driver for the alert engine's rule tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud.alerting.engine import AlertEngine, Change
from cloud.alerting.settings import AlertingConfig
from cloud.inventory import Inventory

TU_TRA = [f"tt-ap-{i:02d}" for i in range(1, 7)]
DA_RON = ["dr-cam-01", "dr-cam-02", "dr-ap-01"]


def inventory() -> Inventory:
    """Six nodes in Tu Tra, three in Da Ron; one device per node named like it, as in the pilot."""
    nodes: list[dict[str, Any]] = []
    devices: list[dict[str, Any]] = []
    for commune, ids in (("tu-tra", TU_TRA), ("da-ron", DA_RON)):
        for i in ids:
            nodes.append({"id": i, "commune": commune, "site": f"{commune}-site"})
            kind = "camera" if "cam" in i else "ap"
            devices.append({"id": i, "kind": kind, "node": i, "commune": commune, "site": f"{commune}-site"})
    return Inventory.model_validate(
        {
            "communes": [{"id": "tu-tra", "name": "Tu Tra"}, {"id": "da-ron", "name": "Đạ Ròn"}],
            "sites": [
                {"id": "tu-tra-site", "commune": "tu-tra"},
                {"id": "da-ron-site", "commune": "da-ron"},
            ],
            "nodes": nodes,
            "devices": devices,
        }
    )


def commune_of(node: str) -> str:
    return "tu-tra" if node in TU_TRA else "da-ron"


@dataclass
class Sim:
    """Drives an engine with a fake clock: nodes send heartbeats unless stopped; ticks every 0.5 s."""

    engine: AlertEngine
    now: float = 1_000_000.0
    interval: float = 10.0
    alive: set[str] = field(default_factory=set)
    phase: dict[str, float] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        cfg: AlertingConfig | None = None,
        nodes: list[str] | None = None,
        settle: bool = True,
        interval: float = 10.0,
    ) -> Sim:
        cfg = cfg or AlertingConfig()
        sim = cls(AlertEngine(cfg, inventory()), interval=interval)
        sim.engine.broker(True, sim.now)
        for i, n in enumerate(nodes if nodes is not None else TU_TRA + DA_RON):
            sim.birth(n)
            sim.phase[n] = (i * 1.7) % sim.interval  # heartbeats spread over the interval
        if settle:
            sim.run(cfg.settle_s + 1)
            sim.changes.clear()
        return sim

    def birth(self, node: str, session: str = "a1b2c3d4") -> None:
        self.alive.add(node)
        self.engine.status(
            node,
            commune_of(node),
            "online",
            "birth",
            self.now,
            session=session,
            health_interval_s=self.interval,
        )

    def will(self, node: str, session: str = "a1b2c3d4") -> None:
        self.alive.discard(node)
        self.engine.status(node, commune_of(node), "offline", "will", self.now, session=session)

    def freeze(self, *nodes: str) -> None:
        """SIGSTOP: no message, no Will."""
        self.alive.difference_update(nodes)

    def run(self, seconds: float, step: float = 0.5) -> list[Change]:
        """Advance time; heartbeats from live nodes at their phase; returns the changes seen."""
        out: list[Change] = []
        end = self.now + seconds
        while self.now < end - 1e-9:
            prev, self.now = self.now, self.now + step
            for n in self.alive:
                k_prev = (prev - self.phase.get(n, 0.0)) // self.interval
                k_now = (self.now - self.phase.get(n, 0.0)) // self.interval
                if k_now > k_prev:
                    self.engine.seen(n, commune_of(n), self.now)
            out.extend(self.engine.tick(self.now))
        self.changes.extend(out)
        return out

    def run_until_change(self, limit: float, step: float = 0.1) -> tuple[float, list[Change]]:
        """Seconds until the first change (or ``limit``) and the changes."""
        t0 = self.now
        while self.now - t0 < limit:
            got = self.run(step, step)
            if got:
                return self.now - t0, got
        return self.now - t0, []
