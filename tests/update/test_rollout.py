"""The rollout state machine over many boards, stage by stage, in seconds.

Real parts: the SQL store, the inventory of the pilot, the published bundle, and the fleet's
command channel: a started ``FleetService`` on a real Mosquitto, bound to the rollouts by
``fleet_sender`` as ``cloud serve`` binds it. ``update`` commands are queued in the fleet's
table, sent signed once a board's birth is on the broker, read back by a subscriber, and
the boards' answers travel back over MQTT as replies. The boards are played by the test
(a birth and a reply each, what the board's agent publishes; tests/update/test_update_e2e.py
runs real ones), so 59 boards need no 59 agents; the clock for timeouts is the rollout's
own, moved by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from update_helpers import Bundles, wait_until

from cloud.audit.trail import AuditTrail
from cloud.config import load_config
from cloud.fleet.releases import ReleaseStore
from cloud.fleet.rollout import RolloutError, Rollouts
from cloud.fleet.service import FleetService
from cloud.fleet.store import CommandRow
from cloud.fleet.updates import NO_FLEET, fleet_sender
from cloud.inventory import load_inventory
from cloud.storage.sql import BatchUpdate, SqlStore, StatusUpdate
from commune_iot.localsvc import Mosquitto
from commune_iot.provision.bundle import ROOT
from wire import CommandReply, Status, crypto, encode
from wire.control import FINAL_REPLIES
from wire.topics import Channel, topic_for

INVENTORY = ROOT / "firmware_config" / "inventory.yaml"


class Commands:
    """Every command the broker delivers on a ``cmd`` topic, by board."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()
        ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rollout-cmds", protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, *a: c.subscribe("ciot/v1/+/+/cmd", qos=1)
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert ready.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.got.append((msg.topic.split("/")[3], json.loads(msg.payload)))
            self._cond.notify_all()

    def wait(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.got) >= n, 10), f"{len(self.got)} of {n} commands"
            return list(self.got)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)


class Fleet:
    def __init__(self, tmp: Path, mosquitto: Mosquitto, bundles: Bundles, sql_url: str) -> None:
        cfg = load_config(
            None,
            mqtt={"url": mosquitto.url, "client_id": "rollout-test"},
            influx={"spool_dir": tmp / "spool"},
            sql={"url": sql_url},
            snapshots_dir=tmp / "snapshots",
            fleet={"signing_key_file": tmp / "fleet-signing.pem"},
        )
        self.sql = SqlStore(cfg.sql.url)
        self.inventory = load_inventory(INVENTORY)
        self.releases = ReleaseStore(tmp / "releases", [bundles.public])
        self.version = self.releases.publish(bundles.b).version
        self.now = 1_000.0
        self.rollouts = Rollouts(
            self.sql.engine,
            self.inventory,
            self.releases,
            self.sql.node_states,
            public_url="https://ciot.example.vn",
            timeout_s=600,
            clock=lambda: self.now,
        )
        self.service = FleetService(cfg, self.sql.engine, self.inventory, "rollout-test")
        self.service.start()
        wait_until(lambda: self.service.connected, 10, "the fleet service connected")
        self.audit = AuditTrail(self.sql.engine)
        self.sender = fleet_sender(self.service, self.audit)
        self.commands = Commands(mosquitto.port)

    def commune(self, node: str) -> str:
        return self.inventory.node(node).commune  # type: ignore[union-attr]

    def birth(self, node: str, version: str) -> None:
        """A board's birth, stored as the ingest stores it (what it runs)."""
        self.now += 1
        st = StatusUpdate(
            node,
            self.commune(node),
            True,
            "online",
            "birth",
            self.now,
            version,
            "0123abcd",
            int(self.now * 1000),
        )
        self.sql.apply(BatchUpdate(statuses=[st]))

    def online(self, node: str) -> None:
        """The board's birth on the broker, as its agent publishes it (the fleet service
        delivers a board's queued commands on its birth)."""
        msg = Status(
            node=node, session="0123abcd", seq=0, ts=datetime.now(UTC), state="online", reason="birth"
        )
        self.commands.publish(topic_for(self.commune(node), node, Channel.STATUS), encode(msg), retain=True)
        wait_until(lambda: self.service.online.get(node), 10, f"{node} online at the fleet service")

    def answer(self, node: str, state: str, **fields: Any) -> CommandRow:
        """The board comes online, takes its newest update command and answers it on its
        ``reply`` topic (``done`` with a result, ``failed`` or ``refused`` with an error)."""
        if not self.service.online.get(node):
            self.online(node)

        def sent() -> CommandRow | None:
            row = next(r for r in self.service.store.commands(node, limit=1) if r.name == "update")
            return row if row.sent_at else None

        cmd: CommandRow = wait_until(sent, 10, f"{node}'s update command sent")
        msg = CommandReply(
            node=node,
            session="0123abcd",
            seq=0,
            ts=datetime.now(UTC),
            id=cmd.id,
            name="update",
            state=state,  # type: ignore[arg-type]
            **fields,
        )
        self.commands.publish(topic_for(self.commune(node), node, Channel.REPLY), encode(msg))

        def stored() -> CommandRow | None:
            r = self.service.store.command(cmd.id)
            final = state in FINAL_REPLIES
            return r if r and r.state != "queued" and (r.state != "delivered" or not final) else None

        row: CommandRow = wait_until(stored, 10, f"{node}'s answer stored")
        return row

    def issued(self) -> list[str]:
        """Boards given an update command (the fleet's queue, oldest first)."""
        return [r.node for r in reversed(self.service.store.commands(limit=1000)) if r.name == "update"]

    async def step(self) -> dict[str, Any]:
        await self.rollouts.advance(self.sender)
        doc = self.rollouts.latest()
        assert doc is not None
        return doc

    def close(self) -> None:
        self.service.stop()
        self.commands.c.disconnect()
        self.commands.c.loop_stop()
        self.sql.dispose()


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: Mosquitto, bundles: Bundles, sql_url: str) -> Iterator[Fleet]:
    f = Fleet(tmp_path, mosquitto, bundles, sql_url)
    yield f
    f.close()


