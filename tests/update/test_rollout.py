"""The rollout state machine over many boards, stage by stage, in seconds.

Real parts: the SQL store (board reports go in through ``SqlStore.apply``, the path the
ingest writes births with), the inventory of the pilot, the published bundle, and the
``update`` command as a real MQTT publish (``MqttUpdateSender``) on a real Mosquitto, read
back by a subscriber. Board births are written as the ingest would write them, so 59
boards need no 59 agents; the clock is the rollout's own, moved by the test for timeouts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from update_helpers import Bundles

from cloud.config import MqttConfig
from cloud.fleet.releases import ReleaseStore
from cloud.fleet.rollout import Rollouts
from cloud.fleet.update_sender import MqttUpdateSender
from cloud.inventory import load_inventory
from cloud.storage.sql import BatchUpdate, SqlStore, StatusUpdate
from commune_iot.localsvc import Mosquitto
from commune_iot.provision.bundle import ROOT

INVENTORY = ROOT / "firmware_config" / "inventory.yaml"


class Commands:
    """Every ``update`` command the broker delivers, by board."""

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

    def wait(self, n: int) -> list[str]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.got) >= n, 10), f"{len(self.got)} of {n} commands"
            return [node for node, _ in self.got]


class Fleet:
    def __init__(self, tmp: Path, mosquitto: Mosquitto, bundles: Bundles) -> None:
        self.sql = SqlStore(f"sqlite:///{tmp / 'cloud.db'}")
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
        self.sender = MqttUpdateSender(MqttConfig(url=mosquitto.url), "rollout-test")
        self.commands = Commands(mosquitto.port)

    def birth(self, node: str, version: str, update: tuple[str, str, str] | None = None) -> None:
        """A board's birth, stored as the ingest stores it."""
        commune = self.inventory.node(node).commune  # type: ignore[union-attr]
        self.now += 1
        upd = (*update, self.now) if update else None
        ms = int(self.now * 1000)
        st = StatusUpdate(
            node, commune, True, "online", "birth", self.now, version, "0123abcd", ms, update=upd
        )
        self.sql.apply(BatchUpdate(statuses=[st]))

    async def step(self) -> dict[str, Any]:
        await self.rollouts.advance(self.sender)
        doc = self.rollouts.latest()
        assert doc is not None
        return doc

    def close(self) -> None:
        self.sender.close()
        self.commands.c.loop_stop()
        self.sql.dispose()


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: Mosquitto, bundles: Bundles) -> Iterator[Fleet]:
    f = Fleet(tmp_path, mosquitto, bundles)
    yield f
    f.close()


def _nodes(doc: dict[str, Any], stage: int) -> dict[str, str]:
    return {n["node"]: n["state"] for n in doc["nodes"] if n["stage"] == stage}


async def test_canary_first_then_commune_by_commune(fleet: Fleet) -> None:
    v = fleet.version
    doc = fleet.rollouts.create(v, canary="lx-ap-01", communes=["lac-xuan", "tu-tra"], created_by="t")
    assert doc["stages"] == 3
    lac_xuan = [n.id for n in fleet.inventory.nodes if n.commune == "lac-xuan" and n.id != "lx-ap-01"]
    assert set(_nodes(doc, 1)) == set(lac_xuan) and len(_nodes(doc, 2)) == 24  # da-ron is not in it

    doc = await fleet.step()
    assert fleet.commands.wait(1) == ["lx-ap-01"]
    node, cmd = fleet.commands.got[0]
    assert cmd["name"] == "update" and cmd["node"] == node and cmd["issued_by"] == "rollout"
    assert cmd["args"] == {
        "url": f"https://ciot.example.vn/api/v1/releases/{v}/",
        "version": v,
        "manifest_sha256": fleet.releases.get(v).manifest_sha256,  # type: ignore[union-attr]
    }
    fleet.birth("lx-ap-01", v, (v, "trial", ""))  # running it, not yet kept by the launcher
    doc = await fleet.step()
    assert doc["stage"] == 0 and _nodes(doc, 0) == {"lx-ap-01": "sent"}
    fleet.birth("lx-ap-01", v, (v, "active", ""))
    doc = await fleet.step()  # canary done: stage 1 starts and is sent in the next step
    assert doc["stage"] == 1
    doc = await fleet.step()
    assert sorted(fleet.commands.wait(1 + len(lac_xuan))[1:]) == sorted(lac_xuan)
    assert set(_nodes(doc, 2).values()) == {"pending"}
    for n in lac_xuan:
        fleet.birth(n, v, (v, "active", ""))
    await fleet.step()
    doc = await fleet.step()
    assert doc["stage"] == 2 and set(_nodes(doc, 2).values()) == {"sent"}
    for n in _nodes(doc, 2):
        fleet.birth(n, v, (v, "active", ""))
    doc = await fleet.step()
    assert doc["state"] == "done" and doc["counts"]["updated"] == 1 + len(lac_xuan) + 24
    assert len(fleet.commands.wait(1 + len(lac_xuan) + 24)) == 1 + len(lac_xuan) + 24


async def test_a_silent_canary_pauses_the_rollout_at_its_timeout(fleet: Fleet) -> None:
    v = fleet.version
    fleet.rollouts.create(v, canary="dr-cam-01", communes=["da-ron"], timeout_s=300, created_by="t")
    await fleet.step()
    fleet.now += 299
    doc = await fleet.step()
    assert doc["state"] == "running"
    fleet.now += 2
    doc = await fleet.step()
    assert doc["state"] == "paused"
    assert doc["reason"].startswith(f"board dr-cam-01 failed: did not report {v} as active within 300 s")
    assert set(_nodes(doc, 1).values()) == {"pending"}
    assert fleet.commands.wait(1) == ["dr-cam-01"]  # nobody else was told

    with pytest.raises(ValueError, match="still running or paused"):
        fleet.rollouts.create(v, canary=None, created_by="t")
    doc = fleet.rollouts.resume(doc["id"], "t", skip_failed=True)
    doc = await fleet.step()
    assert doc["stage"] == 1 and _nodes(doc, 0) == {"dr-cam-01": "skipped"}


async def test_an_old_failure_report_is_not_taken_for_a_new_one(fleet: Fleet) -> None:
    """A board whose last birth already says "this version failed" (an earlier attempt) fails
    this rollout only with a new report; a fresh rollback or refusal pauses at once."""
    v = fleet.version
    fleet.birth("tt-ap-01", "0.0.9", (v, "failed", "no space left"))
    fleet.rollouts.create(v, canary="tt-ap-01", communes=[], created_by="t")
    await fleet.step()
    doc = await fleet.step()
    assert doc["state"] == "running" and _nodes(doc, 0) == {"tt-ap-01": "sent"}
    fleet.birth("tt-ap-01", "0.0.9", (v, "rolled_back", "exited 3 times before a healthy birth"))
    doc = await fleet.step()
    assert doc["state"] == "paused" and "rolled_back: exited 3 times" in doc["reason"]

    doc = fleet.rollouts.resume(doc["id"], "t")  # tried again
    await fleet.step()
    fleet.birth("tt-ap-01", v, (v, "active", ""))
    doc = await fleet.step()
    assert doc["state"] == "done"
    assert fleet.commands.wait(2) == ["tt-ap-01", "tt-ap-01"]
