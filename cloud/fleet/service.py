"""The fleet service: desired configurations and commands out, reports and replies in.

One MQTT session of its own (persistent, so replies sent while the service restarts wait
for it at the broker), next to the ingest workers: it publishes each board's desired
configuration retained on ``config`` and commands on ``cmd``, signed with the cloud's
Ed25519 key, and reads ``reported``, ``reply`` and ``status`` of every board. Runs in the
``serve`` process only (one writer of desired versions).

Delivery: a command is sent when issued if its board is online, again when the board's
birth arrives, and again every ``resend_s`` until the board acknowledges it (same id: the
board runs it once). A sweeper marks queued commands whose time-to-live ran out
``expired``: they are never sent after that, and a board that finds one expired refuses
it. Desired configurations are published again on every connection of this service, so
a broker that lost its retained messages gets them back; all publishing of desired
configurations is serialised so an older version can never overwrite a newer one.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from cloud.brokers import Brokers, make_client
from cloud.config import CloudConfig
from cloud.fleet import schema
from cloud.fleet.store import CommandRow, FleetStore, Twin
from cloud.inventory import Inventory
from wire import (
    Channel,
    Command,
    CommandReply,
    ConfigReport,
    DesiredConfig,
    Status,
    WireError,
    command_args,
    crypto,
    decode,
    decode_as,
    parse_topic,
    topic_for,
)
from wire.control import MAX_TTL_S
from wire.topics import channel_filter

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger(__name__)


class UnknownNode(LookupError):
    pass


class Conflict(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ConfigSet:
    version: int
    changes: list[dict[str, Any]]  # against the previous desired version, secrets as REDACTED
    secrets: list[str]


def signing_key(path: Path) -> Ed25519PrivateKey:
    """The cloud's command-signing key, made (mode 0600) on first use."""
    try:
        return crypto.load_signing_key(path.read_bytes())
    except FileNotFoundError:
        pass
    key = crypto.new_signing_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(crypto.signing_key_pem(key))
    os.replace(tmp, path)
    log.warning(
        "made a new fleet signing key %s; boards that check signatures need its public half: %s",
        path,
        crypto.verify_key_b64(key),
    )
    return key


