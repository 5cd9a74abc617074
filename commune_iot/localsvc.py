"""Start real Mosquitto, InfluxDB and PostgreSQL servers from the system's binaries, on loopback.

Used by ``commune-iot demo``, the benchmarks and the test-suite, so that all three run
the same broker and database configuration. Each server gets its own config and data
under a run directory and a free port; nothing touches the system's own instances.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from commune_iot import __version__

REPO = Path(__file__).resolve().parent.parent


class ServiceError(RuntimeError):
    """A local server could not be started; the text says what to install or look at."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when we die, however we die.

    The kernel ties this to the *thread* that forked, not the process, so it is set only
    for children started by the main thread (a worker thread ending would stop its
    children). Between fork and ``prctl`` the parent may already be gone: then the child
    exits instead of running unwatched.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _with_nofile(preexec: Callable[[], None] | None, nofile: int) -> Callable[[], None]:
    """``preexec`` preceded by raising the open-file limit to ``nofile`` (root may raise the hard
    limit too): a broker serving thousands of boards needs a descriptor per connection."""

    def run() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < nofile and os.geteuid() == 0:
            hard = nofile
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))
        if preexec is not None:
            preexec()

    return run


def spawn(
    argv: list[str], log_path: Path, *, env: dict[str, str] | None = None, nofile: int | None = None
) -> subprocess.Popen[bytes]:
    """Start a local server or agent: output to its log, its own session (a terminal's Ctrl-C
    reaches only us, and we stop our children in order), and a SIGTERM from the kernel when
    we die without stopping it (``kill -9``, a crash), so nothing of ours runs on unowned.
    ``nofile`` raises its open-file limit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec = _die_with_parent()
    if nofile is not None:
        preexec = _with_nofile(preexec, nofile)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            preexec_fn=preexec,
        )


def _need(binary: str, package: str) -> str:
    sbin = Path("/usr/sbin") / binary  # not on a non-root user's PATH on Debian
    found = shutil.which(binary) or (str(sbin) if sbin.exists() else None)
    if not found:
        raise ServiceError(f"{binary} not found: install it with: apt-get install {package}")
    return found


@dataclass
class _Server:
    name: str
    run_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None, nofile: int | None = None) -> None:
        self.proc = spawn(argv, self.log_path, env=env, nofile=nofile)

    def _ready(self) -> bool:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}; log:\n{tail}")
            if self._ready():
                return
            time.sleep(0.05)
        raise ServiceError(f"{self.name} not ready on 127.0.0.1:{self.port} after {timeout:.0f} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Orderly stop (SIGTERM), as an operator's restart would."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Abrupt stop (SIGKILL), as a crash or power cut would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """Freeze the process: connections stay open but nothing answers (a wedged server)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)


MOSQUITTO_CONF = """\
# Written by commune-iot localsvc for a local run; production config: firmware_config/mosquitto/
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data}/
autosave_interval 30
log_dest file {log}
{user_line}log_type error
log_type warning
log_type notice
log_type information
connection_messages true
# Queue limits are set deliberately: Mosquitto's default max_queued_messages (1000)
# silently drops QoS-1 messages for a subscriber that falls behind or restarts.
max_queued_messages 1000000
max_queued_bytes 1073741824
# In-flight window towards each subscriber; the ingest worker asks for its own
# window with the MQTT v5 Receive Maximum, which Mosquitto honours up to this limit.
max_inflight_messages 0
# Packets above this are refused by the broker; JSON payloads are capped at 64 KiB by
# the contract, so anything between is seen (and dead-lettered) by the cloud.
max_packet_size 1048576
persistent_client_expiration 7d
"""


class Mosquitto(_Server):
    def __init__(self, run_dir: Path, port: int | None = None, *, max_clients: int | None = None) -> None:
        super().__init__("mosquitto", run_dir, port or free_port())
        self.binary = _need("mosquitto", "mosquitto")
        #: expected connections: its open-file limit is raised to fit them (the default 1,024
        #: or 20,000 would refuse boards beyond it)
        self.max_clients = max_clients

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.run_dir / "mosquitto.conf"

    def start(self) -> Mosquitto:
        data = self.run_dir / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        # As root Mosquitto drops to user 'mosquitto', which cannot write our run dir.
        user_line = "user root\n" if os.geteuid() == 0 else ""
        self.conf_path.write_text(
            MOSQUITTO_CONF.format(port=self.port, data=data, user_line=user_line, log=self.log_path)
        )
        nofile = self.max_clients + 1024 if self.max_clients else None
        self._spawn([self.binary, "-c", str(self.conf_path)], nofile=nofile)
        self.wait_ready()
        return self

    def _ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
            return True
        return False


#: Mosquitto started as root drops to this user before it opens any file but its config
#: (Debian's package creates it; the compose image's ``mosquitto`` is uid/gid 1883).
BROKER_USER = "mosquitto"


