"""The onboarding lab: the hardened broker run as production runs it (its own unprivileged user,
under the reload watcher as in compose), the cloud with ``broker_admin`` writing the broker's
files and asking the watcher to reload, two boards already in service (real edge agents from
their ``provision`` bundles), and users of every role."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from support import CLOUD_USER, Api, provision, wait_until

from cloud.auth.roles import Role
from cloud.auth.users import UserStore
from cloud.config import load_config
from cloud.storage.sql import SqlStore
from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config
from commune_iot.localsvc import InfluxDB, SecureMosquitto, free_port

#: Boards in service before the tests add any.
BOARDS = ("dr-cam-01", "tt-ap-01")
HEALTH_S = 0.5
#: (roles, communes, password) of the lab's users.
USERS: dict[str, tuple[set[Role], set[str], str]] = {
    "admin": ({Role.ADMIN}, set(), "quan-tri-2026!"),
    "kythuat": ({Role.TECHNICIAN}, set(), "ky-thuat-vien-1"),
    "kythuat-daron": ({Role.TECHNICIAN}, {"da-ron"}, "ky-thuat-da-ron-1"),
    "ca-daron": ({Role.POLICE}, {"da-ron"}, "cong-an-da-ron-1"),
    "mic": ({Role.MIC}, set(), "so-tttt-lam-dong"),
}


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium through Playwright, as tests/web/browser.py starts it."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Lab:
    run: Path
    broker: SecureMosquitto
    cloud: CloudProcess
    tokens: dict[str, str]
    cloud_client_id: str
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    def api(self, user: str) -> Api:
        return Api(self.cloud.url, self.tokens[user])

    def agent_from_zip(self, data: bytes) -> AgentProcess:
        """Unzip a bundle and start its agent: the bundle's config, password and CA; only the
        board's fixed paths (/etc, /var/lib) and the timings are changed for the test."""
        z = zipfile.ZipFile(io.BytesIO(data))
        (folder,) = {n.split("/")[0] for n in z.namelist()}
        where = self.run / "unzipped"
        z.extractall(where)
        bundle = where / folder
        cfg = yaml.safe_load((bundle / "edge.yaml").read_text(encoding="utf-8"))
        return self.start_agent(bundle, cfg)

    def start_agent(self, bundle: Path, cfg: dict[str, Any]) -> AgentProcess:
        cfg["broker"] |= {
            "ca_file": str(bundle / "ca.crt"),
            "password_file": str(bundle / "mqtt.password"),
            "keepalive_s": 5,
            "reconnect_max_s": 1.0,
        }
        cfg["outbox"]["path"] = str(self.run / "agents" / cfg["node"] / "outbox.sqlite3")
        cfg["health_interval_s"] = HEALTH_S
        cfg["log"] = {"level": "INFO"}
        agent = AgentProcess.write(self.run, cfg).start()
        self.agents[cfg["node"]] = agent
        return agent

    def state(self, user: str, device: str) -> str:
        status, body = self.api(user).call("GET", f"/api/v1/inventory/devices/{device}")
        assert status == 200, body
        return str(body["state"])

    def close(self) -> None:
        for a in self.agents.values():
            a.kill()
        self.cloud.stop()
        self.broker.kill()


def start_lab(home: Path, run: Path, influx: InfluxDB, influx_db: str) -> Lab:
    broker = SecureMosquitto(home)
    provision(broker, "--ca", "--host", "127.0.0.1")
    provision(broker, "--cloud-user", CLOUD_USER)
    for board in BOARDS:
        provision(broker, board)
    request, ack = broker.auth / "reload.request", home / "reload" / "ack"
    ack.parent.mkdir()
    broker.start(reload_files=(request, ack))
    (run / "influx.password").write_text(influx.password)
    client_id = "ciot-cloud-onboarding"
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx.url,
        influx_db=influx_db,
        influx_user=influx.username,
        influx_password_file=run / "influx.password",
        state_dir=run / "cloud",
        http_port=free_port(),
        client_id=client_id,
    )
    cfg["mqtt"] |= {"username": CLOUD_USER, "password_file": str(broker.bundles / f"{CLOUD_USER}.password")}
    cfg["broker_admin"] = {
        "dir": str(broker.auth),
        "reload_request_file": str(request),
        "reload_ack_file": str(ack),
        "reload_timeout_s": 10,
        "board_url": broker.tls_url,
    }
    cfg["inventory_poll_s"] = 0.5
    cloud = CloudProcess.write(run, cfg)
    tokens = _users(cloud.config_path)
    cloud.start(wait=60)
    wait_until("the cloud ready", lambda: cloud.get_status("/readyz") == 200, 30)
    lab = Lab(run, broker, cloud, tokens, client_id)
    for board in BOARDS:
        bundle = broker.bundles / board
        lab.start_agent(bundle, yaml.safe_load((bundle / "edge.yaml").read_text(encoding="utf-8")))
    for board in BOARDS:
        wait_until(f"{board} up", lambda b=board: lab.state("admin", b) == "up", 30)  # type: ignore[misc]
    return lab


def _users(config_path: Path) -> dict[str, str]:
    cfg = load_config(config_path)
    sql = SqlStore(cfg.sql.url)
    try:
        users = UserStore(sql.engine)
        tokens = {}
        for name, (roles, communes, password) in USERS.items():
            users.add(name, password, frozenset(roles), communes=frozenset(communes))
            tokens[name] = users.create_token(name, "tests")
        return tokens
    finally:
        sql.dispose()
