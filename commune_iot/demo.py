"""``commune-iot demo``: the whole system on one machine.

Real Mosquitto and InfluxDB from the system's binaries, the cloud service, and one
simulated edge agent process per inventory device (59), all on loopback. Data and logs
stay under the run directory, so a second run continues where the first stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config, edge_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, ServiceError
from wire import logs

log = logging.getLogger("commune_iot.demo")

INFLUX_USER = "ciot"
INFLUX_DB = "ciot"


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _port_free(port: int) -> bool:
    """Free for the cloud to listen on. Bound as uvicorn binds (SO_REUSEADDR), so the
    TIME-WAIT connections of a run that just stopped do not count; a listener does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


#: Web UI users of the demo: (name, roles, communes, display name, what the role sees).
DEMO_USERS = (
    ("admin", "admin", "", "Quản trị hệ thống", "everything, the audit trail"),
    ("ca-daron", "police", "da-ron", "Công an xã Đạ Ròn", "police: motion events of Da Ron"),
    ("ca-tutra", "police", "tu-tra", "Công an xã Tu Tra", "police: motion events of Tu Tra"),
    ("mic", "mic", "", "Sở TT&TT Lâm Đồng", "Wi-Fi reports"),
    ("kythuat", "technician", "", "Kỹ thuật viên", "the console: devices, alerts, maintenance, boards"),
)


def _demo_users(config_path: Path, secrets_file: Path) -> list[tuple[str, str, str]]:
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
        for name, roles, communes, display, _ in DEMO_USERS:
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
    return [(n, known.get(n, "(unchanged)"), sees) for n, *_, sees in DEMO_USERS]


class _Console:
    """The demo's own output. A closed pipe (``demo | tee log`` and the Ctrl-C that also
    stopped tee) or a hung-up terminal must not end the demo halfway through stopping its
    children: output then moves to stderr, and when that is gone too, nowhere."""

    def __init__(self) -> None:
        self.streams: list[TextIO] = [sys.stdout, sys.stderr]

    def say(self, text: str) -> None:
        while self.streams:
            stream = self.streams[0]
            try:
                print(text, file=stream, flush=True)
                return
            except (OSError, ValueError):
                self.streams.pop(0)
                with contextlib.suppress(OSError, ValueError):  # so the exit-time flush fails neither
                    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _cli() -> str:
    """``commune-iot`` as the user's shell finds it: the virtualenv is not on its PATH."""
    script = Path(sys.executable).parent / "commune-iot"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m commune_iot"
    with contextlib.suppress(ValueError):
        return shlex.quote(str(script.relative_to(Path.cwd())))
    return shlex.quote(str(script))


def banner(
    *,
    agents: int,
    port: int,
    mqtt_port: int,
    influx_port: int,
    run_dir: Path,
    cloud_config_path: Path,
    password_file: Path,
    logins: list[tuple[str, str, str]],
) -> str:
    """Where to look. Every command in it works as printed from the directory the demo was
    started in (``tests/test_demo.py`` runs them)."""
    url = f"http://127.0.0.1:{port}"
    q = shlex.quote
    token = f"$({_cli()} users --config {q(str(cloud_config_path))} token kythuat)"
    influx = (
        f"influx -host 127.0.0.1 -port {influx_port} -username {INFLUX_USER}"
        f' -password "$(cat {q(str(password_file))})" -database {INFLUX_DB}'
        " -execute 'SELECT count(seq) AS heartbeats FROM health GROUP BY commune'"
    )
    users = "\n".join(f"      {n:<10} {pw:<14} {sees}" for n, pw, sees in logins)
    return f"""
commune-iot demo is running ({agents} agents: cameras and access points of Da Ron, Tu Tra, Lac Xuan)

  Web UI         {url}/  log in as (passwords also in {q(str(run_dir / "secrets" / "web-users.txt"))}):
{users}
  Console        {url}/fleet  (technician or admin: every device, live; guide: {url}/help)
  Devices        {url}/api/v1/devices  (technician or admin: log in above first, or send a token)
  Alerts         {url}/api/v1/alerts
  With a token   curl -sS -H "Authorization: Bearer {token}" {url}/api/v1/devices
  API docs       {url}/docs
  Readiness      {url}/readyz  (no login)
  Metrics        {url}/metrics  (log in as admin or kythuat, or send the token as above)
  MQTT traffic   mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -v -t 'ciot/v1/#'
  Time series    {influx}
  Logs           {q(str(run_dir / "cloud.log"))}, {q(str(run_dir / "agents"))}/<node>/agent.log

Ctrl-C stops everything.
"""


def _summary(cloud: CloudProcess, agents: list[AgentProcess]) -> str:
    """The alerter's judgement (as /api/v1/communes/summary gives it), not raw presence: a frozen
    board is down here as soon as its silence is judged, long before the broker drops it."""
    try:
        communes = cloud.get_json("/api/v1/communes/summary")
    except OSError as exc:
        return f"cloud API not answering ({exc})"
    states = ("up", "down", "unknown")
    parts = [
        f"{label}: " + ", ".join(f"{s} {sum(c[f'{what}_{s}'] for c in communes)}" for s in states)
        for label, what in (("boards", "nodes"), ("devices", "devices"))
    ]
    running = sum(a.running for a in agents)
    rss = cloud.rss_mb()
    return f"{' | '.join(parts)} | agent processes running {running}/{len(agents)}" + (
        f" | cloud RSS {rss:.0f} MB" if rss else ""
    )


def run_demo(
    *, run_dir: Path, port: int, devices: int | None = None, fresh: bool = False, sql_url: str | None = None
) -> int:
    """``sql_url``: the cloud's database (default: a SQLite file in the run dir)."""
    logs.setup()
    out = _Console()
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

    # Ctrl-C even when started where SIGINT is ignored (a background job of a script);
    # a closed terminal (SIGHUP) or SIGTERM stop it the same orderly way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
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
        out.say(
            banner(
                agents=len(chosen),
                port=port,
                mqtt_port=mosq.port,
                influx_port=influx.port,
                run_dir=run_dir,
                cloud_config_path=cloud.config_path,
                password_file=password_file,
                logins=logins,
            )
        )
        while True:
            time.sleep(10)
            out.say(f"{time.strftime('%H:%M:%S')} {_summary(cloud, agents)}")
    except (KeyboardInterrupt, _Stop):
        out.say("\nstopping: the cloud first (an orderly stop of the fleet is no outage to judge), then the")
        out.say("agents (their orderly 'offline' waits in the broker for the next run), broker, database")
    except ServiceError as exc:
        log.error("%s", exc)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans
        if cloud is not None:
            cloud.stop()
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.wait(15)
        with contextlib.suppress(Exception):
            mosq.stop()
        with contextlib.suppress(Exception):
            influx.stop()
    out.say(f"stopped; data kept in {run_dir} (use --fresh to start empty)")
    return 0