def broker_account() -> pwd.struct_passwd | None:
    """Who a broker started by this process runs as: ``mosquitto`` for root, else us (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(BROKER_USER)
    except KeyError:
        raise ServiceError(f"no user {BROKER_USER!r}: install it with: apt-get install mosquitto") from None


@contextlib.contextmanager
def broker_home(prefix: str = "ciot-broker-") -> Iterator[Path]:
    """A fresh directory the broker's own user can reach, removed afterwards (pytest's and
    other private temporary directories are 0700 under root: the broker could open nothing)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        home.chmod(0o711)  # others may pass through, not list
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


class SecureMosquitto(Mosquitto):
    """The hardened broker as shipped (firmware_config/mosquitto/mosquitto-secure.conf) and
    run as production runs it: started as root, Mosquitto drops to user ``mosquitto``, as
    Debian's package and the compose image do, and reads its auth directory as that user.
    Only the container paths, the ports and the log destination are rewritten.

    ``home`` must be reachable by that user (``broker_home``). ``auth`` is laid out the way
    the README has the operator make it (``install -d -o "$USER" -g 1883 -m 2750``): the
    operator's, the broker's group, set-group-ID so new files get that group.
    """

    SHIPPED = REPO / "firmware_config" / "mosquitto" / "mosquitto-secure.conf"

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.tls_port = free_port()
        self.auth = home / "auth"
        self.bundles = home / "bundles"
        self.data = home / "data"
        self.auth.mkdir(exist_ok=True)
        account = broker_account()
        if account is not None:
            os.chown(self.auth, -1, account.pw_gid)
        self.auth.chmod(0o2750)

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    @property
    def log_path(self) -> Path:
        return self.data / "mosquitto.log"  # written by the broker's user, line by line

    WATCHER = REPO / "firmware_config" / "mosquitto" / "reload-watcher.sh"

    def start(self, *, reload_files: tuple[Path, Path] | None = None) -> SecureMosquitto:
        """Start it; with ``reload_files`` (request, acknowledgement) under the reload watcher,
        as compose runs it: ``proc`` is then the watcher, the broker its child."""
        self.data.mkdir(exist_ok=True)
        self.log_path.touch()
        account = broker_account()
        if account is not None:
            for path in (self.data, self.log_path):
                os.chown(path, account.pw_uid, account.pw_gid)
        conf = self.SHIPPED.read_text(encoding="utf-8")
        conf = conf.replace("/mosquitto/config/auth", str(self.auth))
        conf = conf.replace("/mosquitto/data/", f"{self.data}/")
        conf = re.sub(r"^log_dest stdout$", f"log_dest file {self.log_path}", conf, flags=re.M)
        conf = re.sub(r"^listener 8883$", f"listener {self.tls_port} 127.0.0.1", conf, flags=re.M)
        conf = re.sub(r"^listener 1883$", f"listener {self.port} 127.0.0.1", conf, flags=re.M)
        self.conf_path.write_text(conf, encoding="utf-8")  # read before the broker drops root
        argv = [self.binary, "-c", str(self.conf_path)]
        if reload_files is not None:
            argv = ["sh", str(self.WATCHER), str(reload_files[0]), str(reload_files[1]), "--", *argv]
        self._spawn(argv)
        self.wait_ready()
        return self

    def kill(self) -> None:
        """SIGKILL to its process group: the broker too when the watcher runs it."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session (spawn): group = pid
            self.proc.wait(10)

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads passwd, acl and its TLS files again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def connections(self, client_id: str) -> int:
        """How many times ``client_id`` was let in (its first connection and every reconnect)."""
        return len(re.findall(rf"New client connected from \S+ as {re.escape(client_id)} \(", self.log()))


INFLUXDB_CONF = """\
# Written by commune-iot localsvc for a local run.
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data}/meta"

