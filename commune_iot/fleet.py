"""Run the cloud service and simulated edge agents as real processes.

Shared by ``commune-iot demo``, the benchmarks and the end-to-end tests, so that what a
newcomer watches in the demo is what the tests prove: separate agent processes with their
own outbox, talking to a real broker, ingested by a real cloud process.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from commune_iot.localsvc import spawn

REPO = Path(__file__).resolve().parent.parent
INVENTORY = REPO / "firmware_config" / "inventory.yaml"


def load_devices(path: Path = INVENTORY) -> list[dict[str, Any]]:
    """The inventory's devices as plain dicts (no cloud dependency, so a board can use it too)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    devices: list[dict[str, Any]] = data["devices"]
    return devices


def edge_config(
    device: dict[str, Any],
    broker_url: str | list[str],
    state_dir: Path,
    *,
    health_interval_s: float = 10.0,
    sim_interval_s: float = 10.0,
    events_per_hour: float | None = None,
    keepalive_s: int = 10,
    check_link_s: float | None = None,
    compress: bool = False,
    reconnect_max_s: float = 10.0,
    protocol: str = "5",
) -> dict[str, Any]:
    """An edge YAML document for a simulated agent of one inventory device; a list of broker
    URLs is a cluster's nodes (``broker.urls``)."""
    collector: dict[str, Any] = {
        "type": "sim_camera" if device["kind"] == "camera" else "sim_ap",
        "device": device["id"],
        "interval_s": sim_interval_s,
    }
    if events_per_hour is not None and device["kind"] == "camera":
        collector["events_per_hour"] = events_per_hour
    return {
        "node": device["node"],
        "commune": device["commune"],
        "site": device["site"],
        "broker": {
            **({"urls": broker_url} if isinstance(broker_url, list) else {"url": broker_url}),
            "keepalive_s": keepalive_s,
            **({} if check_link_s is None else {"check_link_s": check_link_s}),
            **({"compress": True} if compress else {}),
            "reconnect_max_s": reconnect_max_s,
            **({} if protocol == "5" else {"protocol": protocol}),
        },
        "health_interval_s": health_interval_s,
        "outbox": {"path": str(state_dir / "outbox.sqlite3")},
        "collectors": [collector],
        "log": {"level": "INFO"},
    }


@dataclass
class AgentProcess:
    """One simulated edge agent (``python -m edge``) with its own config, outbox and log."""

    node: str
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def write(cls, run_dir: Path, config: dict[str, Any]) -> AgentProcess:
        node = config["node"]
        node_dir = run_dir / "agents" / node
        node_dir.mkdir(parents=True, exist_ok=True)
        path = node_dir / "edge.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return cls(node, path, node_dir / "agent.log")

    def start(self) -> AgentProcess:
        self.proc = spawn([sys.executable, "-m", "edge", "--config", str(self.config_path)], self.log_path)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: what a power cut looks like to the agent (no orderly offline, outbox as it was)."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def cloud_config(
    *,
    mqtt_url: str | list[str],
    influx_url: str,
    influx_db: str,
    influx_user: str,
    influx_password_file: Path | None,
    state_dir: Path,
    http_port: int,
    client_id: str = "ciot-cloud-local-1",
    inventory: Path = INVENTORY,
    sql_url: str | None = None,
    mqtt_protocol: str = "5",
) -> dict[str, Any]:
    """A cloud YAML document; SQL in a SQLite file under ``state_dir`` unless ``sql_url`` says
    otherwise; a list of broker URLs is a cluster's nodes (``mqtt.urls``)."""
    influx: dict[str, Any] = {
        "url": influx_url,
        "database": influx_db,
        "username": influx_user,
        "spool_dir": str(state_dir / "spool"),
    }
    if influx_password_file is not None:
        influx["password_file"] = str(influx_password_file)
    return {
        "mqtt": {
            **({"urls": mqtt_url} if isinstance(mqtt_url, list) else {"url": mqtt_url}),
            "client_id": client_id,
            **({} if mqtt_protocol == "5" else {"protocol": mqtt_protocol}),
        },
        "influx": influx,
        "sql": {"url": sql_url or f"sqlite:///{state_dir / 'ciot-cloud.db'}"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "inventory": str(inventory),
        "snapshots_dir": str(state_dir / "snapshots"),
    }


@dataclass
class CloudProcess:
    """``commune-iot cloud serve`` (or ``cloud ingest``) as a child process."""

    config_path: Path
    log_path: Path
    port: int | None = None
    role: str = "serve"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: Admin API token for ``get_json`` and friends (the API needs one); made on first start.
    api_token: str | None = field(default=None, repr=False)

    @classmethod
    def write(
        cls, run_dir: Path, config: dict[str, Any], *, name: str = "cloud", role: str = "serve"
    ) -> CloudProcess:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        port = int(config["http"]["port"]) if role == "serve" else None
        return cls(path, run_dir / f"{name}.log", port, role)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 30.0) -> CloudProcess:
        if self.role == "serve" and self.api_token is None:
            self.api_token = admin_token(self.config_path)
        argv = [sys.executable, "-m", "commune_iot", "cloud", self.role, "--config", str(self.config_path)]
        self.proc = spawn(argv, self.log_path)
        if self.role == "serve" and wait:
            self.wait_healthy(wait)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"cloud service exited with {self.proc.returncode}:\n{tail}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"cloud service not healthy on {self.url} after {timeout:.0f} s")

    def request(self, path: str, body: Any = None, method: str | None = None) -> urllib.request.Request:
        """A request to the API carrying the admin token (JSON body when given)."""
        headers = {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)

    def get_json(self, path: str, timeout: float = 5.0) -> Any:
        with urllib.request.urlopen(self.request(path), timeout=timeout) as r:
            return json.load(r)

    def post_json(self, path: str, body: Any, timeout: float = 10.0) -> Any:
        with urllib.request.urlopen(self.request(path, body, "POST"), timeout=timeout) as r:
            return json.load(r)

    def get_status(self, path: str, timeout: float = 5.0) -> int:
        try:
            with urllib.request.urlopen(self.request(path), timeout=timeout) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rss_mb(self) -> float | None:
        return rss_mb(self.proc.pid) if self.proc is not None else None


def admin_token(config_path: Path, username: str = "fleet-admin") -> str:
    """An API token of an admin user in the cloud's database (the user made when missing),
    so local tools and tests can call the API like any script would."""
    import secrets as _secrets

    from cloud.auth.roles import Role
    from cloud.auth.users import UserStore
    from cloud.config import load_config
    from cloud.storage.sql import SqlStore

    cfg = load_config(config_path)
    sql = SqlStore(cfg.sql.url, password=cfg.sql.password_value())
    try:
        users = UserStore(sql.engine)
        if users.by_name(username) is None:
            users.add(
                username, _secrets.token_urlsafe(24), frozenset({Role.ADMIN}), display_name="Local tools"
            )
        return users.create_token(username, "local-tools")
    finally:
        sql.dispose()


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, from /proc (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
