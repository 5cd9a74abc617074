"""The device inventory, validated and indexed for lookups.

The cloud keeps it in SQL (``cloud.onboarding``: technicians add, rename, move and
decommission devices while it runs); ``firmware_config/inventory.yaml`` is its import and
export format and seeds an empty database. Ingest tags every point with commune/site/kind
from here, so a broken reference would mislabel data silently; building one therefore fails
loudly on any inconsistency.

Every part of a cloud process holds the same ``Inventory`` object; when SQL changes,
``adopt`` swaps the new contents into it in one step, so all of them read the new inventory
at once. Parts that cache what they derive from it compare ``version``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from wire.topics import ID_PATTERN


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    id: str = Field(pattern=ID_PATTERN)


class Commune(_Item):
    name: str = ""


class Site(_Item):
    commune: str
    name: str = ""
    kind: str = ""


class Node(_Item):
    commune: str
    site: str


class Device(_Item):
    kind: str
    node: str
    commune: str
    site: str
    name: str = ""
    address: str = ""


class Inventory(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    communes: list[Commune]
    sites: list[Site]
    nodes: list[Node]
    devices: list[Device]

    @model_validator(mode="after")
    def _consistent(self) -> Inventory:
        problems: list[str] = []
        for section in ("communes", "sites", "nodes", "devices"):
            dupes = [k for k, n in Counter(i.id for i in getattr(self, section)).items() if n > 1]
            if dupes:
                problems.append(f"duplicate {section} ids: {', '.join(sorted(dupes))}")
        communes = {c.id for c in self.communes}
        sites = {s.id: s for s in self.sites}
        nodes = {n.id: n for n in self.nodes}
        for s in self.sites:
            if s.commune not in communes:
                problems.append(f"site {s.id}: unknown commune {s.commune}")
        for n in self.nodes:
            if n.commune not in communes:
                problems.append(f"node {n.id}: unknown commune {n.commune}")
            site = sites.get(n.site)
            if site is None:
                problems.append(f"node {n.id}: unknown site {n.site}")
            elif site.commune != n.commune:
                problems.append(f"node {n.id}: site {n.site} is in {site.commune}, not {n.commune}")
        for d in self.devices:
            node = nodes.get(d.node)
            if node is None:
                problems.append(f"device {d.id}: unknown node {d.node}")
            elif (node.commune, node.site) != (d.commune, d.site):
                problems.append(f"device {d.id}: commune/site differ from its node {d.node}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # Lookups -------------------------------------------------------------------------
    def node(self, node_id: str) -> Node | None:
        return self._nodes.get(node_id)

    def device(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def devices_of(self, node_id: str) -> list[Device]:
        return self._by_node.get(node_id, [])

    def node_kind(self, node_id: str) -> str:
        """Kind of the node's devices (``ap``/``camera``); ``mixed`` or ``unknown`` otherwise."""
        kinds = {d.kind for d in self.devices_of(node_id)}
        return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "unknown")

    def counts(self) -> dict[str, int]:
        """Devices per kind, for a start-up log line an operator can compare with the field."""
        return dict(Counter(d.kind for d in self.devices))

    # Live inventory ------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The SQL inventory's version this is (0: not from SQL); grows with every change."""
        return self._version

    def retired_at(self, item_id: str) -> float | None:
        """When the node or device ``item_id`` was decommissioned; None if it never was."""
        return self._retired.get(item_id)

    def is_retired(self, item_id: str) -> bool:
        """A decommissioned node or device: its history stays, nothing new of it is taken."""
        return item_id in self._retired

    def devices_since(self, at: float) -> list[Device]:
        """The devices in service at any time from ``at`` on: today's and those decommissioned
        after ``at`` (a report of a past month still counts an AP retired since)."""
        gone = [d for d in self._retired_devices if self._retired[d.id] > at]
        return [*self.devices, *gone]

    def with_history(
        self, version: int, retired: dict[str, float], retired_devices: list[Device]
    ) -> Inventory:
        """This inventory as SQL version ``version``, knowing the decommissioned nodes and
        devices (id -> when) and the devices as they were when decommissioned."""
        object.__setattr__(self, "_version", version)
        object.__setattr__(self, "_retired", dict(retired))
        object.__setattr__(self, "_retired_devices", list(retired_devices))
        return self

    def adopt(self, other: Inventory) -> None:
        """Become ``other`` in place. Fields and indexes live in the instance dict, so one
        assignment swaps them all: a reader sees the old inventory or the new, never a mix."""
        object.__setattr__(self, "__dict__", dict(other.__dict__))
        object.__setattr__(self, "__pydantic_extra__", other.__pydantic_extra__)

    def model_post_init(self, __context: Any) -> None:
        by_node: dict[str, list[Device]] = {}
        for d in self.devices:
            by_node.setdefault(d.node, []).append(d)
        object.__setattr__(self, "_nodes", {n.id: n for n in self.nodes})
        object.__setattr__(self, "_devices", {d.id: d for d in self.devices})
        object.__setattr__(self, "_by_node", by_node)
        self.with_history(0, {}, [])

    _nodes: dict[str, Node]
    _devices: dict[str, Device]
    _by_node: dict[str, list[Device]]
    _version: int
    _retired: dict[str, float]
    _retired_devices: list[Device]


class NodeIds:
    """The live inventory's board ids as a container (``"dr-cam-01" in ids``), for code that
    wants a set of boards but must see boards added after it started."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def __contains__(self, node: object) -> bool:
        return isinstance(node, str) and self.inventory.node(node) is not None


def load_inventory(path: Path) -> Inventory:
    """Parse and validate; raise ValueError naming the file and every problem found."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"inventory {path}: {exc.strerror}") from None
    try:
        return Inventory.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"inventory {path} is invalid: {exc}") from None
