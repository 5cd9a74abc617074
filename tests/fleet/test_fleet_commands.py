"""Issue 15, must-show 2: each command end to end (API -> hardened broker -> real agent -> reply ->
API), a command whose board is offline past its TTL never runs, a command issued twice (or
replayed on the broker) runs once, and a board holding the cloud's key refuses forged ones."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import AgentProcess
from fleet_helpers import FleetLab
from support import wait_until

from wire import crypto

BOARDS = ["dr-cam-05", "dr-ap-01", "dr-cam-06", "dr-cam-07"]


def sim_camera(node: str) -> dict[str, Any]:
    return {"type": "sim_camera", "device": node, "interval_s": 1.0, "events_per_hour": 0}


def ran(agent: AgentProcess, command_id: str) -> int:
    """How many times the agent started running this command (its log says so each time)."""
    return agent.log().count(f"running command {command_id} ")


@pytest.fixture(scope="module")
def boards(lab: FleetLab) -> Iterator[dict[str, AgentProcess]]:
    agents = {
        "dr-cam-05": lab.start_agent(lab.board_config("dr-cam-05", [sim_camera("dr-cam-05")])),
        "dr-ap-01": lab.start_agent(
            lab.board_config("dr-ap-01", [{"type": "sim_ap", "device": "dr-ap-01", "interval_s": 5.0}])
        ),
    }
    for node in agents:
        lab.wait_reported(node)
        wait_until(f"{node} online", lambda n=node: lab.twin(n)["online"], 10)  # type: ignore[misc]
    yield agents
    for a in agents.values():
        a.terminate()


def test_each_command_end_to_end(lab: FleetLab, boards: dict[str, AgentProcess], tmp_path: Path) -> None:
    cam, ap = "dr-cam-05", "dr-ap-01"
    results: dict[str, dict[str, Any]] = {}
    for node, name, args in [
        (cam, "snapshot", {}),
        (ap, "poll", {}),
        (ap, "ping", {"host": "127.0.0.1", "count": 2}),
        (cam, "diag", {}),
        (cam, "logs", {"lines": 20}),
        (cam, "rebirth", {}),
    ]:
        status, row = lab.command(node, name, args=args)
        assert status == 201 and row["state"] in ("queued", "delivered", "done"), row
        done = lab.wait_command(row["id"], 20)
        assert done["state"] == "done", done
        assert done["delivered_at"] and done["finished_at"] and done["delivered_at"] <= done["finished_at"]
        results[name] = done["result"]
    snap = results["snapshot"]
    assert snap["device"] == cam and snap["width"] > 0 and snap["height"] > 0
    status, jpeg = lab.api().call("GET", f"/api/v1/fleet/commands/{_id(lab, cam, 'snapshot')}/snapshot")
    assert status == 200 and hashlib.sha256(jpeg).hexdigest() == snap["snapshot_sha256"]
    assert results["poll"]["device"] == ap and results["poll"]["reachable"] is True
    assert isinstance(results["poll"]["clients"], int)
    assert results["ping"]["hosts"]["127.0.0.1"] == {
        "of": "127.0.0.1",
        "sent": 2,
        "replies": 2,
        "reachable": True,
    }
    diag = results["diag"]
    assert diag["node"] == cam and diag["agent_version"] and diag["outbox"]["depth"] >= 0
    assert abs(diag["clock"]["offset_s"]) < 5 and diag["broker"]["connected"] is True
    assert any("running command" in line for line in results["logs"]["lines"])
    assert len(results["logs"]["lines"]) <= 20
    # restart: the agent comes back (a new session, same process: it re-executes itself)
    pid = boards[cam].proc.pid
    _, row = lab.command(cam, "restart")
    done = lab.wait_command(row["id"], 30)
    assert done["state"] == "done" and done["result"]["session"] != diag["session"], done
    assert boards[cam].proc.poll() is None and boards[cam].proc.pid == pid
    # the command line, with the picture saved
    out = tmp_path / "now.jpg"
    code = lab.fleet_cli("cmd", cam, "snapshot", "--wait", "20", "--out", str(out))
    assert code == 0 and out.read_bytes().startswith(b"\xff\xd8")
    states = {c["name"]: c["state"] for c in lab.api().get(f"/api/v1/fleet/nodes/{cam}/commands")}
    assert states == {
        "snapshot": "done",
        "diag": "done",
        "logs": "done",
        "rebirth": "done",
        "restart": "done",
    }


def _id(lab: FleetLab, node: str, name: str) -> str:
    return next(c["id"] for c in lab.api().get(f"/api/v1/fleet/nodes/{node}/commands") if c["name"] == name)


def test_a_command_whose_board_is_offline_past_its_ttl_never_runs(lab: FleetLab) -> None:
    node = "dr-cam-07"
    config = lab.board_config(node, [sim_camera(node)])
    agent = lab.start_agent(config)
    lab.wait_reported(node)
    assert agent.terminate() == 0
    wait_until("the board offline", lambda: lab.twin(node)["online"] is False, 10)
    _, row = lab.command(node, "diag", ttl_s=2)
    assert row["state"] == "queued"
    expired = lab.wait_command(row["id"], 10)
    assert expired["state"] == "expired" and "never run" in expired["error"]
    assert expired["delivered_at"] is None and expired["sends"] == 0
    agent = lab.start_agent(config)
    try:
        # A command issued after the board is back is sent after anything the cloud would have
        # sent it on its birth: once it is done, the expired one has had every chance to run.
        wait_until("the board online", lambda: lab.twin(node)["online"], 20)
        _, marker = lab.command(node, "rebirth")
        assert lab.wait_command(marker["id"], 20)["state"] == "done"
        assert ran(agent, row["id"]) == 0
        assert lab.api().get(f"/api/v1/fleet/commands/{row['id']}")["state"] == "expired"
        # A command that reaches the board late (here: replayed by a broker account after its
        # expiry) is refused there too, never run.
        late = _command(node, expires=datetime.now(UTC) - timedelta(seconds=1))
        lab.publish_as_cloud(f"ciot/v1/da-ron/{node}/cmd", json.dumps(late).encode())
        agent.wait_log(f"command {late['id']} (diag) expired at", 10)
        assert ran(agent, late["id"]) == 0
    finally:
        agent.terminate()


def _command(node: str, *, expires: datetime, name: str = "diag") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "v": 1,
        "node": node,
        "id": "t" + os.urandom(8).hex(),
        "name": name,
        "args": {},
        "issued_by": "someone",
        "issued_at": now.isoformat().replace("+00:00", "Z"),
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }


def test_a_command_issued_twice_or_replayed_runs_once(lab: FleetLab, boards: dict[str, AgentProcess]) -> None:
    node = "dr-cam-05"
    rec = lab.recorder(f"ciot/v1/da-ron/{node}/cmd")
    try:
        command_id = "twice-" + os.urandom(6).hex()
        first_status, first = lab.command(node, "snapshot", id=command_id)
        again_status, again = lab.command(node, "snapshot", id=command_id)
        assert (first_status, again_status) == (201, 200)
        assert again["id"] == first["id"] and again["issued_at"] == first["issued_at"]
        assert lab.wait_command(command_id)["state"] == "done"
        status, body = lab.api().call(
            "POST", f"/api/v1/fleet/nodes/{node}/commands", {"name": "diag", "id": command_id}
        )
        assert status == 409, body  # an id is one command, never another
        # The same signed message again on the broker (a replay): the board refuses it.
        sent = rec.wait_for(lambda ms: any(m.json()["id"] == command_id for m in ms), 10, "the command")
        payload = next(m.payload for m in sent if m.json()["id"] == command_id)
        lab.publish_as_cloud(f"ciot/v1/da-ron/{node}/cmd", payload)
        boards[node].wait_log(f"refused command {command_id} (snapshot): this id was taken before", 10)
        assert ran(boards[node], command_id) == 1
        assert lab.api().get(f"/api/v1/fleet/commands/{command_id}")["state"] == "done"
    finally:
        rec.close()


def test_a_board_with_the_cloud_key_refuses_forged_commands_and_configurations(lab: FleetLab) -> None:
    node = "dr-cam-06"
    key = lab.api().get("/api/v1/fleet/key")["cloud_public_key"]
    agent = lab.start_agent(lab.board_config(node, [sim_camera(node)], cloud_public_key=key))
    rec = lab.recorder(f"ciot/v1/da-ron/{node}/cmd")
    try:
        lab.wait_reported(node)
        wait_until("the board online", lambda: lab.twin(node)["online"], 10)
        _, row = lab.command(node, "diag")
        assert lab.wait_command(row["id"])["state"] == "done"  # signed by the cloud: runs
        signed = json.loads(rec.wait_for(lambda ms: len(ms) >= 1, 10, "the command")[0].payload)
        other = crypto.new_signing_key()
        forged = _command(node, expires=datetime.now(UTC) + timedelta(minutes=5))
        forged["sig"] = crypto.sign(other, forged)
        unsigned = _command(node, expires=datetime.now(UTC) + timedelta(minutes=5))
        altered = dict(
            signed, id="t" + os.urandom(8).hex(), name="restart"
        )  # the cloud's signature, new body
        for doc, why in [(forged, "bad signature"), (unsigned, "unsigned"), (altered, "bad signature")]:
            lab.publish_as_cloud(f"ciot/v1/da-ron/{node}/cmd", json.dumps(doc).encode())
            agent.wait_log(f"refused command {doc['id']}", 10)
            assert why in agent.log().split(f"refused command {doc['id']}")[1].splitlines()[0]
            assert ran(agent, doc["id"]) == 0
        # A forged desired configuration is refused too, and blocks no real version after it.
        running = lab.twin(node)["running_version"]
        fake = {
            "v": 1,
            "node": node,
            "version": 99,
            "issued_by": "intruder",
            "issued_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "config": {"collectors": [], "health_interval_s": 3600},
        }
        lab.publish_as_cloud(f"ciot/v1/da-ron/{node}/config", json.dumps(fake).encode(), retain=True)
        twin = wait_until("the refusal", lambda: (t := lab.twin(node))["report_version"] == 99 and t, 10)
        assert twin["report_state"] == "rejected" and "unsigned" in twin["error"]
        assert twin["running_version"] == running
        doc = twin["reported"]
        doc["health_interval_s"] = 2.0
        version = lab.set_config(node, doc)
        assert lab.wait_running(node, version, 10)["reported"]["health_interval_s"] == 2.0
    finally:
        agent.terminate()
        rec.close()
