"""The fleet lab: the shipped hardened broker with provisioned boards and cloud user, a real
``cloud serve`` process, real agents over TLS with their own passwords, and users of every role.

The broker runs ``firmware_config/mosquitto/mosquitto-secure.conf`` as shipped (only its
container paths and ports are rewritten), with the passwd/ACL files ``commune-iot provision``
writes: what these tests show holds for the configuration that is deployed.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[2]
for sub in ("edge", "camera"):  # AgentProcess, Recorder; RtspServer
    if str(REPO / "tests" / sub) not in sys.path:
        sys.path.append(str(REPO / "tests" / sub))

import support  # noqa: E402
from edge_helpers import AgentProcess, Recorder  # noqa: E402
from support import wait_until  # noqa: E402

from cloud.auth.roles import Role  # noqa: E402
from cloud.auth.users import UserStore  # noqa: E402
from cloud.config import load_config  # noqa: E402
from cloud.storage.sql import SqlStore  # noqa: E402
from commune_iot.cli import main as cli  # noqa: E402
from commune_iot.fleet import CloudProcess, cloud_config, load_devices  # noqa: E402
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port  # noqa: E402

SHIPPED = REPO / "firmware_config" / "mosquitto" / "mosquitto-secure.conf"
CLOUD_USER = "ciot-cloud-test"
DEVICES = {d["id"]: d for d in load_devices()}
#: (roles, communes) of the lab's web users.
USERS: dict[str, tuple[set[Role], set[str]]] = {
    "admin": ({Role.ADMIN}, set()),
    "kythuat": ({Role.TECHNICIAN}, set()),
    "kythuat-tutra": ({Role.TECHNICIAN}, {"tu-tra"}),
    "ca-daron": ({Role.POLICE}, {"da-ron"}),
    "mic": ({Role.MIC}, set()),
}


class HardenedBroker(Mosquitto):
    """The shipped secure configuration on free loopback ports; TLS for boards."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.tls_port = free_port()
        self.auth = run_dir / "auth"

    def start(self) -> HardenedBroker:
        conf = SHIPPED.read_text(encoding="utf-8")
        conf = conf.replace("/mosquitto/config/auth", str(self.auth)).replace(
            "/mosquitto/data/", f"{self.run_dir}/data/"
        )
        conf = re.sub(r"^listener 8883$", f"listener {self.tls_port} 127.0.0.1", conf, flags=re.M)
        conf = re.sub(r"^listener 1883$", f"listener {self.port} 127.0.0.1", conf, flags=re.M)
        if os.geteuid() == 0:
            conf = "user root\n" + conf
        (self.run_dir / "data").mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(conf, encoding="utf-8")
        self._spawn([self.binary, "-c", str(self.conf_path)])
        self.wait_ready()
        return self


class Api(support.Api):
    """The API client with ``get`` returning the body of a 200 (anything else fails the test)."""

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, f"GET {path}: {status} {body!r:.300}"
        return body