class FleetService:
    def __init__(self, cfg: CloudConfig, engine: Engine, inventory: Inventory, client_id: str) -> None:
        self.cfg = cfg
        self.fcfg = cfg.fleet
        self.inventory = inventory
        self.store = FleetStore(engine)
        self.key = signing_key(cfg.fleet.signing_key_file)
        self.verify_key = crypto.verify_key_b64(self.key)
        self.client_id = f"{client_id}-fleet"
        self.online: dict[str, bool] = {}
        self._publish_lock = threading.Lock()  # one desired version at a time, in order
        self._refused: dict[int, str] = {}  # mid -> why the broker refused it (PUBACK reason)
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._client = self._make_client()

    # -- lifecycle ---------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        m = self.cfg.mqtt
        c = make_client(m, self.client_id)
        self._brokers = Brokers(m, c)
        if m.username:
            c.username_pw_set(m.username, m.password_value() or None)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.reconnect_delay_set(1, 10)
        c.max_queued_messages_set(0)
        return c

    def start(self) -> None:
        self._brokers.connect_async()
        self._client.loop_start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="fleet-sweeper", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(10)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- nodes -------------------------------------------------------------------------------

    def commune_of(self, node: str) -> str:
        """The board's commune (inventory); UnknownNode for a board the cloud does not know."""
        n = self.inventory.node(node)
        if n is None:
            raise UnknownNode(node)
        return n.commune

    def nodes(self) -> list[tuple[str, str]]:
        return [(n.id, n.commune) for n in self.inventory.nodes]

    # -- desired configuration ---------------------------------------------------------------

    def set_config(self, node: str, config: dict[str, Any], clear: dict[str, str], by: str) -> ConfigSet:
        """Validate (ConfigRejected), seal the secrets, store a new version, publish it."""
        commune = self.commune_of(node)
        twin = self.store.twin(node)
        doc = json.loads(json.dumps(config))  # a copy the sealing may write into
        sealed = schema.seal_into(doc, clear, twin.board_key if twin else None)
        schema.check(doc)
        version = self.store.set_desired(node, commune, doc, by, sealed)
        before = schema.normalized(
            twin.desired if twin and twin.desired else (twin.reported if twin else None)
        )
        changes = schema.diff(schema.normalized(doc), before) if before is not None else []
        for c in changes:
            c["before"] = c.pop("reported")
        log.info(
            "desired configuration of %s is now version %d (by %s)",
            node,
            version,
            by,
            extra={"node": node, "config_version": version},
        )
        self.publish_desired(node)
        return ConfigSet(version, changes, sealed)

    def publish_desired(self, node: str) -> bool:
        """Publish the node's current desired version, retained. Serialised with every other
        such publish: the retained message is always the newest version."""
        with self._publish_lock:
            twin = self.store.twin(node)
            if twin is None or not twin.desired_version or twin.desired is None or not self.connected:
                return False
            msg = DesiredConfig(
                node=node,
                version=twin.desired_version,
                issued_by=twin.desired_by or "cloud",
                issued_at=datetime.fromtimestamp(twin.desired_at or time.time(), UTC),
                config=twin.desired,
            )
            info = self._client.publish(
                topic_for(twin.commune, node, Channel.CONFIG), self._signed(msg), qos=1, retain=True
            )
            try:  # waiting here keeps the order: the next version goes out after this one
                info.wait_for_publish(5.0)
            except (ValueError, RuntimeError):
                return False
            if not info.is_published() or self._refused.pop(info.mid, None) is not None:
                return False
            self.store.published(node, twin.desired_version)
            return True

    def twin(self, node: str) -> Twin | None:
        self.commune_of(node)
        return self.store.twin(node)

    # -- commands ----------------------------------------------------------------------------

    def issue(
        self,
        node: str,
        name: str,
        args: dict[str, Any],
        *,
        ttl_s: float | None,
        by: str,
        command_id: str | None = None,
    ) -> tuple[CommandRow, bool]:
        """Store a command and send it if the board is online; (row, created). The same id
        again returns the stored command (it is not issued twice); Conflict if it differs."""
        commune = self.commune_of(node)
        model = command_args(name, args)  # WireError: unknown command or bad arguments
        args = model.model_dump(mode="json", exclude_defaults=True)
        ttl = min(ttl_s or self.fcfg.default_ttl_s, MAX_TTL_S)
        now = time.time()
        row, created = self.store.add_command(
            command_id=command_id or secrets.token_hex(16),
            node=node,
            commune=commune,
            name=name,
            args=args,
            issued_by=by,
            issued_at=now,
            expires_at=now + ttl,
        )
        if not created:
            if (row.node, row.name, row.args) != (node, name, args):
                raise Conflict(f"command id {row.id} was used for another command")
            return row, False
        log.info(
            "command %s (%s) for %s issued by %s, expires in %.0f s",
            row.id,
            name,
            node,
            by,
            ttl,
            extra={"node": node, "command": name},
        )
        if self.online.get(node):
            self._send(row)
        return row, True

    def _send(self, row: CommandRow) -> None:
        if not self.connected:
            return
        now = time.time()
        if row.expires_at <= now:
            return
        msg = Command(
            node=row.node,
            id=row.id,
            name=row.name,
            args=row.args,
            issued_by=row.issued_by,
            issued_at=datetime.fromtimestamp(row.issued_at, UTC),
            expires_at=datetime.fromtimestamp(row.expires_at, UTC),
        )
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        # The broker drops it when its time is up; MQTT v5 correlation for other tools (the
        # board answers with the id in its reply's envelope, which survives its outbox).
        props.MessageExpiryInterval = max(1, int(row.expires_at - now))
        props.ResponseTopic = topic_for(row.commune, row.node, Channel.REPLY)
        props.CorrelationData = row.id.encode()
        if not self.store.sent(row.id, now):  # noted first: a command withdrawn meanwhile never goes out
            return
        self._client.publish(
            topic_for(row.commune, row.node, Channel.CMD),
            self._signed(msg),
            qos=1,
            properties=self._brokers.publish_properties(props),  # MQTT 3.1.1: the payload's expires_at only
        )

    def _signed(self, msg: DesiredConfig | Command) -> bytes:
        doc = msg.model_dump(mode="json", exclude_none=True)
        doc["sig"] = crypto.sign(self.key, doc)
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.fcfg.sweep_s):
            try:
                self.sweep(time.time())
            except Exception:
                log.exception("fleet sweep failed; next round")

    def sweep(self, now: float) -> None:
        for row in self.store.expire(now):
            log.warning(
                "command %s (%s) for %s expired before the board took it: never run",
                row.id,
                row.name,
                row.node,
                extra={"node": row.node, "command": row.name},
            )
        for row in self.store.to_send(None, now, self.fcfg.resend_s):
            if self.online.get(row.node):
                self._send(row)

    # -- MQTT callbacks (paho's thread) --------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the fleet service: %s", self._brokers.url, reason)
            return
        client.subscribe(
            [(channel_filter(ch), 1) for ch in (Channel.STATUS, Channel.REPORTED, Channel.REPLY)]
        )
        self._connected.set()
        log.info("fleet service connected to %s as %s", self._brokers.url, self.client_id)
        threading.Thread(target=self._republish, name="fleet-republish", daemon=True).start()

    def _republish(self) -> None:
        for twin in self.store.twins():
            if twin.desired_version and self.inventory.node(twin.node) is not None:
                self.publish_desired(twin.node)

    def forget(self, node: str) -> None:
        """The board was decommissioned: clear its retained desired configuration (an empty
        retained message deletes it at the broker) and stop following it."""
        twin = self.store.twin(node)
        self.online.pop(node, None)
        if twin is None or not twin.desired_version or not self.connected:
            return
        with self._publish_lock:
            self._client.publish(topic_for(twin.commune, node, Channel.CONFIG), b"", qos=1, retain=True)

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connected.clear()
        lost = self._brokers.url
        self._brokers.advance()
        if not self._stop.is_set():
            log.warning(
                "fleet service lost the broker %s (%s); reconnecting to %s", lost, reason, self._brokers.url
            )

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:  # MQTT v5: the broker says why it dropped our message
            if len(self._refused) > 1000:  # commands' entries are never read; keep it bounded
                self._refused.clear()
            self._refused[mid] = str(reason)
            log.error(
                "the broker refused a fleet message (%s): may this cloud user write the config and cmd "
                "topics? `commune-iot provision` rewrites the ACL (then reload the broker)",
                reason,
            )

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            t = parse_topic(msg.topic)
            payload = bytes(msg.payload)
            if t.channel is Channel.STATUS:
                self._status(t.node, payload)
            elif t.channel is Channel.REPORTED:
                self._report(t.node, t.commune, payload)
            elif t.channel is Channel.REPLY:
                self._reply(t.node, payload)
        except WireError as exc:
            log.warning("fleet: refused a message on %s: %s", msg.topic[:200], exc)
        except Exception:
            log.exception("fleet: could not handle a message on %s", msg.topic[:200])

    def _status(self, node: str, payload: bytes) -> None:
        status = decode(Channel.STATUS, payload)
        assert isinstance(status, Status)
        online = status.state == "online"
        self.online[node] = online
        if online:
            for row in self.store.to_send(node, time.time(), 0.0):
                self._send(row)

    def _report(self, node: str, commune: str, payload: bytes) -> None:
        rep = decode_as(ConfigReport, payload)
        if rep.node != node:
            raise WireError(f"report of node {rep.node} on the topic of {node}")
        self.store.reported(
            node,
            commune,
            state=rep.state,
            version=rep.version,
            running=rep.running,
            tried=rep.tried,
            good=rep.good,
            error=rep.error,
            config=rep.config,
            board_key=rep.board_key,
            agent_version=rep.agent_version,
            at=time.time(),
        )
        level = logging.WARNING if rep.state in ("rejected", "reverted") else logging.INFO
        why = f": {rep.error}" if rep.error else ""
        log.log(
            level,
            "board %s: configuration version %d %s%s (running %d)",
            node,
            rep.version,
            rep.state,
            why,
            rep.running,
            extra={"node": node},
        )

    def _reply(self, node: str, payload: bytes) -> None:
        rep = decode_as(CommandReply, payload)
        if rep.node != node:
            raise WireError(f"reply of node {rep.node} on the topic of {node}")
        if rep.state == "refused" and (rep.result or {}).get("duplicate"):
            return  # a copy sent again; the first one's replies say how it went
        row = self.store.replied(
            rep.id, node, rep.state, at=time.time(), progress=rep.progress, result=rep.result, error=rep.error
        )
        if row is not None and row.state in ("done", "failed", "expired"):
            why = f": {row.error}" if row.error else ""
            log.info(
                "command %s (%s) on %s: %s%s",
                row.id,
                row.name,
                node,
                row.state,
                why,
                extra={"node": node, "command": row.name},
            )
