"""``commune-iot bench link``: an AP board and a camera board on a bad 3G link, measured.

Each board's agent runs in a network namespace of its own behind a veth pair, TLS on, with
``tc tbf`` shaping 384 kbit/s up and 1 Mbit/s down (this kernel has no netem). Between the
veth and the broker sits :class:`FieldRelay`, a TCP relay in this process that adds what tbf
cannot: a total stall of ``stall_s`` every ``stall_every_s`` (bytes held, then released), a
carrier NAT that silently blackholes a flow idle for ``nat_idle_s``, and reconnects whose
first bytes take 5-20 s to pass. A QoS-1 subscriber on the broker's loopback listener
records what arrives.

Figures: delivered ratio and duplicates (by node, session and seq), bytes per day per board
from the namespace interface's counters (IP, TCP and TLS included), snapshot delivery p95
(event stamp to snapshot arrival), outages the cloud would raise (its silence and Will rules,
``cloud.alerting.settings`` defaults) and how many of them no stall explains, and the AP
agent's disk writes per day from ``/proc/<pid>/io``, its RSS and CPU seconds per hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from commune_iot.fleet import edge_config, load_devices
from commune_iot.localsvc import REPO, Mosquitto, free_port
from wire.compression import unpack
from wire.messages import MAX_JSON_BYTES

#: The profiles measured before (docs/field.md); "shipped" (the default) reads edge/sample.yaml.
PROFILES: dict[str, dict[str, float]] = {
    # the agent's defaults as shipped: each message committed to the card on its own
    "default": {"health_interval_s": 10.0, "keepalive_s": 10, "sim_interval_s": 30.0, "commit_interval_s": 0},
    # the defaults plus what edge/sample.yaml ships for SD-card boards: commits grouped per 2 minutes
    "field": {"health_interval_s": 10.0, "keepalive_s": 10, "sim_interval_s": 30.0, "commit_interval_s": 120},
    # "3G saver": heartbeat a minute, keepalive 30 s (outage alert after about 48 s, not 18 s)
    "saver": {
        "health_interval_s": 60.0,
        "keepalive_s": 30,
        "sim_interval_s": 300.0,
        "commit_interval_s": 120,
    },
}


def shipped_profile() -> dict[str, float]:
    """What a deployed board gets: edge/sample.yaml (health, keepalive, AP readings, commits)
    and the camera sample's stream-health interval (the provisioning bundles carry the same)."""
    sample = yaml.safe_load((REPO / "edge" / "sample.yaml").read_text(encoding="utf-8"))
    camera = yaml.safe_load((REPO / "edge" / "collectors" / "camera" / "sample.yaml").read_text())[0]
    return {
        "health_interval_s": float(sample["health_interval_s"]),
        "keepalive_s": int(sample["broker"]["keepalive_s"]),
        "check_link_s": float(sample["broker"].get("check_link_s") or 0),
        "compress": float(bool(sample["broker"].get("compress"))),
        "sim_interval_s": float(sample["collectors"][0]["interval_s"]),
        "camera_interval_s": float(camera["interval_s"]),
        "commit_interval_s": float(sample["outbox"]["commit_interval_s"]),
    }


def profile_settings(profile: str) -> dict[str, float]:
    return shipped_profile() if profile == "shipped" else PROFILES[profile]


PROFILE_NAMES = ["shipped", *PROFILES]
#: Bytes of Ethernet header per packet on the veth (not on a 3G modem's link).
ETHERNET_HEADER = 14
#: Motion events per hour at the evening peak on the camera board (sim_camera's default is 6;
#: more here so a 30-minute run has enough snapshots for a p95).
EVENTS_PER_HOUR = 60.0
#: Connect timeout for boards on 3G (docs/field.md); the shipped 10 s suits a wired uplink.
CONNECT_TIMEOUT_S = 30.0
#: The cloud's outage rules (cloud/alerting/settings.py defaults): silence, floor, grace.
SILENCE_FACTOR, SILENCE_FLOOR_S, GRACE_S = 1.5, 12.0, 3.0


