"""``commune-iot demo`` as a newcomer runs it, with 3 agents to keep it quick: the banner's
commands work exactly as printed, however the demo ends nothing of it keeps running, a stop
is no outage, and a restart on the same port works at once.

The demo runs from the repository (as ``./dev.sh demo`` does) with its stdout a pipe we
hold, so a test can close that pipe the way a ``| tee`` stopped by the same Ctrl-C does.
"""

from __future__ import annotations

import base64
import contextlib
import http.cookiejar
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from commune_iot.fleet import admin_token
from commune_iot.localsvc import free_port

REPO = Path(__file__).resolve().parent.parent
#: The first three of the inventory: all in Da Ron, so an orderly stop judged as an outage
#: would make a commune alert (3 nodes down is the smallest commune outage).
DEVICES = 3
BANNER_END = "Ctrl-C stops everything."


class Demo:
    """One ``commune-iot demo`` process; stdout is a pipe whose read end the test owns."""

    def __init__(self, run_dir: Path, port: int, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.port = port
        self.stderr_path = log_dir / f"demo-{time.monotonic_ns()}.stderr"
        read_fd, write_fd = os.pipe()
        argv = [sys.executable, "-m", "commune_iot", "demo", "--devices", str(DEVICES), "--port", str(port)]
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, "--run-dir", str(run_dir)],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=err,
                env=dict(os.environ, **(env or {})),
            )
        os.close(write_fd)
        self.stdout_fd: int | None = read_fd
        self.output = ""

    def read_banner(self, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.stdout_fd is not None
        while BANNER_END not in self.output:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.stdout_fd], [], [], max(0.0, left))
            chunk = os.read(self.stdout_fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(
                    f"no banner (exit {self.proc.poll()}); stdout:\n{self.output}\nstderr:\n{self.stderr()}"
                )
            self.output += chunk.decode()
        return self.output

    def close_stdout(self) -> None:
        """What ``tee`` dying does to the demo's stdout."""
        if self.stdout_fd is not None:
            os.close(self.stdout_fd)
            self.stdout_fd = None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def processes(self) -> set[tuple[int, int]]:
        """The demo's descendants now, as (pid, start time) so a reused pid is not mistaken."""
        return _descendants(self.proc.pid)

    def stop(self) -> None:
        """After the test: nothing of it may stay on a shared machine, even when a test failed."""
        procs = self.processes()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.close_stdout()
        for pid in _survivors(procs, self.run_dir):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent, state, start time) of a process; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(root: int) -> set[tuple[int, int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[0], []).append(int(entry.name))
    out: set[tuple[int, int]] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        st = _stat(pid)
        if st is not None:
            out.add((pid, st[2]))
            todo += children.get(pid, [])
    return out


def _survivors(procs: set[tuple[int, int]], run_dir: Path) -> dict[int, str]:
    """Which of ``procs`` still run (a zombie has ended), and anything else running from
    ``run_dir``: pid -> command line."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (st := _stat(pid := int(entry.name))) is None or st[1] in "ZX":
            continue
        if (pid, st[2]) in procs or str(run_dir) in _cmdline(pid):
            out[pid] = _cmdline(pid)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def assert_nothing_survives(demo: Demo, procs: set[tuple[int, int]], since: float, within_s: float) -> None:
    deadline = since + within_s
    while (left := _survivors(procs, demo.run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"still running {within_s:.0f} s after the demo was told to stop: {list(left.values())}"


def banner_entries(banner: str) -> dict[str, str]:
    """``  Label          value`` lines of the banner, label -> value."""
    return {
        m["label"]: m["value"]
        for m in re.finditer(r"^  (?P<label>\S.{0,13}?) {2,}(?P<value>\S.*)$", banner, flags=re.M)
    }


def banner_logins(banner: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^ {6}(\S+) +(\S+) +\S.*$", banner, flags=re.M)}


def shell(command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A printed command, run the way a user pastes it: bash, in the directory of ``./dev.sh demo``."""
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def fetch(url: str, opener: urllib.request.OpenerDirector | None = None, **kw: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, **kw)
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=10) as r:
            body = r.read()
            status = int(r.status)
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), int(exc.code)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def eventually(probe: Callable[[], Any], ok: Callable[[Any], bool], what: str, within_s: float = 40) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {within_s:.0f} s")
        time.sleep(0.5)


