"""What the console reads: the ingest runtime's stores, the alert evaluator and the fleet service."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from cloud.alerting.runner import AlertRunner
from cloud.auth.deps import note_refusal
from cloud.auth.principal import Principal
from cloud.config import CloudConfig
from cloud.fleet.service import FleetService
from cloud.inventory import Device, Inventory, Node
from cloud.runtime import Runtime
from cloud.storage.influx import InfluxClient
from cloud.storage.sql import SqlStore


@dataclass
class Console:
    cfg: CloudConfig
    inventory: Inventory
    sql: SqlStore
    influx: InfluxClient
    alerting: AlertRunner | None
    fleet: FleetService | None

    @classmethod
    def of(cls, runtime: Runtime, fleet: FleetService | None) -> Console:
        return cls(runtime.cfg, runtime.inventory, runtime.sql, runtime.influx, runtime.alerting, fleet)

    @property
    def database(self) -> str:
        return self.cfg.influx.database

    def runner(self) -> AlertRunner:
        """The alert evaluator; 404 where alerting is off (``alerting.enabled: false``)."""
        if self.alerting is None:
            raise HTTPException(404, "alerting is off in this cloud process (alerting.enabled)")
        return self.alerting

    def fleet_service(self) -> FleetService:
        if self.fleet is None:
            raise HTTPException(404, "the fleet service is off in this cloud process (fleet.enabled)")
        return self.fleet

    def device_or_404(self, request: Request, p: Principal, device: str) -> Device:
        """An inventory device of the caller's communes; 404 otherwise (audited as a refusal)."""
        d = self.inventory.device(device)
        if d is None or not p.manages(d.commune):
            note_refusal(request, f"device:{device[:64]}", d.commune if d is not None else None)
            raise HTTPException(404, f"no device {device} in your communes")
        return d

    def node_or_404(self, request: Request, p: Principal, node: str) -> Node:
        n = self.inventory.node(node)
        if n is None or not p.manages(n.commune):
            note_refusal(request, f"node:{node[:64]}", n.commune if n is not None else None)
            raise HTTPException(404, f"no board {node} in your communes")
        return n
