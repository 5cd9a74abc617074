"""``commune-iot demo``: the whole system on one machine.

Real Mosquitto and InfluxDB from the system's binaries, the cloud service, and one
simulated edge agent process per inventory device (59), all on loopback. Data and logs
stay under the run directory, so a second run continues where the first stopped.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import signal
import socket
import time
from pathlib import Path
from types import FrameType

from commune_iot import logs
from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config, edge_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, ServiceError

log = logging.getLogger("commune_iot.demo")

INFLUX_USER = "ciot"
INFLUX_DB = "ciot"


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _password(path: Path) -> str:
    """A random InfluxDB password kept in the run dir (never in the repository)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(18)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


#: Web UI users of the demo: (name, roles, communes, display name).
DEMO_USERS = (
    ("admin", "admin", "", "Quản trị hệ thống"),
    ("ca-daron", "police", "da-ron", "Công an xã Đạ Ròn"),
    ("ca-tutra", "police", "tu-tra", "Công an xã Tu Tra"),
    ("mic", "mic", "", "Sở TT&TT Lâm Đồng"),
    ("kythuat", "technician", "", "Kỹ thuật viên"),
)


def _demo_users(config_path: Path, secrets_file: Path) -> list[tuple[str, str]]:
    """Web UI users with random passwords kept in the run dir (0600); kept across runs."""
    from cloud.auth.roles import parse_roles
    from cloud.auth.users import UserStore
    from cloud.config import load_config
    from cloud.storage.sql import SqlStore

    known: dict[str, str] = {}
    if secrets_file.exists():
        for line in secrets_file.read_text().splitlines():
            name, _, pw = line.partition(" ")
            known[name] = pw
    cfg = load_config(config_path)
    sql = SqlStore(cfg.sql.url)
    try:
        users = UserStore(sql.engine)
        for name, roles, communes, display in DEMO_USERS:
            if users.by_name(name) is None:
                known[name] = secrets.token_urlsafe(9)
                users.add(
                    name,
                    known[name],
                    parse_roles(roles),
                    communes=frozenset(c for c in communes.split(",") if c),
                    display_name=display,
                )
    finally:
        sql.dispose()
    secrets_file.write_text("".join(f"{n} {pw}\n" for n, pw in known.items()))
    secrets_file.chmod(0o600)
    return [(n, known.get(n, "(unchanged)")) for n, *_ in DEMO_USERS]


def _summary(cloud: CloudProcess, agents: list[AgentProcess]) -> str:
    try:
        devices = cloud.get_json("/api/v1/devices")
    except OSError as exc:
        return f"cloud API not answering ({exc})"
    items = devices["devices"] if isinstance(devices, dict) else devices
    by_status: dict[str, int] = {}
    for d in items:
        by_status[d["status"]] = by_status.get(d["status"], 0) + 1
    running = sum(a.running for a in agents)
    rss = cloud.rss_mb()
    parts = [f"{k} {v}" for k, v in sorted(by_status.items())]
    return f"devices: {', '.join(parts)} | agent processes running {running}/{len(agents)}" + (
        f" | cloud RSS {rss:.0f} MB" if rss else ""
    )


def run_demo(
    *, run_dir: Path, port: int, devices: int | None = None, fresh: bool = False, sql_url: str | None = None
) -> int:
    """``sql_url``: the cloud's database (default: a SQLite file in the run dir)."""
    logs.setup()
    run_dir = run_dir.resolve()
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if not _port_free(port):
        log.error("port %d is in use on 127.0.0.1; choose another with --port", port)
        return 2
    inventory = load_devices()
    chosen = inventory[:devices] if devices else inventory
    password_file = run_dir / "secrets" / "influx.password"
    password = _password(password_file)

    signal.signal(signal.SIGTERM, _raise_stop)
    mosq = Mosquitto(run_dir / "mosquitto")
    influx = InfluxDB(run_dir / "influxdb", username=INFLUX_USER, password=password)
    cloud: CloudProcess | None = None
    agents: list[AgentProcess] = []
    try:
        log.info("starting Mosquitto and InfluxDB from the system's binaries")
        mosq.start()
        influx.start()
        cloud = CloudProcess.write(
            run_dir,
            cloud_config(
                mqtt_url=mosq.url,
                influx_url=influx.url,
                influx_db=INFLUX_DB,
                influx_user=INFLUX_USER,
                influx_password_file=password_file,
                state_dir=run_dir / "cloud",
                http_port=port,
                sql_url=sql_url,
            ),
        )
        logins = _demo_users(cloud.config_path, run_dir / "secrets" / "web-users.txt")
        log.info("starting the cloud service on http://127.0.0.1:%d", port)
        cloud.start(wait=60)
        log.info("starting %d simulated edge agents", len(chosen))
        for dev in chosen:
            cfg = edge_config(dev, mosq.url, run_dir / "agents" / dev["node"])
            agents.append(AgentProcess.write(run_dir, cfg).start())
            time.sleep(0.05)  # spread the 59 interpreter start-ups a little
        print(
            f"""
commune-iot demo is running ({len(chosen)} agents: cameras and access points of Da Ron, Tu Tra, Lac Xuan)

  Web UI                   http://127.0.0.1:{port}/  (event log, reports) log in as:
{chr(10).join(f"      {n:<10} {pw}" for n, pw in logins)}
                           (also in {run_dir}/secrets/web-users.txt)
  Devices and live status  http://127.0.0.1:{port}/api/v1/devices  (needs a login or API token:
                           commune-iot users --config {cloud.config_path} token admin)
  API documentation        http://127.0.0.1:{port}/docs
  Ingest metrics           http://127.0.0.1:{port}/metrics
  Readiness                http://127.0.0.1:{port}/readyz
  Raw MQTT traffic         mosquitto_sub -p {mosq.port} -v -t 'ciot/v1/#'
  Time series (InfluxQL)   influx -port {influx.port} -database {INFLUX_DB} -username {INFLUX_USER} \\
                             -password "$(cat {password_file})" -execute 'SELECT count(*) FROM health'
  Logs                     {run_dir}/cloud.log, {run_dir}/agents/<node>/agent.log

Ctrl-C stops everything.
""",
            flush=True,
        )
        while True:
            time.sleep(10)
            print(time.strftime("%H:%M:%S"), _summary(cloud, agents), flush=True)
    except (KeyboardInterrupt, _Stop):
        print("\nstopping: agents first (they publish an orderly 'offline'), then cloud, broker, database")
    except ServiceError as exc:
        log.error("%s", exc)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.wait(15)
        if cloud is not None:
            cloud.stop()
        with contextlib.suppress(Exception):
            mosq.stop()
        with contextlib.suppress(Exception):
            influx.stop()
    print(f"stopped; data kept in {run_dir} (use --fresh to start empty)")
    return 0