def _say(msg: str) -> None:
    print(msg, flush=True)


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


# -- the broker, with TLS ------------------------------------------------------------------


class TlsMosquitto(Mosquitto):
    """The local broker plus a TLS listener (a certificate made for ``tls_hosts``)."""

    def __init__(self, run_dir: Path, tls_hosts: list[str]) -> None:
        super().__init__(run_dir)
        self.tls_port = free_port()
        self.tls_hosts = tls_hosts
        self.ca = run_dir / "ca.pem"

    def start(self) -> TlsMosquitto:
        d = self.run_dir
        d.mkdir(parents=True, exist_ok=True)
        key, crt = d / "server.key", d / "server.pem"
        _sh(
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=bench-broker",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-addext",
            "subjectAltName=" + ",".join(f"IP:{h}" for h in [*self.tls_hosts, "127.0.0.1"]),
        )
        self.ca.write_bytes(crt.read_bytes())  # self-signed: the certificate is its own CA
        super().start()
        self.stop()
        conf = self.conf_path.read_text()
        conf += f"listener {self.tls_port} 127.0.0.1\ncertfile {crt}\nkeyfile {key}\n"
        self.conf_path.write_text(conf)
        self._spawn([self.binary, "-c", str(self.conf_path)])
        self.wait_ready()
        return self


# -- the bad link ---------------------------------------------------------------------------


@dataclass
class Impairments:
    first_stall_s: float = 570.0
    stall_every_s: float = 600.0
    stall_s: float = 30.0
    nat_idle_s: float = 120.0
    reconnect_s: tuple[float, float] = (5.0, 20.0)


@dataclass
class _Flow:
    last: float
    dropped: bool = False


class FieldRelay:
    """TCP relay (its own thread and loop) adding stalls, NAT idle drops and slow reconnects."""

    def __init__(self, listen: str, target_port: int, imp: Impairments, seed: int = 18) -> None:
        self.listen = listen
        self.port = free_port()
        self.target_port = target_port
        self.imp = imp
        self.rng = random.Random(seed)
        self.stalls: list[tuple[float, float]] = []  # (start, end) wall times
        self.nat_drops = 0
        self.connections = 0
        self._flows: list[_Flow] = []
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FieldRelay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        def halt() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_soon(self._loop.stop)

        self._loop.call_soon_threadsafe(halt)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._open.set()
        self._loop.run_until_complete(asyncio.start_server(self._client, self.listen, self.port))
        self._loop.create_task(self._stall_loop())
        self._loop.create_task(self._nat_loop())
        self._ready.set()
        self._loop.run_forever()

    async def _stall_loop(self) -> None:
        await asyncio.sleep(self.imp.first_stall_s)
        while True:
            start = time.time()
            self._open.clear()
            await asyncio.sleep(self.imp.stall_s)
            self._open.set()
            self.stalls.append((start, time.time()))
            await asyncio.sleep(self.imp.stall_every_s - self.imp.stall_s)

    async def _nat_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for f in self._flows:
                if not f.dropped and now - f.last > self.imp.nat_idle_s:
                    f.dropped = True  # the carrier forgot the mapping: nothing passes any more
                    self.nat_drops += 1

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await asyncio.sleep(self.rng.uniform(*self.imp.reconnect_s))  # a slow attach / PDP context
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        flow = _Flow(time.monotonic())
        self._flows.append(flow)
        await asyncio.gather(self._pipe(reader, up_w, flow), self._pipe(up_r, writer, flow))
        self._flows.remove(flow)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, flow: _Flow) -> None:
        try:
            while data := await src.read(65536):
                await self._open.wait()  # a stall holds the bytes (TCP retransmits them later)
                if flow.dropped:
                    continue  # blackholed, silently
                flow.last = time.monotonic()
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            dst.close()