def influx_query(cloud_config: Path, q: str) -> list[dict[str, Any]]:
    """InfluxQL against the demo's InfluxDB, with the cloud's own settings."""
    influx = yaml.safe_load(cloud_config.read_text())["influx"]
    password = Path(influx["password_file"]).read_text().strip()
    form = urllib.parse.urlencode({"db": influx["database"], "q": q}).encode()
    basic = base64.b64encode(f"{influx['username']}:{password}".encode()).decode()
    status, body = fetch(f"{influx['url']}/query", data=form, headers={"Authorization": f"Basic {basic}"})
    assert status == 200, body
    series: list[dict[str, Any]] = body["results"][0].get("series", [])
    return series


def all_online(devices: Any) -> bool:
    return isinstance(devices, list) and sum(d["status"] == "online" for d in devices) == DEVICES


def login(base: str, user: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = urllib.parse.urlencode({"username": user, "password": password, "next": "/"}).encode()
    status, _ = fetch(f"{base}/login", opener, data=form, method="POST")
    assert status == 200, f"login as {user}: {status}"
    return opener


@pytest.fixture
def demos(tmp_path: Path) -> Any:
    started: list[Demo] = []

    def start(port: int, env: dict[str, str] | None = None) -> Demo:
        demo = Demo(tmp_path / "run", port, tmp_path, env)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.stop()


def test_banner_commands_work_as_printed_and_kill_9_leaves_nothing_running(demos: Any) -> None:
    port = free_port()
    demo = demos(port)
    banner = demo.read_banner()
    entries = banner_entries(banner)
    base = f"http://127.0.0.1:{port}"

    # The token command, as printed, gives the technician's view of every device.
    devices = eventually(
        lambda: json.loads(shell(entries["With a token"]).stdout or "null"), all_online, "3 agents online"
    )
    assert {d["id"] for d in devices if d["status"] == "online"} == {"dr-ap-01", "dr-ap-02", "dr-ap-03"}

    # Every URL answers; the ones that need a login say how to get in, on the spot.
    for label in ("Devices", "Alerts"):
        status, body = fetch(entries[label].split()[0])
        assert status == 401 and "/login" in body["detail"] and "Bearer" in body["detail"], body
    status, ready = eventually(lambda: fetch(entries["Readiness"].split()[0]), lambda r: r[0] == 200, "ready")
    assert ready["ready"] is True and ready["dependencies"] == {"mqtt": "ok", "influxdb": "ok"}, ready
    assert fetch(entries["Metrics"].split()[0])[0] == 401  # counters are for technicians (below)
    assert fetch(entries["API docs"].split()[0])[0] == 200
    status, page = fetch(entries["Web UI"].split()[0])
    assert status == 200 and 'name="password"' in page  # the login page

    # The roles see what the banner says: police not the devices (and told who may), a technician does.
    logins = banner_logins(banner)
    assert set(logins) == {"admin", "ca-daron", "ca-tutra", "mic", "kythuat"}
    status, body = fetch(f"{base}/api/v1/devices", login(base, "ca-daron", logins["ca-daron"]))
    assert status == 403 and "technician" in body["detail"], body
    technician = login(base, "kythuat", logins["kythuat"])
    status, body = fetch(f"{base}/api/v1/devices", technician)
    assert status == 200 and len(body) == 59
    assert fetch(entries["Metrics"].split()[0], technician)[0] == 200

    # The raw MQTT traffic, as printed (it runs until stopped: read one message, then stop it).
    sub = subprocess.Popen(
        ["bash", "-c", entries["MQTT traffic"]],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert sub.stdout is not None
        ready_r, _, _ = select.select([sub.stdout], [], [], 30)
        assert ready_r, "mosquitto_sub printed nothing in 30 s"
        assert sub.stdout.readline().startswith("ciot/v1/da-ron/dr-ap-0")
    finally:
        os.killpg(sub.pid, signal.SIGTERM)
        sub.wait(10)

    # The time series, as printed: heartbeats counted per commune.
    influx = eventually(
        lambda: shell(entries["Time series"]), lambda r: r.stdout or r.returncode, "heartbeats"
    )
    assert influx.returncode == 0, influx.stderr
    assert "tags: commune=da-ron" in influx.stdout and "heartbeats" in influx.stdout, influx.stdout

    # kill -9 of the demo: its children follow (the kernel tells them; nothing stays orphaned).
    procs = demo.processes()
    assert len(procs) >= 3 + DEVICES, "broker, database, cloud and the agents run under the demo"
    demo.proc.kill()
    killed = time.monotonic()
    demo.proc.wait(10)
    assert_nothing_survives(demo, procs, killed, within_s=10)
    print(f"everything gone {time.monotonic() - killed:.1f} s after kill -9")


def _close_like_a_browser(port: int) -> None:
    """A request the server closes first: its side of the connection then waits in TIME-WAIT
    (60 s) on the port, as after any visit to the demo's pages."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass


def _time_wait_on(port: int) -> bool:
    """A connection the server closed first waits in TIME-WAIT on the server's port."""
    want = f":{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if local.endswith(want) and state == "06":
            return True
    return False


def test_stop_with_closed_stdout_is_orderly_opens_no_alert_and_restarts_on_the_same_port(demos: Any) -> None:
    """Ctrl-C while ``| tee`` died; then at once the same command again.

    In the first run alerting judges from the start and opens at once (no settling after
    connecting, grace 0, a judgement every 0.1 s), so that any judging of the agents'
    orderly stop would leave an alert behind even with 3 agents that stop within a second
    (with the 59 of the real demo and the defaults, it left 3 commune alerts).
    """
    port = free_port()
    fast = {
        "CIOT_CLOUD_ALERTING__SETTLE_S": "0",
        "CIOT_CLOUD_ALERTING__GRACE_S": "0",
        "CIOT_CLOUD_ALERTING__TICK_S": "0.1",
    }
    first = demos(port, fast)
    first.read_banner()
    cloud_config = first.run_dir / "cloud.yaml"
    auth = {"Authorization": f"Bearer {admin_token(cloud_config)}"}
    base = f"http://127.0.0.1:{port}"
    eventually(lambda: fetch(f"{base}/api/v1/devices", headers=auth)[1], all_online, "3 agents online")

    _close_like_a_browser(port)
    procs = first.processes()
    first.close_stdout()
    first.proc.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    assert first.proc.wait(30) == 0, first.stderr()
    assert "Traceback" not in first.stderr(), first.stderr()
    assert "stopped; data kept in" in first.stderr()  # said on stderr, since stdout was gone
    assert_nothing_survives(first, procs, stopped, within_s=10)
    print(f"orderly stop with a closed stdout took {time.monotonic() - stopped:.1f} s")

    assert _time_wait_on(port), "the test needs the port in TIME-WAIT, as a stop leaves it"
    second = demos(port)
    second.read_banner()  # not "port in use"
    auth = {"Authorization": f"Bearer {admin_token(cloud_config)}"}
    eventually(lambda: fetch(f"{base}/api/v1/devices", headers=auth)[1], all_online, "3 agents back")
    status, alerts = fetch(f"{base}/api/v1/alerts", headers=auth)
    assert status == 200 and alerts == [], "an orderly stop opened alerts"
    # ... and lost nothing: the agents' orderly 'offline', sent after the cloud had stopped,
    # waited in the broker and is in the status history now.
    q = "SELECT count(online) FROM status WHERE reason = 'shutdown' GROUP BY node"
    shutdowns = eventually(lambda: influx_query(cloud_config, q), lambda s: len(s) == DEVICES, "offlines")
    assert {s["tags"]["node"] for s in shutdowns} == {"dr-ap-01", "dr-ap-02", "dr-ap-03"}

    procs = second.processes()
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(30) == 0, second.stderr()
    assert_nothing_survives(second, procs, time.monotonic(), within_s=10)
    assert "Traceback" not in second.stderr()