def _nodes(doc: dict[str, Any], stage: int) -> dict[str, str]:
    return {n["node"]: n["state"] for n in doc["nodes"] if n["stage"] == stage}


async def test_canary_first_then_commune_by_commune(fleet: Fleet) -> None:
    v = fleet.version
    fleet.online("lx-ap-01")
    doc = fleet.rollouts.create(v, canary="lx-ap-01", communes=["lac-xuan", "tu-tra"], created_by="t")
    assert doc["stages"] == 3
    lac_xuan = [n.id for n in fleet.inventory.nodes if n.commune == "lac-xuan" and n.id != "lx-ap-01"]
    assert set(_nodes(doc, 1)) == set(lac_xuan) and len(_nodes(doc, 2)) == 24  # da-ron is not in it

    doc = await fleet.step()
    [(node, cmd)] = fleet.commands.wait(1)  # the canary is online: sent at once, signed
    assert node == "lx-ap-01" and cmd["name"] == "update" and cmd["issued_by"] == "rollout"
    crypto.verify(fleet.service.verify_key, cmd)
    assert cmd["args"] == {
        "url": f"https://ciot.example.vn/api/v1/releases/{v}/",
        "version": v,
        "manifest_sha256": fleet.releases.get(v).manifest_sha256,  # type: ignore[union-attr]
    }
    assert doc["nodes"][0]["command"] == cmd["id"]
    [entry] = fleet.audit.entries(action="fleet_command")
    assert (entry.actor, entry.target, entry.commune) == ("rollout", f"command:{cmd['id']}", "lac-xuan")
    assert entry.detail["args"] == cmd["args"] and entry.detail["rollout"] == doc["id"]

    fleet.answer("lx-ap-01", "running", progress="fetched 1 of 1 file(s)")  # still at it
    doc = await fleet.step()
    assert doc["stage"] == 0 and _nodes(doc, 0) == {"lx-ap-01": "sent"}
    fleet.answer("lx-ap-01", "done", result={"version": v, "state": "active"})
    doc = await fleet.step()  # canary done: stage 1 starts and is sent in the next step
    assert doc["stage"] == 1
    doc = await fleet.step()
    # boards offline: their commands wait in the queue, nothing is published for them yet
    assert sorted(fleet.issued()[1:]) == sorted(lac_xuan) and len(fleet.commands.got) == 1
    assert set(_nodes(doc, 2).values()) == {"pending"}
    for n in lac_xuan:
        fleet.answer(n, "done", result={"version": v, "state": "active"})
    assert {n for n, _ in fleet.commands.got} == {"lx-ap-01", *lac_xuan}  # sent on their births
    await fleet.step()
    doc = await fleet.step()
    assert doc["stage"] == 2 and set(_nodes(doc, 2).values()) == {"sent"}
    for n in _nodes(doc, 2):
        fleet.answer(n, "done", result={"version": v, "state": "active"})
    doc = await fleet.step()
    assert doc["state"] == "done" and doc["counts"]["updated"] == 1 + len(lac_xuan) + 24
    assert len(fleet.issued()) == 1 + len(lac_xuan) + 24
    assert fleet.audit.count(action="fleet_command", actor="rollout") == 1 + len(lac_xuan) + 24


