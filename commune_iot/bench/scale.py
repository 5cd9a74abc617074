"""``commune-iot bench scale --boards N``: how far one cloud node goes, with N simulated boards.

Everything real except the boards' processes: Mosquitto, InfluxDB, ``commune-iot cloud
serve`` (SQLite, or PostgreSQL with ``--sql``) with the shipped ingest and alerting settings,
and N MQTT connections from ``commune_iot.bench.boards`` (each board its own client id,
session, birth, Will, health every 10 s and metrics at its collector's interval), in an
inventory of N nodes in communes of about 100.

Once every board is heard and the cloud judges, a measurement window runs:

* CPU of the cloud (``serve`` and its MQTT receiver), the broker, InfluxDB and the boards'
  processes, per 1,000 boards (percent of one core);
* end-to-end lag: from a board's stamp on a health message to the point answering a query in
  InfluxDB, for ``PROBES`` boards polled every ``LAG_POLL_S`` (so it is at most that much
  too high);
* outages: ``--kill`` boards chosen at random are killed at random instants, half frozen (a
  power cut: silent, TCP left open), half dropped (the connection closes); the time from the
  kill to the alert's webhook notice, and every other alert opened (false alerts: must be 0);
* the API under this load: the fleet list one page at a time (``/api/v1/devices?limit=100``
  at a random offset) and ``/api/v1/communes/summary``, a request of each every
  ``API_PAUSE_S``;
* the cloud's resident memory, InfluxDB's series count, and InfluxDB's disk per board per
  day (``commune_iot.bench.disk``: a simulated day of 20 boards, compacted).

Progress on stdout, then one line of JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from commune_iot.bench.ingest import _cpu_s, _family
from commune_iot.bench.outage import WebhookSink, _percentile
from commune_iot.fleet import CloudProcess, cloud_config, rss_mb
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

#: Boards per generator process (one event loop each).
BOARDS_PER_PROCESS = 2500
#: Boards per simulated commune (Lam Dong's communes have some tens to a few hundred sites).
COMMUNE_SIZE = 100
#: Share of access-point boards (the pilot: 35 APs, 24 cameras).
AP_SHARE = 0.6
PROBES = 40
LAG_POLL_S = 0.25
API_PAUSE_S = 0.5
API_PAGE = 100
#: After the last kill, how long an alert may take before the victim counts as never alerted.
ALERT_WAIT_S = 60.0


def _say(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- inventory
def board_specs(n: int) -> list[dict[str, str]]:
    """N boards (node = device id) in communes of ``COMMUNE_SIZE``, APs and cameras mixed."""
    out = []
    for i in range(n):
        commune = f"xa-{i // COMMUNE_SIZE:03d}"
        kind = "camera" if (i * 7919) % 100 >= AP_SHARE * 100 else "ap"
        node = f"{commune}-{'cam' if kind == 'camera' else 'ap'}-{i % COMMUNE_SIZE:03d}"
        out.append({"node": node, "commune": commune, "kind": kind})
    return out


def write_inventory(specs: list[dict[str, str]], path: Path) -> Path:
    communes = sorted({s["commune"] for s in specs})
    doc = {
        "communes": [{"id": c, "name": f"Xã {c[3:]}"} for c in communes],
        "sites": [{"id": f"{s['node']}-site", "commune": s["commune"], "kind": "village"} for s in specs],
        "nodes": [{"id": s["node"], "commune": s["commune"], "site": f"{s['node']}-site"} for s in specs],
        "devices": [
            {
                "id": s["node"],
                "kind": s["kind"],
                "node": s["node"],
                "commune": s["commune"],
                "site": f"{s['node']}-site",
            }
            for s in specs
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the boards' processes
@dataclass
class BoardProcesses:
    """Generator processes, their reports, and a way to kill boards."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    owner: dict[str, int] = field(default_factory=dict)  # node -> process index
    ready: set[int] = field(default_factory=set)
    killed: dict[str, tuple[float, str]] = field(default_factory=dict)  # node -> (at, mode)
    stats: dict[int, dict[str, Any]] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, specs: list[dict[str, str]], port: int, ramp_per_s: float, seed: int) -> BoardProcesses:
        self = cls()
        n_procs = max(1, -(-len(specs) // BOARDS_PER_PROCESS))
        for i in range(n_procs):
            part = specs[i::n_procs]
            for s in part:
                self.owner[s["node"]] = i
            proc = subprocess.Popen(
                [sys.executable, "-m", "commune_iot.bench.boards"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert proc.stdin is not None
            spec = {
                "host": "127.0.0.1",
                "port": port,
                "boards": part,
                "ramp_per_s": ramp_per_s / n_procs,
                "seed": seed + i,
            }
            proc.stdin.write(json.dumps(spec) + "\n")
            proc.stdin.flush()
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(i, proc), daemon=True).start()
        return self

    def _read(self, i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            msg = json.loads(line)
            with self._cond:
                if "ready" in msg:
                    self.ready.add(i)
                elif "killed" in msg:
                    self.killed[msg["killed"]] = (float(msg["at"]), str(msg["mode"]))
                elif "stats" in msg:
                    self.stats[i] = msg["stats"]
                self._cond.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.ready) == len(self.procs), timeout)

    def kill(self, node: str, mode: str) -> None:
        proc = self.procs[self.owner[node]]
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"kill": node, "mode": mode}) + "\n")
        proc.stdin.flush()

    def wait_killed(self, nodes: set[str], timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: nodes <= set(self.killed), timeout)

    def total(self, key: str) -> int:
        with self._cond:
            return sum(int(s.get(key) or 0) for s in self.stats.values())

    def ack_p95_ms(self) -> float | None:
        with self._cond:
            vals = [s["ack_ms_p95"] for s in self.stats.values() if s.get("ack_ms_p95") is not None]
        return max(vals) if vals else None

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError, ValueError):
                assert p.stdin is not None
                p.stdin.write(json.dumps({"stop": True}) + "\n")
                p.stdin.flush()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