[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
  cache-max-memory-size = "256m"
{data_extra}
[coordinator]
  log-queries-after = "0s"

[retention]
  enabled = true

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  log-enabled = false
  max-body-size = 25000000

[continuous_queries]
  enabled = true
  log-enabled = false

[logging]
  level = "warn"
"""


class InfluxDB(_Server):
    """InfluxDB 1.x (Debian's ``influxdb``), serving the v1 HTTP API the cloud uses."""

    def __init__(
        self,
        run_dir: Path,
        port: int | None = None,
        *,
        username: str = "",
        password: str = "",
        compact_soon: bool = False,
    ) -> None:
        super().__init__("influxd", run_dir, port or free_port())
        self.binary = _need("influxd", "influxdb")
        self.rpc_port = free_port()
        self.username = username
        self.password = password
        #: compact seconds after writes stop (not 10 min / 4 h), to measure what data costs on disk
        self.compact_soon = compact_soon

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InfluxDB:
        data = self.run_dir / "influxdb-data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "influxdb.conf"
        auth = "true" if self.username else "false"
        extra = (
            '  cache-snapshot-write-cold-duration = "1s"\n  compact-full-write-cold-duration = "3s"\n'
            if self.compact_soon
            else ""
        )
        conf.write_text(
            INFLUXDB_CONF.format(
                port=self.port, rpc_port=self.rpc_port, data=data, auth=auth, data_extra=extra
            )
        )
        env = dict(os.environ, INFLUXDB_DATA_QUERY_LOG_ENABLED="false")
        self._spawn([self.binary, "-config", str(conf)], env)
        self.wait_ready()
        if self.username:
            self._create_admin()
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as r:
                return bool(r.status == 204)
        except (OSError, urllib.error.URLError):
            return False

    def _create_admin(self) -> None:
        # With auth on and no users yet, InfluxDB 1.x accepts exactly this one statement.
        q = f"CREATE USER \"{self.username}\" WITH PASSWORD '{self.password}' WITH ALL PRIVILEGES"
        body = urllib.parse.urlencode({"q": q}).encode()
        req = urllib.request.Request(f"{self.url}/query", data=body, method="POST")
        try:
            urllib.request.urlopen(req, timeout=5).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 401:  # 401: admin already exists from an earlier run of this data dir
                raise


POSTGRES_BIN = Path("/usr/lib/postgresql")


def _postgres_bin(binary: str) -> str:
    """Debian keeps the server's programs off PATH, under /usr/lib/postgresql/<major>/bin."""
    found = sorted(POSTGRES_BIN.glob(f"*/bin/{binary}"), key=lambda p: int(p.parts[-3]), reverse=True)
    if found:
        return str(found[0])
    return _need(binary, "postgresql")


class PostgreSQL(_Server):
    """A throw-away PostgreSQL cluster of its own (``initdb`` + ``postgres``) for tests and benches.

    TCP on loopback only (no Unix socket), password authentication, ``C`` collation (so
    text sorts as in SQLite) and ``fsync=off``: it is fast and lost with its data dir, never
    a production server. The server refuses to run as root, so as root it runs as the
    ``postgres`` user with its data dir in a fresh directory of its own under the system's
    temporary directory (the caller's run dir is private to root), removed by :meth:`stop`.
    """

    def __init__(
        self, run_dir: Path, port: int | None = None, *, username: str = "ciot", password: str = "ciot"
    ) -> None:
        super().__init__("postgres", run_dir, port or free_port())
        self.binary = _postgres_bin("postgres")
        self.initdb = _postgres_bin("initdb")
        self.username = username
        self.password = password
        self._as: pwd.struct_passwd | None = None
        self._own_dir: Path | None = None  # the data dir's parent when it lives outside run_dir

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.username}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgreSQL:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                self._as = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceError(
                    "no 'postgres' user: install it with: apt-get install postgresql"
                ) from None
            self._own_dir = Path(tempfile.mkdtemp(prefix="ciot-postgres-"))
            os.chown(self._own_dir, self._as.pw_uid, self._as.pw_gid)
            base = self._own_dir
        else:
            base = self.run_dir
        data = base / "data"
        if not (data / "PG_VERSION").exists():
            pwfile = base / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self._as is not None:
                os.chown(pwfile, self._as.pw_uid, self._as.pw_gid)
            argv = [self.initdb, "-D", str(data), "-U", self.username, f"--pwfile={pwfile}"]
            argv += ["--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync"]
            done = subprocess.run(argv, capture_output=True, text=True, user=self._uid, group=self._gid)
            pwfile.unlink()
            if done.returncode != 0:
                raise ServiceError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "max_connections": "300",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        argv = [self.binary, "-D", str(data), "-p", str(self.port)]
        for k, v in settings.items():
            argv += ["-c", f"{k}={v}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=base,
                user=self._uid,
                group=self._gid,
            )
        self.wait_ready()
        return self

    @property
    def _uid(self) -> int | None:
        return None if self._as is None else self._as.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._as is None else self._as.pw_gid

    def _ready(self) -> bool:
        with contextlib.suppress(OSError):
            return "ready to accept connections" in self.log_path.read_text(errors="replace")
        return False

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}: lower-case letters, digits and _ only")
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending its sessions (a test's engines left open)."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str, database: str = "postgres") -> None:
        """One statement outside a transaction, as the cluster's superuser."""
        import psycopg  # the ``postgres`` extra

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.username,
            password=self.password,
            dbname=database,
            autocommit=True,
        ) as conn:
            conn.execute(sql.encode())

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT: ends sessions; SIGTERM would wait for every client to leave)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._remove_own_dir()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the postmaster and its backends
            self.proc.wait(10)
        self._remove_own_dir()

    def _remove_own_dir(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None


@dataclass
class LocalStack:
    """A broker and a database for one demo, benchmark or test session."""

    run_dir: Path
    mosquitto: Mosquitto
    influx: InfluxDB

    def stop(self) -> None:
        self.mosquitto.stop()
        self.influx.stop()


@contextlib.contextmanager
def local_stack(
    run_dir: Path,
    *,
    mqtt_port: int | None = None,
    influx_port: int | None = None,
    influx_user: str = "",
    influx_password: str = "",
) -> Iterator[LocalStack]:
    run_dir.mkdir(parents=True, exist_ok=True)
    mosq = Mosquitto(run_dir, mqtt_port)
    influx = InfluxDB(run_dir, influx_port, username=influx_user, password=influx_password)
    try:
        mosq.start()
        influx.start()
        yield LocalStack(run_dir, mosq, influx)
    finally:
        mosq.stop()
        influx.stop()


def user_agent() -> str:
    return f"commune-iot/{__version__}"