async def test_a_silent_canary_pauses_the_rollout_at_its_timeout(fleet: Fleet) -> None:
    v = fleet.version
    fleet.rollouts.create(v, canary="dr-cam-01", communes=["da-ron"], timeout_s=300, created_by="t")
    doc = await fleet.step()
    first = doc["nodes"][0]["command"]
    fleet.now += 299
    doc = await fleet.step()
    assert doc["state"] == "running"
    fleet.now += 2
    doc = await fleet.step()
    assert doc["state"] == "paused"
    assert doc["reason"].startswith(
        f"board dr-cam-01 failed: did not finish the update to {v} within 300 s (its command queued; "
    )
    assert set(_nodes(doc, 1).values()) == {"pending"}
    assert fleet.issued() == ["dr-cam-01"]  # nobody else was told
    # its command, never sent, is withdrawn: the board cannot run it after the rollout gave up
    row = fleet.service.store.command(first)
    assert row is not None and row.state == "failed" and row.error.startswith("withdrawn: rollout")  # type: ignore[union-attr]

    with pytest.raises(ValueError, match="still running or paused"):
        fleet.rollouts.create(v, canary=None, created_by="t")
    doc = fleet.rollouts.resume(doc["id"], "t", skip_failed=True)
    doc = await fleet.step()
    assert doc["stage"] == 1 and _nodes(doc, 0) == {"dr-cam-01": "skipped"}
    doc = await fleet.step()
    queued = [n["command"] for n in doc["nodes"] if n["state"] == "sent"]
    assert len(queued) == 23
    fleet.rollouts.abort(doc["id"], "kythuat")  # the stage's commands never sent are withdrawn
    rows = [fleet.service.store.command(c) for c in queued]
    assert {(r.state, r.error) for r in rows if r} == {
        ("failed", f"withdrawn: rollout {doc['id']} aborted by kythuat: never run")
    }


async def test_a_rollback_pauses_and_resume_tries_again_with_a_new_command(fleet: Fleet) -> None:
    """The old version answers the command after its launcher went back to it: the rollout
    pauses with the launcher's reason; resume sends a new command, judged on its own answer."""
    v = fleet.version
    fleet.birth("tt-ap-01", "0.0.9")
    fleet.birth("tt-ap-03", v)  # already runs it: updated without a command
    fleet.rollouts.create(v, canary="tt-ap-01", communes=["tu-tra"], created_by="t")
    await fleet.step()
    why = "rolled back to 0.0.9: exited 3 times before a healthy birth (status 1)"
    first = fleet.answer("tt-ap-01", "failed", error=why)
    doc = await fleet.step()
    assert (
        doc["state"] == "paused" and doc["reason"] == f"board tt-ap-01 failed: update command failed: {why}"
    )

    doc = fleet.rollouts.resume(doc["id"], "t")  # tried again: a new command, not the failed one
    await fleet.step()
    again = fleet.answer("tt-ap-01", "done", result={"version": v, "state": "active"})
    assert again.id != first.id
    doc = await fleet.step()
    assert doc["state"] == "running" and doc["stage"] == 1
    doc = await fleet.step()
    assert _nodes(doc, 1)["tt-ap-03"] == "updated"
    assert fleet.issued().count("tt-ap-01") == 2 and "tt-ap-03" not in fleet.issued()


async def test_a_board_that_refuses_the_command_pauses_the_rollout_at_once(fleet: Fleet) -> None:
    """An agent older than the ``update`` command refuses it: the rollout pauses with the
    board's words on the next step, not after ``timeout_s``."""
    fleet.online("tt-ap-02")
    fleet.rollouts.create(fleet.version, canary="tt-ap-02", communes=["tu-tra"], created_by="t")
    await fleet.step()
    refusal = "unknown command 'update' (this agent knows diag, logs, ping, poll, rebirth, restart, snapshot)"
    fleet.answer("tt-ap-02", "refused", error=refusal)
    doc = await fleet.step()
    assert doc["state"] == "paused"
    assert doc["reason"] == f"board tt-ap-02 failed: update command refused: {refusal}"
    assert fleet.issued() == ["tt-ap-02"]


async def test_without_the_fleet_service_no_rollout_starts(fleet: Fleet) -> None:
    fleet.rollouts.create(fleet.version, canary="dr-cam-01", communes=[], created_by="t")
    off = Rollouts(
        fleet.sql.engine,
        fleet.inventory,
        fleet.releases,
        fleet.sql.node_states,
        public_url="https://ciot.example.vn",
        timeout_s=600,
        unavailable=NO_FLEET,
    )
    off.halt()  # what `cloud serve` does at start with fleet.enabled: false
    doc = off.latest()
    assert doc is not None and doc["state"] == "paused" and doc["reason"] == NO_FLEET
    with pytest.raises(RolloutError, match=r"fleet service is off \(fleet.enabled: false\)"):
        off.resume(doc["id"], "t")
    off.abort(doc["id"], "t")
    with pytest.raises(RolloutError, match="no rollout can start or resume"):
        off.create(fleet.version, canary="dr-cam-01", created_by="t")
    assert fleet.issued() == []