# --------------------------------------------------------------------------- probes
class LagProbe(threading.Thread):
    """Polls InfluxDB for the newest health point of some boards: seconds from stamp to queryable."""

    def __init__(self, influx: InfluxDB, db: str, nodes: list[str]) -> None:
        super().__init__(name="lag-probe", daemon=True)
        self.url = f"{influx.url}/query"
        self.db = db
        regex = "|".join(nodes)
        self.q = (
            f'SELECT last("seq") FROM "health" WHERE time > now() - 2m AND "node" =~ /^({regex})$/ '
            'GROUP BY "node"'
        )
        self.seen: dict[str, int] = {}
        self.lags: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        body = urllib.parse.urlencode({"db": self.db, "q": self.q, "epoch": "ms"}).encode()
        while not self.stop.wait(LAG_POLL_S):
            try:
                with urllib.request.urlopen(urllib.request.Request(self.url, data=body), timeout=10) as r:
                    res = json.load(r)["results"][0]
            except (OSError, ValueError):
                self.errors += 1
                continue
            now = time.time()
            for s in res.get("series", []):
                node = s["tags"]["node"]
                t_ms = int(s["values"][0][0])
                prev = self.seen.get(node)
                self.seen[node] = t_ms
                if prev is not None and t_ms > prev:
                    self.lags.append(now - t_ms / 1000)


class ApiProbe(threading.Thread):
    """A technician's screen under load: the fleet list page by page, and the commune summary."""

    def __init__(self, cloud: CloudProcess, boards: int, seed: int) -> None:
        super().__init__(name="api-probe", daemon=True)
        self.cloud = cloud
        self.boards = boards
        self.rnd = random.Random(seed)
        self.times: dict[str, list[float]] = {"devices_page": [], "summary": []}
        self.errors = 0
        self.stop = threading.Event()

    def _get(self, what: str, path: str) -> None:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(self.cloud.request(path), timeout=30) as r:
                body = r.read()
        except (OSError, urllib.error.URLError):
            self.errors += 1
            return
        self.times[what].append(time.perf_counter() - t0)
        if what == "devices_page" and len(json.loads(body)) != min(API_PAGE, self.boards):
            self.errors += 1  # a page must be full (offsets are drawn below boards - page)

    def run(self) -> None:
        while not self.stop.wait(API_PAUSE_S):
            offset = self.rnd.randrange(max(1, self.boards - API_PAGE + 1))
            self._get("devices_page", f"/api/v1/devices?limit={API_PAGE}&offset={offset}")
            self._get("summary", "/api/v1/communes/summary")