# -- one board in a namespace ------------------------------------------------------------------


@dataclass
class Board:
    name: str
    kind: str
    index: int
    node: str = ""
    ns: str = ""
    host_if: str = ""
    ns_if: str = ""
    proc: subprocess.Popen[bytes] | None = None
    outbox: Path = Path()
    counters0: tuple[int, ...] = (0, 0, 0, 0)
    io0: dict[str, int] = field(default_factory=dict)
    cpu0: float = 0.0

    @property
    def host_ip(self) -> str:
        return f"10.218.{self.index}.1"

    @property
    def ns_ip(self) -> str:
        return f"10.218.{self.index}.2"

    def setup(self, tag: str) -> None:
        self.ns = f"ciotf-{tag}-{self.index}"
        self.host_if, self.ns_if = f"cf{tag}{self.index}h", f"cf{tag}{self.index}n"
        _sh("ip", "netns", "add", self.ns)
        _sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _sh("ip", "link", "set", self.ns_if, "netns", self.ns)
        _sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _sh("ip", "link", "set", self.host_if, "up")
        nsx = ("ip", "netns", "exec", self.ns)
        _sh(*nsx, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        _sh(*nsx, "ip", "link", "set", self.ns_if, "up")
        _sh(*nsx, "ip", "link", "set", "lo", "up")
        # down: what the broker sends the board; up: what the board sends (its egress)
        _sh(
            "tc",
            "qdisc",
            "add",
            "dev",
            self.host_if,
            "root",
            "tbf",
            "rate",
            "1mbit",
            "burst",
            "16kbit",
            "latency",
            "400ms",
        )
        _sh(
            *nsx,
            "tc",
            "qdisc",
            "add",
            "dev",
            self.ns_if,
            "root",
            "tbf",
            "rate",
            "384kbit",
            "burst",
            "16kbit",
            "latency",
            "400ms",
        )

    def teardown(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)

    def counters(self) -> tuple[int, ...]:
        """tx bytes, rx bytes, tx packets, rx packets of the board's interface."""
        out = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                "cat",
                f"/sys/class/net/{self.ns_if}/statistics/tx_bytes",
                f"/sys/class/net/{self.ns_if}/statistics/rx_bytes",
                f"/sys/class/net/{self.ns_if}/statistics/tx_packets",
                f"/sys/class/net/{self.ns_if}/statistics/rx_packets",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return tuple(int(v) for v in out)

    def io(self) -> dict[str, int]:
        assert self.proc is not None
        text = Path(f"/proc/{self.proc.pid}/io").read_text()
        return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}

    def cpu_s(self) -> float:
        assert self.proc is not None
        parts = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def depth(self, before: float) -> int:
        """Messages produced before ``before`` still in the outbox (read after the agent stopped:
        with grouped commits a running agent's last acknowledgements are not on disk yet)."""
        with contextlib.suppress(sqlite3.Error):
            db = sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True, timeout=5)
            try:
                return int(
                    db.execute("SELECT COUNT(*) FROM outbox WHERE created < ?", (before,)).fetchone()[0]
                )
            finally:
                db.close()
        return -1


def _caught_up(got: list[tuple[str, bytes, float]], board: Board, end: float) -> bool:
    for topic, payload, _ in reversed(got):
        parts = topic.split("/")
        if len(parts) >= 5 and parts[3] == board.node and parts[4] == "health":
            return (
                datetime.fromisoformat(json.loads(unpack(payload, MAX_JSON_BYTES))["ts"]).timestamp() >= end
            )
    return False


# -- the recorder ------------------------------------------------------------------------------


