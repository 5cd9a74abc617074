"""The inventory's SQL tables: what is in service, what was, and one version counter.

Nodes and devices are never deleted: decommissioning stamps them (when, by whom), so their
history in InfluxDB, the event log and the alerts keeps a name, and their ids are never
given to another board. Every change runs in one transaction that also raises
``inventory_state.version`` and checks the whole inventory the way ``Inventory`` does (a
broken reference is refused, not stored); the processes of the cloud notice the new
version (``cloud.onboarding.live``) and take the new inventory.

Items keep the YAML's extra keys (a commune's district, a node's uplink, a device's camera
URL or AP host) as JSON, and the file's order, so ``export`` gives back what ``import`` took.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cloud.inventory import Device, Inventory
from cloud.storage.schema import ensure_schema

metadata = MetaData()

communes = Table(
    "inventory_communes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("position", Integer, nullable=False, default=0),  # the order of the YAML, then of additions
    Column("name", String(200), nullable=False, default=""),
    Column("extra", Text, nullable=False, default="{}"),
)

sites = Table(
    "inventory_sites",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("position", Integer, nullable=False, default=0),  # the order of the YAML, then of additions
    Column("commune", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False, default=""),
    Column("kind", String(64), nullable=False, default=""),
    Column("extra", Text, nullable=False, default="{}"),
)

nodes = Table(
    "inventory_nodes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("position", Integer, nullable=False, default=0),  # the order of the YAML, then of additions
    Column("commune", String(64), nullable=False, index=True),
    Column("site", String(64), nullable=False),
    Column("extra", Text, nullable=False, default="{}"),
    Column("added_at", Float),
    Column("added_by", String(64)),
    Column("decommissioned_at", Float),
    Column("decommissioned_by", String(64)),
)

devices = Table(
    "inventory_devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("position", Integer, nullable=False, default=0),  # the order of the YAML, then of additions
    Column("node", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("commune", String(64), nullable=False, index=True),
    Column("site", String(64), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("address", String(500), nullable=False, default=""),
    Column("extra", Text, nullable=False, default="{}"),
    Column("added_at", Float),
    Column("added_by", String(64)),
    Column("decommissioned_at", Float),
    Column("decommissioned_by", String(64)),
)

state = Table(
    "inventory_state",
    metadata,
    Column("id", Integer, primary_key=True),  # one row, id 1
    Column("version", Integer, nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("changed_by", String(64), nullable=False, default=""),
)

bundles = Table(
    "provisioning_bundles",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the download token, never the token
    Column("node", String(64), nullable=False, index=True),
    Column("commune", String(64), nullable=False),
    Column("filename", String(200), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),  # of the ZIP, so the download can be checked
    Column("sealed", Text),  # AES-GCM under the token; NULL once downloaded or expired
    Column("created_at", Float, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("downloaded_at", Float),
    Column("downloaded_by", String(64)),
)

_ITEM_COLUMNS = {
    "communes": ("id", "name"),
    "sites": ("id", "commune", "name", "kind"),
    "nodes": ("id", "commune", "site"),
    "devices": ("id", "kind", "node", "commune", "site", "name", "address"),
}


class InventoryError(ValueError):
    """The change would break the inventory (unknown site, a board in another commune...)."""


class Conflict(InventoryError):
    """The id is taken, now or by a decommissioned device (ids are never reused)."""


class NotFound(LookupError):
    """No such device or board in service."""


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as SQL keeps it, in service or not."""

    id: str
    kind: str
    node: str
    commune: str
    site: str
    name: str
    address: str
    extra: dict[str, Any]
    added_at: float | None
    added_by: str | None
    decommissioned_at: float | None
    decommissioned_by: str | None


@dataclass(frozen=True, slots=True)
class NewDevice:
    id: str
    kind: str
    commune: str
    site: str
    node: str = ""  # default: a new board of the same id (one device per board, as in the pilot)
    name: str = ""
    address: str = ""
    site_name: str = ""  # given: the site is created when missing
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def board(self) -> str:
        return self.node or self.id