def _timed_get(cloud: CloudProcess, path: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(cloud.request(path), timeout=120) as r:
        r.read()
    return time.perf_counter() - t0


def _influx_query(influx: InfluxDB, q: str, db: str = "") -> list[dict[str, Any]]:
    params = {"q": q, **({"db": db} if db else {})}
    body = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{influx.url}/query", data=body), timeout=120) as r:
        series: list[dict[str, Any]] = json.load(r)["results"][0].get("series", [])
    return series


def series_count(influx: InfluxDB, db: str) -> int:
    rows = _influx_query(influx, "SHOW SERIES EXACT CARDINALITY", db)
    return sum(int(s["values"][0][0]) for s in rows)


def _rss_family_mb(pid: int) -> float:
    return sum(rss_mb(p) or 0.0 for p in _family(pid))


def _cpu_many(pids: list[int]) -> float:
    return sum(_cpu_s(p) for p in pids)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --------------------------------------------------------------------------- the run
def main(
    boards: int = 1000,
    seconds: float = 120.0,
    kill: int = 20,
    run_dir: Path | None = None,
    sql_url: str | None = None,
    seed: int = 1,
    warmup_s: float = 30.0,
    ramp_per_s: float = 400.0,
    disk: bool = True,
    settle_s: float = 45.0,
) -> int:
    run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="ciot-bench-scale-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    kill = min(kill, boards // 2)
    _say(
        f"scale benchmark: {boards:,} boards, {seconds:.0f} s window, {kill} killed, run dir {run_dir} "
        f"(load average at start: {_load()}; {os.cpu_count()} cores)"
    )
    specs = board_specs(boards)
    inventory = write_inventory(specs, run_dir / "inventory.yaml")
    sink = WebhookSink()
    broker = Mosquitto(run_dir / "mosquitto", max_clients=boards + 100).start()
    influx = InfluxDB(run_dir / "influx").start()
    db = "ciot"
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx.url,
        influx_db=db,
        influx_user="",
        influx_password_file=None,
        state_dir=run_dir / "cloud",
        http_port=free_port(),
        inventory=inventory,
        sql_url=sql_url,
    )
    # shipped alerting settings; settle_s (45 s after the cloud connects) shortened only by tests
    cfg["alerting"] = {"settle_s": settle_s, "notify": {"webhooks": [{"url": sink.url, "secret": "bench"}]}}
    cloud = CloudProcess.write(run_dir / "cloud", cfg)
    gens: BoardProcesses | None = None
    try:
        cloud.start(wait=120)
        assert cloud.proc is not None
        cloud_started = time.monotonic()
        _say(f"cloud serving on {cloud.url}; connecting {boards:,} boards at {ramp_per_s:.0f}/s")
        t0 = time.monotonic()
        gens = BoardProcesses.start(specs, broker.port, ramp_per_s, seed)
        if not gens.wait_ready(boards / ramp_per_s + 300):
            raise RuntimeError(f"not every board connected within {boards / ramp_per_s + 300:.0f} s")
        _say(f"  all {boards:,} boards connected once after {time.monotonic() - t0:.0f} s")
        _wait_heard(cloud, boards, timeout=600)
        _say(
            f"  the cloud hears all {boards:,} boards, {time.monotonic() - t0:.0f} s after the first connect"
        )
        # a new cloud builds last month's Wi-Fi report (every AP of the inventory) once, at start:
        # not part of the steady state measured below
        reports_s = _wait_reports(cloud, cloud_started, timeout=900)
        _say(f"  last month's Wi-Fi report kept {reports_s:.0f} s after the cloud started")
        # the cloud's settle time after connecting (alerting.settle_s), then a warm-up
        settle_left = settle_s - (time.monotonic() - cloud_started)
        time.sleep(max(0.0, settle_left) + warmup_s)
        result = _window(cloud, broker, influx, db, gens, sink, specs, seconds, kill, rnd)
        result["boards"] = boards
        result["monthly_report_s"] = round(reports_s, 1)
        gens.stop()
        gens = None
        cloud.stop()
        if disk:
            from commune_iot.bench.disk import per_board_day

            _say("InfluxDB disk per board per day: one simulated day of 20 boards, compacted")
            d = per_board_day(run_dir / "disk", boards=20)
            result["influx_disk_per_board_per_day_mb"] = d["raw_mb"]
    finally:
        if gens is not None:
            gens.stop()
        cloud.stop()
        broker.stop()
        influx.stop()
        sink.close()
    _say(
        f"{boards:,} boards: cloud {result['cloud_cpu_pct_per_1000_boards']:.1f} % of a core per 1,000 "
        "boards, "
        f"lag p95 {result['lag_p95_s']} s, alert p95 {result['alert_p95_s']} s, "
        f"false alerts {result['false_alerts']}, API page p95 {result['api_devices_page_p95_s']} s, "
        f"summary p95 {result['api_summary_p95_s']} s, cloud RSS {result['cloud_rss_mb']:.0f} MB"
    )
    print(json.dumps(result), flush=True)
    ok = result["false_alerts"] == 0 and result["alerts_missing"] == 0
    return 0 if ok else 1


