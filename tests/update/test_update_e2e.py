"""Issue 15, must-show: signed agent updates with rollback, on a board run under supervision.

Real parts: Mosquitto, InfluxDB, the cloud service (``commune-iot cloud serve``, ingest and
API) behind a TLS reverse proxy that can cut downloads like a 3G uplink, the board's
launcher (``firmware_config/launcher/ciot_launcher.py``, run by the base interpreter as
systemd would) supervising real agents installed in their own virtualenvs from real wheels,
the broker password file made by ``commune-iot provision`` (the board downloads with those
credentials), and rollouts driven by the cloud. One stand-in: the board's command handler
(``CommandStandIn``), which is the device-twin work's and runs the same ``edge update``.

In order: A is installed and reports itself; a forged bundle and a truncated download are
refused with nothing changed, and each pauses its rollout; B' (fails to import at start-up)
is rolled back to A by the launcher within the trial window, the rollout pauses before any
other board of the commune gets the command; B, downloaded through three cut connections,
resumes each time, becomes active and reports its version; the API and CLI show who runs what.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from update_helpers import (
    Bundles,
    CommandStandIn,
    CuttingProxy,
    LauncherProcess,
    installed,
    read_state,
    wait_until,
)

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
        self.root = tmp / "board" / "root"
        self.edge_yaml = tmp / "board" / "edge.yaml"
        self.edge_yaml.parent.mkdir(parents=True)
        doc = {
            "node": BOARD,
            "commune": COMMUNE,
            "broker": {"url": mosquitto.url, "username": BOARD, "password_file": str(self.password_file)},
            "health_interval_s": 1,
            "outbox": {"path": str(tmp / "board" / "outbox.sqlite3")},
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
        self.stand_in: CommandStandIn | None = None
        self.commands = CommandLog(mosquitto.port)
        self.mosquitto = mosquitto

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

    # -- board ------------------------------------------------------------------------------

    def install_first(self, bundle: Path) -> None:
        import subprocess
        import sys

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
        self.stand_in = CommandStandIn(
            self.mosquitto.port, f"ciot/v1/{COMMUNE}/{BOARD}/cmd", self.root, self.edge_yaml
        )

    def close(self) -> None:
        for part in (self.stand_in, self.commands):
            if part is not None:
                part.close()
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


def test_signed_update_rollback_and_staged_rollout(
    stack: Stack, bundles: Bundles, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    a, b, broken = _version(bundles.a), _version(bundles.b), _version(bundles.broken)
    stack.install_first(bundles.a)
    stack.start_board()
    assert stack.stand_in is not None
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
    assert stack.stand_in.wait_result(1, 5)["state"] == "failed"
    assert installed(stack.root) == before, "a refused bundle changed the board"
    assert stack.board()["agent_version"] == a
    stack.act(r1, "abort")

    # 2. B' installs, cannot start, and the launcher goes back to A by itself.
    stack.publish(bundles.broken)
    r2 = stack.rollout(broken, [COMMUNE])
    res = stack.stand_in.wait_result(2, 120)
    assert res["ok"] and res["state"] == "trial", res
    trial_began = time.monotonic()
    state = wait_until(lambda: (s := read_state(stack.root))["status"] == "stable" and s, TRIAL_S, "rollback")
    rolled_back_after = time.monotonic() - trial_began
    assert state["version"] == a and state["last"]["state"] == "rolled_back"
    assert "No module named 'ciot_module_that_is_not_there'" in state["last"]["error"]
    paused = stack.rollout_state(r2, "paused", timeout=60)
    assert f"board {BOARD} failed: rolled_back" in paused["reason"], paused
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
    assert installed(stack.root) == before, "a truncated download changed the board"

    # 4. The file mended, resume: the download is cut three times at random points and resumes.
    wheel.write_bytes(good)
    cut_at = random.randrange(20_000, len(good) // 4)
    stack.proxy.cut(3, cut_at)
    stack.act(r3, "resume")
    done = stack.rollout_state(r3, "done", timeout=60)
    res = stack.stand_in.wait_result(4, 5)
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
    # 5. Who runs what, on the command line too.
    capsys.readouterr()
    assert cli(["release", "list", "--config", str(stack.cloud.config_path)]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:4] == [BOARD, COMMUNE, "online", b] for line in out.splitlines()), out
    assert any(
        line.split()[0] == b and "on 1 board(s)" in line for line in out.splitlines() if line.strip()
    ), out
    print(
        f"\nA reported after {t_a:.1f} s; B' rolled back {rolled_back_after:.1f} s after its trial began "
        f"(N = {TRIAL_S:g} s); cut at {cut_at} B x3; all {time.monotonic() - t0:.1f} s"
    )