class Recorder:
    """QoS-1 subscriber on the broker's loopback listener: (topic, payload, arrival) of all."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[str, bytes, float]] = []
        self._lock = threading.Lock()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-link-rec", protocol=MQTTProtocolVersion.MQTTv5
        )
        c.on_connect = lambda cl, *a: cl.subscribe("ciot/v1/#", qos=1)  # not the boards' beats
        c.on_message = self._on
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def _on(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload), time.time()))

    def snapshot(self) -> list[tuple[str, bytes, float]]:
        with self._lock:
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- figures --------------------------------------------------------------------------------------


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(0.95 * len(s)))], 2)


def analyse(
    got: list[tuple[str, bytes, float]],
    stalls: list[tuple[float, float]],
    start: float,
    end: float,
    health_interval_s: float,
    left: int = 0,
) -> dict[str, Any]:
    """Delivery, duplicates, snapshot delay and the outages the cloud would raise."""
    seen: dict[tuple[str, str], set[int]] = {}
    received = dups = out_of_order = 0
    last_seq: dict[tuple[str, str, str], int] = {}
    arrivals: dict[str, list[float]] = {}
    event_ts: dict[str, float] = {}
    snapshot_at: dict[str, float] = {}
    wills: dict[str, list[float]] = {}
    snapshot_bytes = 0
    for topic, payload, at in got:
        parts = topic.split("/")
        if len(parts) < 5:
            continue
        node, channel = parts[3], parts[4]
        arrivals.setdefault(node, []).append(at)
        if channel == "snapshot":
            if parts[5] not in snapshot_at:
                snapshot_at[parts[5]] = at
                snapshot_bytes += len(payload) if at <= end else 0  # the bytes counted end at ``end``
            continue
        doc = json.loads(unpack(payload, MAX_JSON_BYTES))  # the shipped profile packs its JSON
        if channel == "status":
            if doc.get("reason") == "will":
                wills.setdefault(node, []).append(at)
            continue
        if channel not in ("health", "metrics", "event"):
            continue
        key = (node, doc["session"])
        received += 1
        if doc["seq"] in seen.setdefault(key, set()):
            dups += 1
            continue
        seen[key].add(doc["seq"])
        ck = (node, doc["session"], channel)
        out_of_order += doc["seq"] < last_seq.get(ck, 0)
        last_seq[ck] = doc["seq"]
        if channel == "event":
            event_ts.setdefault(doc["event_id"], datetime.fromisoformat(doc["ts"]).timestamp())
    expected = sum(max(s) for s in seen.values()) + left  # gaps and what never left the board
    unique = sum(len(s) for s in seen.values())
    delays = [snapshot_at[e] - ts for e, ts in event_ts.items() if e in snapshot_at]
    silence = max(SILENCE_FACTOR * health_interval_s, SILENCE_FLOOR_S) + GRACE_S
    outages: list[tuple[float, float]] = []
    for node, times in arrivals.items():
        times.sort()
        gaps = [(a, b) for a, b in itertools.pairwise(times) if b - a > silence]
        for w in wills.get(node, []):  # a Will opens an alert unless the board is back within the grace
            back = next((t for t in times if t > w), end + 1e9)
            if back - w > GRACE_S and not any(a <= w <= b for a, b in gaps):
                gaps.append((w, back))
        outages += gaps

    def stalled(a: float, b: float) -> bool:  # a stall, or the slow reconnect after it, explains it
        return any(s0 - 1 <= b and a <= s1 + 25 for s0, s1 in stalls)

    return {
        "delivered_ratio": round(unique / expected, 5) if expected else 0.0,
        "duplicates": dups,
        "out_of_order": out_of_order,
        "received": received,
        "snapshot_p95_s": _p95(delays),
        "snapshots": len(delays),
        "snapshot_payload_bytes": snapshot_bytes,
        "false_outages": len(outages),
        "outages_no_stall_explains": sum(not stalled(a, b) for a, b in outages),
        "wills": sum(len(w) for w in wills.values()),
        "outage_threshold_s": silence,
    }


# -- the run -------------------------------------------------------------------------------------


def run(
    minutes: float,
    profile: str,
    run_dir: Path,
    imp: Impairments,
    events_per_hour: float = EVENTS_PER_HOUR,
    tcp_timestamps: bool = True,
    keepalive_s: int | None = None,
    health_interval_s: float | None = None,
    readings_interval_s: float | None = None,
    check_link_s: float | None = None,
) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise SystemExit("bench link needs root (network namespaces, veth, tc)")
    prof = dict(profile_settings(profile))
    if keepalive_s is not None:
        prof["keepalive_s"] = keepalive_s
    if check_link_s is not None:  # 0: a PINGREQ every keepalive, as MQTT clients do
        prof["check_link_s"] = check_link_s
    if prof.get("check_link_s", 0) < prof["keepalive_s"]:
        prof["check_link_s"] = 0.0
    if health_interval_s is not None:
        prof["health_interval_s"] = health_interval_s
    if readings_interval_s is not None:  # AP readings and camera stream health alike
        prof["sim_interval_s"] = prof["camera_interval_s"] = readings_interval_s
    tag = f"{os.getpid() % 1000}"
    devices = {d["kind"]: d for d in reversed(load_devices())}
    boards = [
        Board("ap", "ap", 1 + os.getpid() % 100 * 2),
        Board("camera", "camera", 2 + os.getpid() % 100 * 2),
    ]
    for b in boards:
        b.setup(tag)
        if not tcp_timestamps:  # the board's side: 12 bytes less in every TCP header
            _sh("ip", "netns", "exec", b.ns, "sysctl", "-q", "net.ipv4.tcp_timestamps=0")
    broker = TlsMosquitto(run_dir / "broker", [b.host_ip for b in boards])
    relays: list[FieldRelay] = []
    rec: Recorder | None = None
    try:
        broker.start()
        rec = Recorder(broker.port)
        for b in boards:
            relay = FieldRelay(b.host_ip, broker.tls_port, imp, seed=b.index).start()
            relays.append(relay)
            state = run_dir / b.name
            b.node = devices[b.kind]["node"]
            cfg = edge_config(
                devices[b.kind],
                f"mqtts://{b.host_ip}:{relay.port}",
                state,
                health_interval_s=prof["health_interval_s"],
                sim_interval_s=prof.get(f"{b.kind}_interval_s", prof["sim_interval_s"]),
                keepalive_s=int(prof["keepalive_s"]),
                check_link_s=prof.get("check_link_s") or None,
                compress=bool(prof.get("compress")),
                events_per_hour=events_per_hour,
                reconnect_max_s=10.0,
            )
            cfg["broker"]["ca_file"] = str(broker.ca)
            # a 3G attach takes up to 20 s: a shorter connect timeout never lets the board back on
            cfg["broker"]["connect_timeout_s"] = CONNECT_TIMEOUT_S
            cfg["hold_until_cloud"] = False
            cfg["outbox"]["commit_interval_s"] = prof["commit_interval_s"]
            cfg["control"] = {"enabled": False}
            b.outbox = state / "outbox.sqlite3"
            path = run_dir / f"{b.name}.yaml"
            path.write_text(json.dumps(cfg))  # JSON is YAML
            log = (run_dir / f"{b.name}.log").open("ab")
            b.proc = subprocess.Popen(
                ["ip", "netns", "exec", b.ns, sys.executable, "-m", "edge", "--config", str(path)],
                cwd=REPO,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _say(f"{len(boards)} boards on the bad link ({profile} profile), {minutes:g} min; run dir {run_dir}")
        start = time.time()
        for b in boards:
            b.counters0, b.io0, b.cpu0 = b.counters(), b.io(), b.cpu_s()
        deadline = time.monotonic() + minutes * 60
        peak_rss = 0.0
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            peak_rss = max(peak_rss, boards[0].rss_mb())
        end = time.time()
        seconds = end - start
        per_day = 86400 / seconds
        figures: dict[str, Any] = {}
        for b in boards:
            tx, rx, txp, rxp = b.counters()
            wire = tx - b.counters0[0] + rx - b.counters0[1]
            packets = txp - b.counters0[2] + rxp - b.counters0[3]
            figures[f"bytes_per_day_{b.name}"] = round(wire * per_day)
            figures[f"packets_per_day_{b.name}"] = round(packets * per_day)
            # what a 3G modem bills: IP packets, without the veth's 14-byte Ethernet header
            figures[f"ip_bytes_per_day_{b.name}"] = round((wire - ETHERNET_HEADER * packets) * per_day)
        io = boards[0].io()
        cpu = boards[0].cpu_s() - boards[0].cpu0
        figures["disk_bytes_per_day_ap"] = round((io["write_bytes"] - boards[0].io0["write_bytes"]) * per_day)
        figures["disk_write_calls_per_day_ap"] = round((io["syscw"] - boards[0].io0["syscw"]) * per_day)
        figures["ap_cpu_s_per_hour"] = round(cpu * 3600 / seconds, 2)
        figures["ap_rss_mb_peak"] = round(peak_rss, 1)
        # let the boards catch up (the outbox is FIFO: a message stamped after the end arriving
        # means all before it did), stop them, then count what never left
        drain = time.monotonic() + 120
        while time.monotonic() < drain and not all(_caught_up(rec.snapshot(), b, end) for b in boards):
            time.sleep(1)
        for b in boards:
            assert b.proc is not None
            b.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                b.proc.wait(30)
        left = sum(max(0, b.depth(end)) for b in boards)
        figures["outbox_left"] = left
        got = rec.snapshot()
        stalls = [s for r in relays for s in r.stalls]
        res = analyse(got, stalls, start, end, prof["health_interval_s"], left)
        res |= figures
        snap_day = round(res["snapshot_payload_bytes"] * per_day)
        res["snapshot_payload_bytes_per_day"] = snap_day
        res["bytes_per_day_camera_without_snapshots"] = res["bytes_per_day_camera"] - snap_day
        res |= {
            "profile": profile,
            "settings": prof,
            "events_per_hour": events_per_hour,
            "tcp_timestamps": tcp_timestamps,
            "minutes": round(seconds / 60, 2),
            "stalls": len(stalls),
            "nat_drops": sum(r.nat_drops for r in relays),
            "connections": sum(r.connections for r in relays),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        return res
    finally:
        for b in boards:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    b.proc.wait(15)
                if b.proc.poll() is None:
                    b.proc.kill()
        for r in relays:
            r.stop()
        if rec is not None:
            rec.close()
        broker.stop()
        for b in boards:
            b.teardown()


KEYS = (
    "delivered_ratio",
    "duplicates",
    "bytes_per_day_ap",
    "bytes_per_day_camera",
    "snapshot_p95_s",
    "false_outages",
    "disk_bytes_per_day_ap",
)


def main(
    minutes: float = 30.0,
    profile: str = "shipped",
    run_dir: Path | None = None,
    events_per_hour: float = EVENTS_PER_HOUR,
    tcp_timestamps: bool = True,
    keepalive_s: int | None = None,
    health_interval_s: float | None = None,
    readings_interval_s: float | None = None,
    check_link_s: float | None = None,
) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-link-"))
    # a short run keeps one full 30 s stall, a quarter of the way in; a long one every 10 min
    imp = Impairments(first_stall_s=minutes * 15, stall_every_s=1e9) if minutes < 10 else Impairments()
    res = run(
        minutes,
        profile,
        base,
        imp,
        events_per_hour,
        tcp_timestamps,
        keepalive_s,
        health_interval_s,
        readings_interval_s,
        check_link_s,
    )
    for k, v in res.items():
        if k not in KEYS:
            _say(f"  {k}: {v}")
    print(json.dumps({k: res[k] for k in KEYS} | {k: v for k, v in res.items() if k not in KEYS}), flush=True)
    return 0