def _wait_heard(cloud: CloudProcess, boards: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    up = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.URLError):
            summary = cloud.get_json("/api/v1/communes/summary", timeout=30)
            up = sum(c["nodes_up"] for c in summary)
            if up >= boards:
                return
        time.sleep(1.0)
    raise RuntimeError(f"the cloud hears {up} of {boards} boards after {timeout:.0f} s")


def _wait_reports(cloud: CloudProcess, since: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.URLError):
            if cloud.get_json("/api/v1/reports", timeout=30):
                return time.monotonic() - since
        time.sleep(1.0)
    raise RuntimeError(f"the monthly Wi-Fi report was not kept within {timeout:.0f} s")


def _window(
    cloud: CloudProcess,
    broker: Mosquitto,
    influx: InfluxDB,
    db: str,
    gens: BoardProcesses,
    sink: WebhookSink,
    specs: list[dict[str, str]],
    seconds: float,
    kill: int,
    rnd: random.Random,
) -> dict[str, Any]:
    boards = len(specs)
    nodes = [s["node"] for s in specs]
    picked = rnd.sample(nodes, min(boards, kill + PROBES))
    victims, probes = picked[:kill], picked[kill:]
    schedule = sorted(
        (rnd.uniform(2.0, max(3.0, seconds - 25.0)), v, rnd.choice(["freeze", "drop"])) for v in victims
    )
    assert cloud.proc is not None and broker.proc is not None and influx.proc is not None
    cloud_pid, broker_pid, influx_pid = cloud.proc.pid, broker.proc.pid, influx.proc.pid
    lag = LagProbe(influx, db, probes)
    api = ApiProbe(cloud, boards, rnd.randrange(1 << 30))
    published0 = gens.total("published")
    held0 = gens.total("held")
    pids = {"cloud": [cloud_pid], "broker": [broker_pid], "influx": [influx_pid], "boards": gens.pids()}
    notices_before = len(sink.received)
    _say(f"measuring for {seconds:.0f} s (load average {_load()}); killing {kill} boards at random instants")
    t_start = time.monotonic()
    lag.start()
    cpu0 = {k: _cpu_many(v) for k, v in pids.items()}
    half = t_start + seconds / 2
    cpu_half: dict[str, float] = {}
    for at, victim, mode in schedule:
        _sleep_until(
            t_start + at, half, lambda: cpu_half.update({k: _cpu_many(v) for k, v in pids.items()}), api
        )
        gens.kill(victim, mode)
    _sleep_until(
        t_start + seconds, half, lambda: cpu_half.update({k: _cpu_many(v) for k, v in pids.items()}), api
    )
    cpu1 = {k: _cpu_many(v) for k, v in pids.items()}
    elapsed = time.monotonic() - t_start
    ingest_s = half - t_start
    cpu = {k: cpu_half[k] - cpu0[k] for k in pids}  # the first half: no API requests
    api_cloud_s = cpu1["cloud"] - cpu_half["cloud"]
    published = gens.total("published") - published0
    load_end = _load()
    lag.stop.set()
    api.stop.set()
    rss = _rss_family_mb(cloud_pid)
    gens.wait_killed(set(victims), 10)
    # every victim's alert, or ALERT_WAIT_S after the last kill
    deadline = time.monotonic() + ALERT_WAIT_S
    latencies: dict[str, float] = {}
    while time.monotonic() < deadline:
        opened = {
            r.notice["subject"]: r.at for r in sink.received[notices_before:] if r.notice["kind"] == "open"
        }
        latencies = {v: opened[v] - gens.killed[v][0] for v in victims if v in opened and v in gens.killed}
        if len(latencies) == len(victims):
            break
        time.sleep(0.5)
    opens = [r.notice for r in sink.received[notices_before:] if r.notice["kind"] == "open"]
    false = [n for n in opens if n["subject"] not in victims]
    for n in false:
        _say(f"  FALSE ALERT: {n['scope']} {n['subject']} ({n['cause']})")
    for v in victims:
        mode = gens.killed.get(v, (0.0, "?"))[1]
        took = latencies.get(v)
        _say(
            f"  {v} ({mode}): " + (f"alerted {took:.1f} s after the kill" if took is not None else "NO ALERT")
        )
    full_list_s = _timed_get(cloud, "/api/v1/devices")
    by_mode = {m: [t for v, t in latencies.items() if gens.killed[v][1] == m] for m in ("freeze", "drop")}
    per_k = 1000 / boards
    result: dict[str, Any] = {
        "window_s": round(elapsed, 1),
        "msgs_per_s": round(published / elapsed, 1),
        "cloud_cpu_pct_per_1000_boards": round(100 * cpu["cloud"] / ingest_s * per_k, 2),
        "cloud_cpu_pct_with_api": round(100 * api_cloud_s / (elapsed - ingest_s), 1),
        "broker_cpu_pct_per_1000_boards": round(100 * cpu["broker"] / ingest_s * per_k, 2),
        "influx_cpu_pct_per_1000_boards": round(100 * cpu["influx"] / ingest_s * per_k, 2),
        "boards_sim_cpu_pct_per_1000_boards": round(100 * cpu["boards"] / ingest_s * per_k, 2),
        "lag_p50_s": round(statistics.median(lag.lags), 2) if lag.lags else None,
        "lag_p95_s": round(_percentile(lag.lags, 0.95), 2) if lag.lags else None,
        "lag_samples": len(lag.lags),
        "alert_p50_s": round(statistics.median(latencies.values()), 2) if latencies else None,
        "alert_p95_s": round(_percentile(list(latencies.values()), 0.95), 2) if latencies else None,
        "alert_max_s": round(max(latencies.values()), 2) if latencies else None,
        "alert_freeze_p95_s": round(_percentile(by_mode["freeze"], 0.95), 2) if by_mode["freeze"] else None,
        "alert_drop_p95_s": round(_percentile(by_mode["drop"], 0.95), 2) if by_mode["drop"] else None,
        "killed": len(victims),
        "alerts_missing": len(victims) - len(latencies),
        "false_alerts": len(false),
        "api_devices_page_p95_s": _p95(api.times["devices_page"]),
        "api_summary_p95_s": _p95(api.times["summary"]),
        "api_requests": sum(len(v) for v in api.times.values()),
        "api_errors": api.errors,
        "api_devices_full_list_s": round(full_list_s, 3),
        "cloud_rss_mb": round(rss, 1),
        "broker_rss_mb": round(rss_mb(broker_pid) or 0.0, 1),
        "influx_rss_mb": round(rss_mb(influx_pid) or 0.0, 1),
        "influx_series": series_count(influx, db),
        "board_puback_p95_ms": gens.ack_p95_ms(),
        "held_msgs": gens.total("held") - held0,
        "reconnects": gens.total("reconnects"),
        "load_avg_end": load_end,
    }
    return result


def _sleep_until(deadline: float, half: float, at_half: Any, api: ApiProbe) -> None:
    """Sleep until ``deadline``; crossing ``half`` (the ingest-only CPU reading ends), read the
    CPU counters and start the API probe for the second half."""
    if not api.is_alive() and not api.stop.is_set() and deadline >= half:
        time.sleep(max(0.0, half - time.monotonic()))
        at_half()
        api.start()
    time.sleep(max(0.0, deadline - time.monotonic()))


def _p95(values: list[float]) -> float | None:
    return round(_percentile(values, 0.95), 3) if values else None


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