@dataclass
class FleetLab:
    run_dir: Path
    broker: HardenedBroker
    cloud: CloudProcess
    tokens: dict[str, str]
    agents: list[AgentProcess] = field(default_factory=list)

    # -- API -------------------------------------------------------------------------------

    def api(self, user: str = "kythuat") -> Api:
        return Api(self.cloud.url, self.tokens[user])

    def token_file(self, user: str = "kythuat") -> Path:
        path = self.run_dir / f"{user}.token"
        path.write_text(self.tokens[user] + "\n")
        return path

    def fleet_cli(self, *args: str, user: str = "kythuat") -> int:
        return cli(["fleet", "--url", self.cloud.url, "--token-file", str(self.token_file(user)), *args])

    def twin(self, node: str) -> dict[str, Any]:
        twin: dict[str, Any] = self.api().get(f"/api/v1/fleet/nodes/{node}/config")
        return twin

    def wait_reported(self, node: str, timeout: float = 30) -> dict[str, Any]:
        twin: dict[str, Any] = wait_until(
            f"{node}'s first report", lambda: (t := self.twin(node))["reported"] and t, timeout
        )
        return twin

    def set_config(self, node: str, config: dict[str, Any], secrets: dict[str, str] | None = None) -> int:
        status, body = self.api().call(
            "PUT", f"/api/v1/fleet/nodes/{node}/config", {"config": config, "secrets": secrets or {}}
        )
        assert status == 202, f"{status} {body}"
        return int(body["version"])

    def wait_running(self, node: str, version: int, timeout: float, *, good: bool = False) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            t = self.twin(node)
            ok = t["running_version"] == version and (t["good"] or not good)
            return t if ok else None

        twin: dict[str, Any] = wait_until(f"{node} running version {version}", check, timeout, every=0.05)
        return twin

    def command(self, node: str, name: str, **body: Any) -> tuple[int, dict[str, Any]]:
        status, row = self.api().call("POST", f"/api/v1/fleet/nodes/{node}/commands", {"name": name, **body})
        assert status in (200, 201), f"{status} {row}"
        return status, row

    def wait_command(self, command_id: str, timeout: float = 30) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            row: dict[str, Any] = self.api().get(f"/api/v1/fleet/commands/{command_id}")
            return row if row["state"] in ("done", "failed", "expired") else None

        row: dict[str, Any] = wait_until(f"command {command_id} to finish", check, timeout)
        return row

    # -- boards ----------------------------------------------------------------------------

    def board_config(self, node: str, collectors: list[dict[str, Any]], **control: Any) -> Path:
        """The edge YAML of a provisioned board: TLS, its own password, the 3G wire settings of
        the bundles, waits for the cloud."""
        bundle = self.run_dir / "bundles" / node
        d = DEVICES[node]
        state = self.run_dir / "boards" / node
        state.mkdir(parents=True, exist_ok=True)
        cfg = {
            "node": node,
            "commune": d["commune"],
            "site": d["site"],
            "broker": {
                "url": f"mqtts://127.0.0.1:{self.broker.tls_port}",
                "ca_file": str(bundle / "ca.crt"),
                "username": node,
                "password_file": str(bundle / "mqtt.password"),
                "keepalive_s": 5,
                # as a provisioned 3G board: packed JSON (its reports and replies too), beats
                "compress": True,
                "check_link_s": 20,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1.0,
            },
            "health_interval_s": 1.0,
            "outbox": {"path": str(state / "outbox.sqlite3")},
            "control": {"revert_after_s": 60, **control},
            "collectors": collectors,
            "log": {"level": "INFO"},
        }
        path = state / "edge.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def start_agent(self, config: Path) -> AgentProcess:
        agent = AgentProcess(config, config.parent / "agent.log")
        self.agents.append(agent)
        return agent

    def recorder(self, topic: str) -> Recorder:
        """A subscriber as the cloud user (on the plain listener, under the ACL)."""
        password = (self.run_dir / "bundles" / f"{CLOUD_USER}.password").read_text().strip()
        return Recorder(
            self.broker.port, topic, client_id=f"t-rec-{os.urandom(3).hex()}", auth=(CLOUD_USER, password)
        )

    def publish_as_cloud(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish with the cloud's broker account (what a stolen cloud password could do)."""
        password = (self.run_dir / "bundles" / f"{CLOUD_USER}.password").read_text().strip()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-pub-{os.urandom(3).hex()}", protocol=mqtt.MQTTv5
        )
        c.username_pw_set(CLOUD_USER, password)
        c.connect("127.0.0.1", self.broker.port, keepalive=10)
        c.loop_start()
        try:
            c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
        finally:
            c.disconnect()
            c.loop_stop()

    def close(self) -> None:
        for a in self.agents:
            a.close()
        self.cloud.stop()
        self.broker.kill()


def start_lab(run_dir: Path, influx: InfluxDB, boards: list[str], influx_password: str) -> FleetLab:
    broker = HardenedBroker(run_dir / "mqtt")
    auth, out = str(broker.auth), str(run_dir / "bundles")
    assert cli(["provision", "--ca", "--host", "127.0.0.1", "--broker-dir", auth]) == 0
    assert cli(["provision", "--cloud-user", CLOUD_USER, "--broker-dir", auth, "--out", out]) == 0
    for node in boards:
        url = f"mqtts://127.0.0.1:{broker.tls_port}"
        assert cli(["provision", node, "--broker-dir", auth, "--out", out, "--broker-url", url]) == 0
    broker.start()
    (run_dir / "influx.password").write_text(influx_password)
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx.url,
        influx_db="t_fleet_" + os.urandom(3).hex(),
        influx_user=influx.username or "",
        influx_password_file=run_dir / "influx.password",
        state_dir=run_dir / "cloud",
        http_port=free_port(),
        client_id="ciot-cloud-fleet-test",
    )
    cfg["mqtt"] |= {
        "username": CLOUD_USER,
        "password_file": str(run_dir / "bundles" / f"{CLOUD_USER}.password"),
    }
    cloud = CloudProcess.write(run_dir, cfg)
    tokens = _users(cloud.config_path)
    cloud.start(wait=60)
    wait_until("the cloud ready", lambda: cloud.get_status("/readyz") == 200, 30)
    return FleetLab(run_dir, broker, cloud, tokens)


def _users(config_path: Path) -> dict[str, str]:
    cfg = load_config(config_path)
    sql = SqlStore(cfg.sql.url)
    try:
        users = UserStore(sql.engine)
        tokens = {}
        for name, (roles, communes) in USERS.items():
            users.add(name, f"{name}-password-2026!", frozenset(roles), communes=frozenset(communes))
            tokens[name] = users.create_token(name, "tests")
        return tokens
    finally:
        sql.dispose()