@dataclass(frozen=True, slots=True)
class Added:
    device: DeviceRecord
    new_board: bool  # False: added to a board already in service (no new credentials)


@dataclass(frozen=True, slots=True)
class Moved:
    device: DeviceRecord
    node: str
    from_commune: str
    from_site: str
    devices: list[str]  # every device of the board moved with it


@dataclass(frozen=True, slots=True)
class Decommissioned:
    device: DeviceRecord
    board_retired: bool  # the board served nothing else and is decommissioned too


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: dict[str, int]
    updated: dict[str, int]
    skipped: list[str]  # decommissioned ids the file still lists: not brought back


@dataclass(frozen=True, slots=True)
class BundleRow:
    id: str
    node: str
    commune: str
    filename: str
    size: int
    sha256: str
    sealed: str | None
    created_at: float
    created_by: str
    expires_at: float
    downloaded_at: float | None
    downloaded_by: str | None


def _extra(text: str | None) -> dict[str, Any]:
    doc = json.loads(text) if text else {}
    return doc if isinstance(doc, dict) else {}


def _record(r: Any) -> DeviceRecord:
    return DeviceRecord(
        id=r.id,
        kind=r.kind,
        node=r.node,
        commune=r.commune,
        site=r.site,
        name=r.name or "",
        address=r.address or "",
        extra=_extra(r.extra),
        added_at=r.added_at,
        added_by=r.added_by,
        decommissioned_at=r.decommissioned_at,
        decommissioned_by=r.decommissioned_by,
    )


def _item(section: str, r: Any) -> dict[str, Any]:
    """A YAML item from a row: its columns (empty optional text left out), then its extras."""
    doc: dict[str, Any] = {}
    for col in _ITEM_COLUMNS[section]:
        value = getattr(r, col)
        if value or col in ("id", "commune", "site", "node", "kind"):
            doc[col] = value
    return doc | {k: v for k, v in _extra(r.extra).items() if k not in doc}


def _split(section: str, item: dict[str, Any]) -> dict[str, Any]:
    """Row values of a YAML item: its known columns, the rest as JSON."""
    cols = _ITEM_COLUMNS[section]
    row = {c: item.get(c, "") or "" for c in cols}
    row["extra"] = json.dumps(
        {k: v for k, v in item.items() if k not in cols}, ensure_ascii=False, sort_keys=True
    )
    return row


class InventoryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine, metadata)

    # -- reading -------------------------------------------------------------------------------

    def version(self) -> int:
        """The inventory's version; 0 while the database holds none (not seeded yet)."""
        with self.engine.connect() as conn:
            v = conn.execute(select(state.c.version).where(state.c.id == 1)).scalar()
        return int(v or 0)

    def load(self) -> Inventory:
        """What is in service, as one consistent snapshot, knowing what was decommissioned."""
        with self.engine.connect() as conn:
            version = int(conn.execute(select(state.c.version).where(state.c.id == 1)).scalar() or 0)
            doc = self._doc(conn)
            retired: dict[str, float] = {}
            for table in (nodes, devices):
                q = select(table.c.id, table.c.decommissioned_at).where(
                    table.c.decommissioned_at.is_not(None)
                )
                retired.update({r.id: float(r.decommissioned_at) for r in conn.execute(q)})
            gone = [
                Device.model_validate(_item("devices", r))
                for r in conn.execute(select(devices).where(devices.c.decommissioned_at.is_not(None)))
            ]
        return Inventory.model_validate(doc).with_history(version, retired, gone)

    def export(self) -> dict[str, Any]:
        """The inventory in service as the YAML document ``import`` takes."""
        with self.engine.connect() as conn:
            return self._doc(conn)

    def records(self, *, decommissioned: bool = False) -> list[DeviceRecord]:
        """Devices in service (and with ``decommissioned``, the others too), by id."""
        q = select(devices).order_by(devices.c.position, devices.c.id)
        if not decommissioned:
            q = q.where(devices.c.decommissioned_at.is_(None))
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]

    def record(self, device_id: str) -> DeviceRecord | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(devices).where(devices.c.id == device_id)).first()
        return _record(r) if r is not None else None

    def _doc(self, conn: Connection) -> dict[str, Any]:
        return {
            "communes": [
                _item("communes", r)
                for r in conn.execute(select(communes).order_by(communes.c.position, communes.c.id))
            ],
            "sites": [
                _item("sites", r) for r in conn.execute(select(sites).order_by(sites.c.position, sites.c.id))
            ],
            "nodes": [
                _item("nodes", r)
                for r in conn.execute(
                    select(nodes)
                    .where(nodes.c.decommissioned_at.is_(None))
                    .order_by(nodes.c.position, nodes.c.id)
                )
            ],
            "devices": [
                _item("devices", r)
                for r in conn.execute(
                    select(devices)
                    .where(devices.c.decommissioned_at.is_(None))
                    .order_by(devices.c.position, devices.c.id)
                )
            ],
        }

    # -- whole inventories ---------------------------------------------------------------------

    def seed(self, inv: Inventory, by: str) -> bool:
        """Fill an empty database with ``inv`` (the YAML); False when it holds an inventory
        already (another process may have seeded it a moment ago)."""
        if self.version():
            return False
        try:
            with self.engine.begin() as conn:
                if not self._start(conn, by):
                    return False
                self._upsert(conn, inv.model_dump(mode="json", exclude_none=True), by)
                self._commit(conn, by)
        except IntegrityError:  # seeded concurrently
            return False
        return True

    def import_(self, inv: Inventory, by: str) -> ImportReport:
        """Add what ``inv`` has that SQL lacks and update what both have. Nothing is removed
        (decommission does that, with the broker); a decommissioned id is not brought back,
        and a board is never moved to another commune here (``move`` changes its ACL)."""
        with self.engine.begin() as conn:
            self._start(conn, by)
            report = self._upsert(conn, inv.model_dump(mode="json", exclude_none=True), by)
            self._commit(conn, by)
        return report

    def _start(self, conn: Connection, by: str) -> bool:
        """The version row of a database that has none yet; False when it had one."""
        if conn.execute(select(state.c.version).where(state.c.id == 1)).first() is not None:
            return False
        conn.execute(state.insert().values(id=1, version=0, changed_at=time.time(), changed_by=by))
        return True

    def _upsert(self, conn: Connection, doc: dict[str, Any], by: str) -> ImportReport:
        added: dict[str, int] = {}
        updated: dict[str, int] = {}
        skipped: list[str] = []
        now = time.time()
        for section, table in (
            ("communes", communes),
            ("sites", sites),
            ("nodes", nodes),
            ("devices", devices),
        ):
            for item in doc.get(section, []):
                values = _split(section, item)
                old = conn.execute(select(table).where(table.c.id == item["id"])).first()
                if old is None:
                    if section in ("nodes", "devices"):
                        values |= {"added_at": now, "added_by": by}
                    conn.execute(table.insert().values(**values, position=_next(conn, table)))
                    added[section] = added.get(section, 0) + 1
                    continue
                if getattr(old, "decommissioned_at", None) is not None:
                    skipped.append(item["id"])
                    continue
                if section == "nodes" and old.commune != values["commune"]:
                    raise InventoryError(
                        f"board {item['id']} is in commune {old.commune}, the file says {values['commune']}: "
                        "move it with `commune-iot inventory move` (its broker ACL changes with it)"
                    )
                if any(getattr(old, k) != v for k, v in values.items()):
                    conn.execute(update(table).where(table.c.id == item["id"]).values(**values))
                    updated[section] = updated.get(section, 0) + 1
        return ImportReport(added, updated, skipped)

    # -- changes -------------------------------------------------------------------------------

    def add_device(self, new: NewDevice, by: str) -> Added:
        now = time.time()
        with self.engine.begin() as conn:
            self._need_inventory(conn)
            taken = conn.execute(select(devices).where(devices.c.id == new.id)).first()
            if taken is not None:
                raise Conflict(_taken("device", new.id, taken))
            site = self._site(conn, new.commune, new.site, new.site_name)
            board = conn.execute(select(nodes).where(nodes.c.id == new.board)).first()
            new_board = board is None
            if board is None:
                conn.execute(
                    nodes.insert().values(
                        id=new.board,
                        position=_next(conn, nodes),
                        commune=new.commune,
                        site=site,
                        extra="{}",
                        added_at=now,
                        added_by=by,
                    )
                )
            elif board.decommissioned_at is not None:
                raise Conflict(_taken("board", new.board, board))
            elif (board.commune, board.site) != (new.commune, site):
                raise InventoryError(
                    f"board {new.board} is at {board.site} ({board.commune}): a device of it is there too"
                )
            conn.execute(
                devices.insert().values(
                    id=new.id,
                    position=_next(conn, devices),
                    node=new.board,
                    kind=new.kind,
                    commune=new.commune,
                    site=site,
                    name=new.name,
                    address=new.address,
                    extra=json.dumps(new.extra, ensure_ascii=False, sort_keys=True),
                    added_at=now,
                    added_by=by,
                )
            )
            self._commit(conn, by)
            r = conn.execute(select(devices).where(devices.c.id == new.id)).one()
        return Added(_record(r), new_board)

    def set_device(
        self, device_id: str, by: str, *, name: str | None = None, address: str | None = None
    ) -> DeviceRecord:
        """Rename a device (its display name) or change its address; its id stays (history)."""
        values = {k: v for k, v in (("name", name), ("address", address)) if v is not None}
        with self.engine.begin() as conn:
            self._active(conn, device_id)
            if values:
                conn.execute(update(devices).where(devices.c.id == device_id).values(**values))
                self._commit(conn, by)
            return _record(conn.execute(select(devices).where(devices.c.id == device_id)).one())

    def move(self, device_id: str, commune: str, site: str, by: str, *, site_name: str = "") -> Moved:
        """Move the device's board, with every device it serves, to ``site`` in ``commune``."""
        with self.engine.begin() as conn:
            dev = self._active(conn, device_id)
            board = conn.execute(select(nodes).where(nodes.c.id == dev.node)).one()
            site = self._site(conn, commune, site, site_name)
            conn.execute(update(nodes).where(nodes.c.id == dev.node).values(commune=commune, site=site))
            conn.execute(
                update(devices)
                .where(devices.c.node == dev.node, devices.c.decommissioned_at.is_(None))
                .values(commune=commune, site=site)
            )
            moved = [
                r.id
                for r in conn.execute(
                    select(devices.c.id).where(
                        devices.c.node == dev.node, devices.c.decommissioned_at.is_(None)
                    )
                )
            ]
            self._commit(conn, by)
            r = conn.execute(select(devices).where(devices.c.id == device_id)).one()
        return Moved(_record(r), dev.node, board.commune, board.site, moved)

    def decommission(self, device_id: str, by: str) -> Decommissioned:
        """Take the device out of service; its board too when it served nothing else."""
        now = time.time()
        stamp = {"decommissioned_at": now, "decommissioned_by": by}
        with self.engine.begin() as conn:
            dev = self._active(conn, device_id)
            conn.execute(update(devices).where(devices.c.id == device_id).values(**stamp))
            others = conn.execute(
                select(devices.c.id).where(devices.c.node == dev.node, devices.c.decommissioned_at.is_(None))
            ).first()
            if others is None:
                conn.execute(update(nodes).where(nodes.c.id == dev.node).values(**stamp))
            self._commit(conn, by)
            r = conn.execute(select(devices).where(devices.c.id == device_id)).one()
        return Decommissioned(_record(r), others is None)

    def _need_inventory(self, conn: Connection) -> None:
        if conn.execute(select(state.c.version).where(state.c.id == 1)).first() is None:
            raise InventoryError(
                "the database holds no inventory yet: import one (commune-iot inventory import)"
            )

    def _active(self, conn: Connection, device_id: str) -> Any:
        r = conn.execute(select(devices).where(devices.c.id == device_id)).first()
        if r is None or r.decommissioned_at is not None:
            raise NotFound(f"no device {device_id} in service")
        return r

    def _site(self, conn: Connection, commune: str, site: str, site_name: str) -> str:
        """``site`` of ``commune``; created when missing and ``site_name`` is given."""
        if conn.execute(select(communes.c.id).where(communes.c.id == commune)).first() is None:
            raise InventoryError(f"unknown commune {commune}")
        r = conn.execute(select(sites).where(sites.c.id == site)).first()
        if r is None:
            if not site_name:
                raise InventoryError(f"unknown site {site}: give its name to create it")
            conn.execute(
                sites.insert().values(
                    id=site, position=_next(conn, sites), commune=commune, name=site_name, kind="", extra="{}"
                )
            )
        elif r.commune != commune:
            raise InventoryError(f"site {site} is in commune {r.commune}, not {commune}")
        return site

    def _commit(self, conn: Connection, by: str) -> None:
        """Check the whole inventory as it now stands and raise its version (same transaction)."""
        try:
            Inventory.model_validate(self._doc(conn))
        except ValidationError as exc:
            raise InventoryError("; ".join(_message(e) for e in exc.errors(include_url=False))) from None
        conn.execute(
            update(state)
            .where(state.c.id == 1)
            .values(version=state.c.version + 1, changed_at=time.time(), changed_by=by)
        )

    # -- bundles -------------------------------------------------------------------------------

    def put_bundle(self, row: BundleRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(bundles.insert().values(**{f: getattr(row, f) for f in BundleRow.__slots__}))

    def take_bundle(self, bundle_id: str, by: str, now: float) -> BundleRow | None:
        """The bundle's row as it was, and its sealed content gone from SQL (one download)."""
        with self.engine.begin() as conn:
            r = conn.execute(select(bundles).where(bundles.c.id == bundle_id)).first()
            if r is None:
                return None
            if r.sealed is not None:
                done = conn.execute(
                    update(bundles)
                    .where(bundles.c.id == bundle_id, bundles.c.sealed.is_not(None))
                    .values(sealed=None, downloaded_at=now, downloaded_by=by)
                )
                if done.rowcount != 1:  # another download took it meanwhile
                    r = conn.execute(select(bundles).where(bundles.c.id == bundle_id)).one()
                    return BundleRow(**{**r._asdict(), "sealed": None})
        return BundleRow(**r._asdict())

    def bundle(self, bundle_id: str) -> BundleRow | None:
        """A bundle's row without its sealed content."""
        with self.engine.connect() as conn:
            r = conn.execute(select(bundles).where(bundles.c.id == bundle_id)).first()
        return BundleRow(**{**r._asdict(), "sealed": None}) if r is not None else None

    def bundles_of(self, node: str) -> list[BundleRow]:
        """The board's bundles, newest first, without their sealed content."""
        q = select(bundles).where(bundles.c.node == node).order_by(bundles.c.created_at.desc())
        with self.engine.connect() as conn:
            return [BundleRow(**{**r._asdict(), "sealed": None}) for r in conn.execute(q)]

    def expire_bundles(self, now: float, *, node: str | None = None) -> int:
        """Drop the sealed content of bundles nobody downloaded in time (with ``node``: all of
        that board's, whose password no longer works)."""
        q = update(bundles).where(bundles.c.sealed.is_not(None))
        q = q.where(bundles.c.node == node) if node is not None else q.where(bundles.c.expires_at <= now)
        with self.engine.begin() as conn:
            done = conn.execute(q.values(sealed=None))
        return int(done.rowcount or 0)


def _next(conn: Connection, table: Table) -> int:
    """The position after the last row's: new items come last, as appended to the YAML."""
    return int(conn.execute(select(func.coalesce(func.max(table.c.position), 0))).scalar() or 0) + 1


def _message(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _taken(what: str, item_id: str, r: Any) -> str:
    if r.decommissioned_at is not None:
        return f"{what} id {item_id} belonged to a {what} decommissioned before: ids are never reused"
    return f"there is a {what} {item_id} already"
