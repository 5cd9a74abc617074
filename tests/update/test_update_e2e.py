"""Issue 15, must-show: signed agent updates with rollback, on a board run under supervision.

Real parts: Mosquitto, InfluxDB, the cloud service (``commune-iot cloud serve``: ingest, API,
the fleet service, rollouts) behind a TLS reverse proxy that can cut downloads like a 3G
uplink, the board's launcher (``firmware_config/launcher/ciot_launcher.py``, run by the base
interpreter as systemd would) supervising real agents installed in their own virtualenvs
from real wheels, the broker password file made by ``commune-iot provision`` (the board
downloads with those credentials). The ``update`` command goes the way every fleet command
goes: the rollout issues it to the fleet queue, the fleet service signs and sends it, the
agent (which checks the signature) runs its ``update`` handler, and the command's state in
``/api/v1/fleet/commands/{id}`` ends ``done`` or ``failed`` with the board's reason; a command
that restarts into a new version is answered by the next agent process.

In order: A is installed and reports itself; a forged bundle and a truncated download are
refused with nothing changed, and each pauses its rollout; B' (fails to import at start-up)
is rolled back to A by the launcher within the trial window, A answers the command failed
with the launcher's reason, the rollout pauses before any other board of the commune gets
the command; B, downloaded through three cut connections, resumes each time, becomes active,
answers the command done and reports its version; the API and CLI show who runs what.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from update_helpers import Bundles, CuttingProxy, LauncherProcess, installed, read_state, wait_until

from commune_iot.cli import main as cli
from commune_iot.fleet import CloudProcess, cloud_config
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port
from wire.release import MANIFEST, parse_manifest

BOARD, COMMUNE = "dr-cam-01", "da-ron"
#: N: how long a new version has to prove itself before the launcher goes back (small here).
TRIAL_S = 30.0


class CommandLog:
    """Every command the cloud publishes, to any board."""

    def __init__(self, port: int) -> None:
        self.nodes: list[str] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cmd-log", protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, *a: c.subscribe("ciot/v1/+/+/cmd", qos=1)
        self.c.on_message = lambda c, u, m: self.nodes.append(m.topic.split("/")[3])
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class Stack:
    def __init__(self, tmp: Path, mosquitto: Mosquitto, influx: InfluxDB, bundles: Bundles) -> None:
        self.tmp = tmp
        self.bundles = bundles
        broker = tmp / "broker"
        assert cli(["provision", "--ca", "--host", "127.0.0.1", "--broker-dir", str(broker)]) == 0
        url = "mqtts://127.0.0.1:8883"
        out = tmp / "provisioned"
        assert (
            cli(["provision", BOARD, "--broker-dir", str(broker), "--out", str(out), "--broker-url", url])
            == 0
        )
        self.password_file = out / BOARD / "mqtt.password"
        secret = tmp / "influx.password"
        secret.write_text(influx.password)
        port = free_port()
        cfg = cloud_config(
            mqtt_url=mosquitto.url,
            influx_url=influx.url,
            influx_db="t_update_e2e",
            influx_user=influx.username,
            influx_password_file=secret,
            state_dir=tmp / "cloud",
            http_port=port,
        )
        self.proxy = CuttingProxy(port, broker / "server.crt", broker / "server.key")
        self.releases = tmp / "cloud" / "releases"
        cfg["releases"] = {
            "dir": str(self.releases),
            "trusted_keys": [bundles.public],
            "board_passwd_file": str(broker / "passwd"),
            "public_url": f"https://127.0.0.1:{self.proxy.port}",
            "board_timeout_s": 120,
            "rollout_interval_s": 0.3,
        }
        self.cloud = CloudProcess.write(tmp / "cloud", cfg).start()
        # the board checks every command against the cloud's key (control.cloud_public_key)
        cloud_key = self.cloud.get_json("/api/v1/fleet/key")["cloud_public_key"]
        self.root = tmp / "board" / "root"
        self.edge_yaml = tmp / "board" / "edge.yaml"
        self.edge_yaml.parent.mkdir(parents=True)
        doc = {
            "node": BOARD,
            "commune": COMMUNE,
            "broker": {"url": mosquitto.url, "username": BOARD, "password_file": str(self.password_file)},
            "health_interval_s": 1,
            "outbox": {"path": str(tmp / "board" / "outbox.sqlite3")},
            "control": {"cloud_public_key": cloud_key},
            "update": {
                "server_url": cfg["releases"]["public_url"],
                "ca_file": str(broker / "ca.crt"),
                "trusted_keys": [bundles.public],
                "trial_s": TRIAL_S,
                "max_start_failures": 3,
                "retry_max_s": 0.5,
                "attempts": 5,
                "read_timeout_s": 10,
            },
        }
        self.edge_yaml.write_text(yaml.safe_dump(doc))
        self.launcher: LauncherProcess | None = None
        self.commands = CommandLog(mosquitto.port)

    # -- cloud ------------------------------------------------------------------------------

    def publish(self, bundle: Path) -> None:
        assert cli(["release", "publish", str(bundle), "--config", str(self.cloud.config_path)]) == 0

    def board(self) -> dict[str, Any]:
        nodes = self.cloud.get_json("/api/v1/releases")["nodes"]
        found: dict[str, Any] = next(n for n in nodes if n["node"] == BOARD)
        return found

    def rollout(self, version: str, communes: list[str]) -> int:
        doc = self.cloud.post_json(
            "/api/v1/rollouts", {"version": version, "canary": BOARD, "communes": communes}
        )
        return int(doc["id"])

    def rollout_state(self, rid: int, *states: str, timeout: float) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            doc: dict[str, Any] = self.cloud.get_json(f"/api/v1/rollouts/{rid}")
            return doc if doc["state"] in states else None

        return wait_until(check, timeout, f"rollout {rid} {states}", interval=0.2)  # type: ignore[no-any-return]

    def act(self, rid: int, action: str) -> None:
        self.cloud.post_json(f"/api/v1/rollouts/{rid}/{action}", {} if action == "resume" else None)

    def command(self, rid: int, *states: str, timeout: float) -> dict[str, Any]:
        """The board's ``update`` command of rollout ``rid``, once the fleet API shows it in ``states``."""
        node = next(n for n in self.cloud.get_json(f"/api/v1/rollouts/{rid}")["nodes"] if n["node"] == BOARD)
        assert node["command"], node

        def check() -> dict[str, Any] | None:
            row: dict[str, Any] = self.cloud.get_json(f"/api/v1/fleet/commands/{node['command']}")
            return row if row["state"] in states else None

        return wait_until(check, timeout, f"command {node['command']} {states}", interval=0.2)  # type: ignore[no-any-return]

    # -- board ------------------------------------------------------------------------------

    def install_first(self, bundle: Path) -> None:
        argv = [sys.executable, "-m", "commune_iot", "edge", "update", "--bundle", str(bundle), "--first"]
        res = subprocess.run(
            [*argv, "--root", str(self.root), "--config", str(self.edge_yaml)], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout + res.stderr

    def start_board(self) -> None:
        self.launcher = LauncherProcess(
            self.root,
            ["edge", "run", "--config", str(self.edge_yaml)],
            self.tmp / "board" / "launcher.log",
            restart_s=0.3,
        )

    def close(self) -> None:
        self.commands.close()
        if self.launcher is not None:
            self.launcher.stop()
            self.launcher.kill()
        self.cloud.stop()
        self.proxy.close()


@pytest.fixture
def stack(tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB, bundles: Bundles) -> Iterator[Stack]:
    s = Stack(tmp_path, mosquitto, influx_server, bundles)
    try:
        yield s
    finally:
        s.close()


def _version(bundle: Path) -> str:
    return parse_manifest((bundle / MANIFEST).read_bytes()).version


def _seconds(since: str, until: str) -> float:
    return (datetime.fromisoformat(until) - datetime.fromisoformat(since)).total_seconds()


def test_signed_update_rollback_and_staged_rollout(
    stack: Stack, bundles: Bundles, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    a, b, broken = _version(bundles.a), _version(bundles.b), _version(bundles.broken)
    stack.install_first(bundles.a)
    stack.start_board()
    wait_until(lambda: stack.board()["agent_version"] == a, 60, f"board reporting {a}", interval=0.2)
    t_a = time.monotonic() - t0

    # 1. A forged bundle: the cloud server (or someone on it) altered a signed manifest.
    forged = stack.releases / f"{a.split('+')[0]}+test.forged"
    shutil.copytree(bundles.b, forged)
    doc = json.loads((forged / MANIFEST).read_text())
    doc["version"] = forged.name
    (forged / MANIFEST).write_text(json.dumps(doc, indent=1))
    before = installed(stack.root)
    r1 = stack.rollout(forged.name, [])
    paused = stack.rollout_state(r1, "paused", timeout=60)
    assert "bad signature" in paused["reason"], paused
    cmd = stack.command(r1, "done", "failed", timeout=30)
    assert cmd["state"] == "failed" and "bad signature by key" in cmd["error"], cmd
    assert cmd["issued_by"] == "rollout" and cmd["args"]["version"] == forged.name
    assert installed(stack.root) == before, "a refused bundle changed the board"
    assert stack.board()["agent_version"] == a
    stack.act(r1, "abort")

    # 2. B' installs, cannot start, and the launcher goes back to A by itself; A answers.
    stack.publish(bundles.broken)
    r2 = stack.rollout(broken, [COMMUNE])

    def rolled_back() -> dict[str, Any] | None:
        state = read_state(stack.root)
        last = state.get("last") or {}
        return state if (last.get("version"), last.get("state")) == (broken, "rolled_back") else None

    state = wait_until(rolled_back, 120, "B' installed, put on trial and rolled back")
    rolled_back_after = _seconds(state["since"], state["last"]["ts"])
    assert rolled_back_after <= TRIAL_S, state
    assert state["status"] == "stable" and state["version"] == a
    assert "No module named 'ciot_module_that_is_not_there'" in state["last"]["error"]
    cmd = stack.command(r2, "done", "failed", timeout=60)
    assert cmd["state"] == "failed", cmd
    assert cmd["error"].startswith(f"failed: rolled back to {a}: exited 3 times before a healthy birth"), cmd
    assert "No module named 'ciot_module_that_is_not_there'" in cmd["error"]
    assert f"{broken} installed and on trial" in cmd["progress"], cmd
    paused = stack.rollout_state(r2, "paused", timeout=60)
    assert f"board {BOARD} failed: " in paused["reason"] and "exited 3 times" in paused["reason"], paused
    others = [n for n in paused["nodes"] if n["node"] != BOARD]
    assert len(others) == 23 and all(n["state"] == "pending" for n in others)
    assert set(stack.commands.nodes) == {BOARD}, "a paused rollout reached other boards"
    assert stack.board()["agent_version"] == a and stack.board()["update"]["state"] == "rolled_back"
    stack.act(r2, "abort")

    # 3. B, but the server's copy of the wheel is truncated: refused before anything changes.
    stack.publish(bundles.b)
    wheel = next(p for p in (stack.releases / b).glob("commune_iot-*.whl"))
    good = wheel.read_bytes()
    wheel.write_bytes(good[: len(good) // 2])
    before = installed(stack.root)
    r3 = stack.rollout(b, [])
    paused = stack.rollout_state(r3, "paused", timeout=60)
    assert "bytes, signed:" in paused["reason"], paused
    cmd = stack.command(r3, "done", "failed", timeout=30)
    assert cmd["state"] == "failed" and "bytes, signed:" in cmd["error"], cmd
    assert installed(stack.root) == before, "a truncated download changed the board"

    # 4. The file mended, resume: the download is cut three times at random points and resumes;
    # A installs B and hands over, B answers the command once its launcher kept it.
    wheel.write_bytes(good)
    cut_at = random.randrange(20_000, len(good) // 4)
    stack.proxy.cut(3, cut_at)
    stack.act(r3, "resume")
    done = stack.rollout_state(r3, "done", timeout=60)
    cmd = stack.command(r3, "done", "failed", timeout=30)
    assert cmd["state"] == "done", cmd
    res = cmd["result"]
    assert (res["state"], res["version"], res["from"]) == ("active", b, a), res
    fetched = res["files"][wheel.name]
    assert len(stack.proxy.cuts) == 3
    assert fetched["resumes"] == 3 and fetched["retries"] == 3, fetched
    assert fetched["network_bytes"] == len(good), "a resumed download fetched bytes twice"
    assert done["nodes"][0]["state"] == "updated"
    board = stack.board()
    assert board["agent_version"] == b and board["update"]["state"] == "active"
    assert read_state(stack.root)["version"] == b
    listed = {r["version"]: r["nodes"] for r in stack.cloud.get_json("/api/v1/releases")["releases"]}
    assert listed[b] == [BOARD] and listed[broken] == []
    history = stack.cloud.get_json(f"/api/v1/fleet/nodes/{BOARD}/commands")
    assert [(c["name"], c["state"]) for c in history] == [("update", "done")] + [("update", "failed")] * 3
    # 5. Who runs what, on the command line too.
    capsys.readouterr()
    assert cli(["release", "list", "--config", str(stack.cloud.config_path)]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:4] == [BOARD, COMMUNE, "online", b] for line in out.splitlines()), out
    assert any(
        line.split()[0] == b and "on 1 board(s)" in line for line in out.splitlines() if line.strip()
    ), out
    print(
        f"\nA reported after {t_a:.1f} s; B' rolled back {rolled_back_after:.0f} s after its trial began "
        f"(N = {TRIAL_S:g} s); cut at {cut_at} B x3; all {time.monotonic() - t0:.1f} s"
    )
