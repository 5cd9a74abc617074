"""Onboarding and the inventory's changes, as one service for the API, the page and the CLI.

Each operation changes SQL first (one transaction, checked), then makes this process take
the new inventory at once (the others within a poll), then does what the broker needs:

* **add**: a device on a new board gets the board's credentials (a new password in the
  broker's passwd, its topics in the ACL, the broker reloaded; other clients stay connected)
  and a one-time bundle; a device added to a board already in service gets neither (that
  board's configuration is the fleet's: add the collector there).
* **rename**: the display name only; ids never change (the history is keyed by them).
* **move** to another site of the commune changes tags only. To another commune the board's
  topics change, so it gets new credentials and a new bundle: the board keeps its old ones
  until it is reinstalled and is refused meanwhile.
* **decommission**: the device leaves service; its board too when it served nothing else:
  the board's credentials are revoked (the broker drops it at the reload), its bundles not
  yet downloaded are deleted, its retained configuration is cleared and alerting stops
  watching it. Its data, events and alerts stay.

A broker step that fails after SQL changed is reported as a warning with what to do (the
files are right or untouched; a reload can be repeated), never as a silent success.
Who may do what is checked by the callers (technicians and admins, scoped to communes).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from cloud.config import CloudConfig
from cloud.onboarding import bundles
from cloud.onboarding.broker import BrokerAdmin, ProvisionError
from cloud.onboarding.live import LiveInventory
from cloud.onboarding.store import (
    BundleRow,
    Decommissioned,
    DeviceRecord,
    Moved,
    NewDevice,
    NotFound,
)
from commune_iot.provision import bundle as bundle_files

log = logging.getLogger(__name__)


class Fleet(Protocol):
    """What onboarding asks of the fleet service (``cloud.fleet.service.FleetService``)."""

    #: the cloud's command key (base64 Ed25519), written into every bundle's edge.yaml
    verify_key: str

    def forget(self, node: str) -> None: ...


@dataclass(frozen=True, slots=True)
class IssuedBundle:
    token: str  # only in the link handed to the technician; SQL keeps its hash
    node: str
    filename: str
    size: int
    sha256: str
    expires_at: float

    @property
    def path(self) -> str:
        return f"/api/v1/inventory/bundles/{self.token}"


@dataclass(frozen=True, slots=True)
class Outcome:
    device: DeviceRecord
    bundle: IssuedBundle | None = None
    new_board: bool = False
    board_retired: bool = False
    revoked: bool = False
    warnings: tuple[str, ...] = ()


class Gone(LookupError):
    """The bundle was downloaded already or expired: only a new one can be had."""


class Onboarding:
    def __init__(self, cfg: CloudConfig, live: LiveInventory, fleet: Fleet | None = None) -> None:
        self.cfg = cfg.broker_admin
        self.releases = cfg.releases
        self.live = live
        self.store = live.store
        self.broker = BrokerAdmin(cfg.broker_admin)
        self.fleet = fleet

    @property
    def issues_bundles(self) -> bool:
        return self.broker.enabled

    def _communes(self) -> dict[str, str]:
        return {n.id: n.commune for n in self.live.inventory.nodes}

    # -- operations --------------------------------------------------------------------------

    def add(self, new: NewDevice, collector: bundles.Collector, by: str) -> Outcome:
        """Add a device; with a new board, its credentials and bundle. InventoryError (422),
        Conflict (409) or BundleError (422) before anything changed."""
        collectors, secrets = bundles.collector_config(collector)
        added = self.store.add_device(new, by)
        self.live.refresh()
        log.info(
            "device %s (%s) added to board %s at %s (%s) by %s",
            new.id,
            new.kind,
            new.board,
            new.site,
            new.commune,
            by,
            extra={"node": new.board, "device": new.id},
        )
        if not added.new_board:
            return Outcome(
                added.device,
                warnings=(
                    f"board {new.board} is in service already: add the device's collector to its "
                    "configuration (fleet), no new credentials were issued",
                ),
            )
        issued, warnings = self._credentials(new.board, by, collectors, secrets)
        return Outcome(added.device, issued, new_board=True, warnings=warnings)

    def rename(self, device_id: str, by: str, *, name: str | None, address: str | None) -> Outcome:
        rec = self.store.set_device(device_id, by, name=name, address=address)
        self.live.refresh()
        return Outcome(rec)

    def move(
        self, device_id: str, commune: str, site: str, by: str, *, site_name: str = ""
    ) -> tuple[Outcome, Moved]:
        moved = self.store.move(device_id, commune, site, by, site_name=site_name)
        self.live.refresh()
        log.info(
            "board %s moved from %s (%s) to %s (%s) by %s, with %s",
            moved.node,
            moved.from_site,
            moved.from_commune,
            site,
            commune,
            by,
            ", ".join(moved.devices),
            extra={"node": moved.node},
        )
        if commune == moved.from_commune:
            return Outcome(moved.device), moved
        issued, warnings = self._credentials(moved.node, by, [], {})
        note = (
            f"board {moved.node} now belongs to {commune}: until it is installed again with the new "
            "bundle its old credentials are refused"
        )
        return Outcome(moved.device, issued, warnings=(note, *warnings)), moved

    def decommission(self, device_id: str, by: str) -> Outcome:
        done: Decommissioned = self.store.decommission(device_id, by)
        self.live.refresh()
        node = done.device.node
        log.warning(
            "device %s decommissioned by %s%s",
            device_id,
            by,
            f", and its board {node}" if done.board_retired else "",
            extra={"node": node, "device": device_id},
        )
        if not done.board_retired:
            return Outcome(done.device)
        warnings: list[str] = []
        revoked = False
        self.store.expire_bundles(time.time(), node=node)
        if self.broker.enabled:
            try:
                revoked, problem = self.broker.revoke(node, self._communes())
            except ProvisionError as exc:
                warnings.append(f"board {node}'s credentials are NOT revoked: {exc}")
            else:
                if problem:
                    warnings.append(problem)
        else:
            warnings.append(
                f"broker_admin.dir is not set: revoke board {node} by hand "
                f"(commune-iot provision {node} --revoke --broker-dir ... --reload ...)"
            )
        if self.fleet is not None:
            self.fleet.forget(node)
        return Outcome(done.device, board_retired=True, revoked=revoked, warnings=tuple(warnings))

    def reissue(self, device_id: str, by: str, collector: bundles.Collector | None = None) -> Outcome:
        """A new bundle (and password) for the device's board: the old bundle was lost, or
        the board is installed again."""
        rec = self.store.record(device_id)
        if rec is None or rec.decommissioned_at is not None:
            raise NotFound(f"no device {device_id} in service")
        collectors, secrets = bundles.collector_config(collector) if collector else ([], {})
        issued, warnings = self._credentials(rec.node, by, collectors, secrets)
        return Outcome(rec, issued, warnings=warnings)

    def download(self, token: str, by: str) -> tuple[BundleRow, bytes]:
        """The bundle's ZIP, once. NotFound for a token that names none; Gone afterwards."""
        now = time.time()
        row = self.store.take_bundle(bundles.bundle_id(token), by, now)
        if row is None:
            raise NotFound("no such bundle")
        if row.sealed is None:
            if row.downloaded_at is not None:
                raise Gone(f"this bundle was downloaded already (by {row.downloaded_by}): issue a new one")
            raise Gone("this bundle expired unread: issue a new one")
        if row.expires_at <= now:
            raise Gone("this bundle expired unread: issue a new one")
        data = bundles.unseal(token, row.sealed)
        if data is None:
            raise NotFound("no such bundle")
        log.info("bundle of board %s downloaded by %s", row.node, by, extra={"node": row.node})
        return row, data

    def expire(self) -> int:
        return self.store.expire_bundles(time.time())

    # -- credentials -------------------------------------------------------------------------

    def _credentials(
        self, node: str, by: str, collectors: list[dict[str, object]], secrets: dict[str, str]
    ) -> tuple[IssuedBundle | None, tuple[str, ...]]:
        """New credentials for ``node`` and its sealed bundle; (None, why) when they cannot be issued."""
        if not self.broker.enabled:
            return None, (
                "broker_admin.dir is not set: no credentials or bundle were issued (the device waits as "
                "never seen); see docs/onboarding.md",
            )
        if not self.cfg.board_url.startswith("mqtts://"):
            return None, (
                "broker_admin.board_url must be mqtts://HOST:8883 (what boards dial): no bundle issued",
            )
        n = self.live.inventory.node(node)
        if n is None:
            raise NotFound(f"no board {node} in service")
        try:
            ca_pem = self.broker.ca_pem()
            password, problem = self.broker.add_board(node, self._communes())
        except ProvisionError as exc:
            return None, (f"no credentials were issued for board {node}: {exc}",)
        files = bundle_files.files(
            node,
            n.commune,
            n.site,
            [d.id for d in self.live.inventory.devices_of(node)],
            self.cfg.board_url,
            password,
            ca_pem,
            update=self._update_section(),
            collectors=[dict(c) for c in collectors],
            secrets=secrets,
            cloud_key=self.fleet.verify_key if self.fleet is not None else None,
        )
        data = bundles.make_zip(node, files)
        token, sealed = bundles.seal(data)
        now = time.time()
        row = BundleRow(
            id=bundles.bundle_id(token),
            node=node,
            commune=n.commune,
            filename=f"ciot-{node}.zip",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            sealed=sealed,
            created_at=now,
            created_by=by,
            expires_at=now + self.cfg.bundle_ttl_s,
            downloaded_at=None,
            downloaded_by=None,
        )
        self.store.put_bundle(row)
        log.info("credentials and bundle issued for board %s by %s", node, by, extra={"node": node})
        issued = IssuedBundle(token, node, row.filename, row.size, row.sha256, row.expires_at)
        return issued, (problem,) if problem else ()

    def _update_section(self) -> dict[str, object]:
        """The bundle's ``update:``: the releases this cloud serves and the keys they are signed with."""
        section: dict[str, object] = {"trusted_keys": list(self.releases.trusted_keys)}
        if self.releases.public_url:
            section["server_url"] = self.releases.public_url
        return section


async def expire_loop(onboarding: Onboarding, every_s: float = 60.0) -> None:
    """Delete bundles nobody downloaded in time (their sealed passwords with them)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            if n := await asyncio.to_thread(onboarding.expire):
                log.info("%d provisioning bundle(s) expired unread and were deleted", n)
        except Exception as exc:
            log.warning("cannot expire provisioning bundles (%s); next round", exc)
