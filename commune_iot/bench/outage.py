"""``commune-iot bench outage``: seconds from a silent site to the technician's notification.

A silent site is an agent frozen with SIGSTOP: its TCP connection stays open, so the
broker's Last Will comes only after 1.5 x keepalive plus Mosquitto's 5 s scan, and the
cloud must notice the missing heartbeats itself. Each trial waits a random fraction of a
heartbeat interval (a power cut does not wait for the next heartbeat), freezes one agent,
and measures until the alert's webhook arrives; then it thaws the agent and waits for the
resolved notice. Trials run in parallel in the three communes (one frozen node per
commune at a time, so the commune root-cause rule never delays them).

Everything is real: Mosquitto, InfluxDB, ``commune-iot cloud serve`` and agents as
processes, with the shipped detection defaults. Only ``settle_s`` is shortened (the
agents here reconnect within 10 s), since it applies after the cloud connects.

``OutageRig`` is shared with the acceptance tests (tests/alerting).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config, edge_config, load_devices
from commune_iot.localcluster import NatsCluster
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

#: What the rig's cloud overrides from the shipped alerting defaults (and why).
RIG_ALERTING: dict[str, Any] = {"settle_s": 15.0}  # agents here reconnect within reconnect_max_s=10 s


@dataclass
class Received:
    at: float
    body: dict[str, Any]

    @property
    def notice(self) -> dict[str, Any]:
        n: dict[str, Any] = self.body["notice"]
        return n


class WebhookSink:
    """A local webhook endpoint that records every notice with its arrival time."""

    def __init__(self, respond: Callable[[int], int] | None = None) -> None:
        self.received: list[Received] = []
        self.attempts = 0
        self._cond = threading.Condition()
        self._respond = respond or (lambda _i: 200)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._cond:
                    index = sink.attempts
                    sink.attempts += 1
                status = sink._respond(index)
                if status < 300:
                    with sink._cond:
                        sink.received.append(Received(time.time(), json.loads(body)))
                        sink._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def notices(self, pred: Callable[[dict[str, Any]], bool] | None = None) -> list[Received]:
        with self._cond:
            return [r for r in self.received if pred is None or pred(r.notice)]

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float, what: str = "") -> Received:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.received:
                    if pred(r.notice):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no webhook notice {what} within {timeout:.0f} s")
                self._cond.wait(left)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class OutageRig:
    """Broker, InfluxDB, the cloud service with a webhook, and agents of chosen inventory nodes."""

    run_dir: Path
    mqtt: Mosquitto | NatsCluster
    influx: InfluxDB
    cloud: CloudProcess
    sink: WebhookSink
    database: str
    agents: dict[str, AgentProcess] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    clouds: list[CloudProcess] = field(default_factory=list)  # all workers; ``cloud`` is the first
    sql_url: str = ""  # the workers' database

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        run_dir: Path,
        nodes: list[str],
        *,
        influx: InfluxDB | None = None,
        database: str = "ciot",
        alerting: dict[str, Any] | None = None,
        sink: WebhookSink | None = None,
        agent_overrides: dict[str, Any] | None = None,
        overrides_of: dict[str, dict[str, Any]] | None = None,
        workers: int = 1,
        sql_url: str | None = None,
        cluster: NatsCluster | None = None,
        mqtt: dict[str, Any] | None = None,
    ) -> Iterator[OutageRig]:
        """Everything started; agents online and the cloud judging when it yields; all stopped after.

        With ``workers`` > 1, that many ``cloud serve`` processes share one subscription
        (``mqtt.share_group``) and one SQL database, as a scaled-out deployment does. SQL is
        a SQLite file in the run dir unless ``sql_url`` names another database. With a
        running ``cluster`` (the caller's), the cloud and the agents use its nodes (MQTT 3.1.1)
        instead of a Mosquitto of the rig's own. ``mqtt`` overrides the workers' MQTT settings.
        """
        own_influx = influx is None
        broker = cluster or Mosquitto(run_dir / "mosquitto").start()
        db = influx or InfluxDB(run_dir / "influx").start()
        sink = sink or WebhookSink()
        alert_cfg = {**RIG_ALERTING, **(alerting or {})}
        alert_cfg.setdefault("notify", {}).setdefault("webhooks", []).append(
            {"url": sink.url, "secret": "rig"}
        )
        cfg = cloud_config(
            mqtt_url=broker.urls if isinstance(broker, NatsCluster) else broker.url,
            mqtt_protocol=broker.protocol if isinstance(broker, NatsCluster) else "5",
            influx_url=db.url,
            influx_db=database,
            influx_user=db.username,
            influx_password_file=None,
            state_dir=run_dir / "cloud",
            http_port=free_port(),
            sql_url=sql_url,
        )
        if db.password:
            cfg["influx"]["password"] = db.password
        cfg["alerting"] = alert_cfg
        cfg["mqtt"] = {**cfg["mqtt"], **(mqtt or {})}
        clouds: list[CloudProcess] = []
        for i in range(workers):
            if workers > 1:
                cfg = {**cfg, "http": {**cfg["http"], "port": free_port()}}
                cfg["mqtt"] = {**cfg["mqtt"], "client_id": f"ciot-cloud-rig-{i + 1}", "share_group": "rig"}
            clouds.append(CloudProcess.write(run_dir, cfg, name=f"cloud-{i + 1}" if i else "cloud").start())
        devices = {d["node"]: d for d in load_devices()}
        rig = cls(
            run_dir,
            broker,
            db,
            clouds[0],
            sink,
            database,
            devices=devices,
            clouds=clouds,
            sql_url=cfg["sql"]["url"],
        )
        try:
            for node in nodes:
                rig.start_agent(node, **{**(agent_overrides or {}), **(overrides_of or {}).get(node, {})})
            rig.wait_judging(float(alert_cfg["settle_s"]) + 30)
            yield rig
        finally:
            for a in rig.agents.values():
                if a.proc is not None and a.running:
                    a.proc.send_signal(signal.SIGCONT)
                    a.terminate()
            for a in rig.agents.values():
                a.wait(15)
            for c in clouds:
                c.stop()
            if cluster is None:
                broker.stop()
            if own_influx:
                db.stop()
            sink.close()

    def start_agent(self, node: str, **overrides: Any) -> AgentProcess:
        """An agent with the shipped edge defaults (health every 10 s, keepalive 10 s)."""
        if isinstance(self.mqtt, NatsCluster):
            overrides = {"protocol": self.mqtt.protocol, **overrides}
            broker: str | list[str] = self.mqtt.urls
        else:
            broker = self.mqtt.url
        cfg = edge_config(self.devices[node], broker, self.run_dir / "agents" / node, **overrides)
        agent = AgentProcess.write(self.run_dir, cfg).start()
        self.agents[node] = agent
        return agent

    @property
    def broker(self) -> Mosquitto:
        """The rig's own Mosquitto (a rig on a cluster has none: ``cluster``)."""
        assert isinstance(self.mqtt, Mosquitto), "this rig runs on a NATS cluster"
        return self.mqtt

    @property
    def cluster(self) -> NatsCluster:
        assert isinstance(self.mqtt, NatsCluster), "this rig runs on its own Mosquitto"
        return self.mqtt

    def wait_judging(self, timeout: float) -> None:
        """Until every agent was heard and the cloud's settle time after connecting is over."""
        deadline = time.monotonic() + timeout
        settle = float(RIG_ALERTING["settle_s"])
        started = time.monotonic()
        while time.monotonic() < deadline:
            summary = self.cloud.get_json("/api/v1/communes/summary")
            up = sum(c["nodes_up"] for c in summary)
            judging = all(c["judging"] for c in summary) and up >= len(self.agents)
            if judging and time.monotonic() - started >= settle:
                return
            time.sleep(0.5)
        raise TimeoutError(f"the cloud did not start judging {len(self.agents)} agents in {timeout:.0f} s")

    def signal(self, node: str, sig: signal.Signals) -> float:
        proc = self.agents[node].proc
        assert proc is not None
        proc.send_signal(sig)
        return time.time()

    def freeze(self, node: str) -> float:
        """SIGSTOP: a silent site (no TCP close); returns when."""
        return self.signal(node, signal.SIGSTOP)

    def thaw(self, node: str) -> float:
        return self.signal(node, signal.SIGCONT)

    def kill(self, node: str) -> float:
        """SIGKILL: the process dies, the kernel closes its socket, the broker sends the Will at once."""
        at = self.signal(node, signal.SIGKILL)
        self.agents[node].wait(10)
        return at

    def alerts(self, query: str = "") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.cloud.get_json(f"/api/v1/alerts{query}")
        return result


def _notice(kind: str, subject: str, after: float) -> Callable[[dict[str, Any]], bool]:
    """Matches a notice of ``kind`` about ``subject`` judged after ``after`` (epoch s)."""
    return lambda x: x["kind"] == kind and x["subject"] == subject and x["at"] >= after


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def agent_settings(profile: str) -> dict[str, Any]:
    """Agent overrides of a profile: "shipped" is edge/sample.yaml's health, readings and
    keepalive (health every 300 s: only the keepalive and the Will can alert within 20 s);
    "default" is the agent's own defaults (health every 10 s)."""
    if profile == "default":
        return {}
    from commune_iot.bench.link import shipped_profile

    p = shipped_profile()
    return {
        "health_interval_s": p["health_interval_s"],
        "sim_interval_s": p["sim_interval_s"],
        "keepalive_s": int(p["keepalive_s"]),
        "check_link_s": p["check_link_s"] or None,
        "compress": bool(p["compress"]),
    }


def main(
    trials: int = 20,
    run_dir: Path | None = None,
    seed: int | None = None,
    profile: str = "shipped",
    keepalive_s: int | None = None,
) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-outage-"))
    rng = random.Random(seed)
    lanes = {"da-ron": "dr-ap-01", "tu-tra": "tt-ap-01", "lac-xuan": "lx-ap-01"}
    devices = {d["node"]: d for d in load_devices()}
    lanes = {c: n for c, n in lanes.items() if n in devices} or {
        d["commune"]: d["node"] for d in reversed(list(devices.values()))
    }
    latencies: list[float] = []
    lock = threading.Lock()
    settings = agent_settings(profile)
    if keepalive_s is not None:  # what another keepalive would give (the bytes: bench link)
        settings["keepalive_s"] = keepalive_s
        if (settings.get("check_link_s") or 0) < keepalive_s:
            settings["check_link_s"] = None  # a link check every keepalive, as MQTT clients do
    health = float(settings.get("health_interval_s", 10.0))
    # a freeze lands at a random point of the keepalive's ping cycle (what decides the Will) and,
    # with the agent's defaults, of the 10 s heartbeat too
    interval = float(settings.get("keepalive_s", 10))
    print(
        f"{trials} trials: freeze an agent (SIGSTOP) at a random point of its {interval:.0f} s keepalive, "
        f"time until the webhook notice; {profile} profile (health every {health:.0f} s, "
        f"keepalive {interval:.0f} s)",
        flush=True,
    )
    with OutageRig.running(base, list(lanes.values()), agent_overrides=settings) as rig:
        per_lane = {
            c: trials // len(lanes) + (1 if i < trials % len(lanes) else 0) for i, c in enumerate(lanes)
        }

        def lane(commune: str, node: str, n: int) -> None:
            for _ in range(n):
                time.sleep(rng.uniform(0, interval))
                t0 = rig.freeze(node)
                got = rig.sink.wait_for(_notice("open", node, t0 - 1), 90, node)
                took = got.at - t0
                with lock:
                    latencies.append(took)
                    print(
                        f"  {node}: notified {took:.1f} s after the freeze ({got.notice['cause']})",
                        flush=True,
                    )
                rig.thaw(node)
                rig.sink.wait_for(_notice("resolve", node, t0), 120, node)

        threads = [threading.Thread(target=lane, args=(c, lanes[c], per_lane[c]), daemon=True) for c in lanes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if len(latencies) < trials:
        raise SystemExit(f"only {len(latencies)} of {trials} trials completed; see {base}")
    print(
        f"uplink cost of this profile (health every {health:.0f} s, keepalive {interval:.0f} s): "
        "measured by `commune-iot bench link --profile ...` (docs/field.md)",
        flush=True,
    )
    result = {
        "profile": profile,
        "health_interval_s": health,
        "keepalive_s": interval,
        "trials": len(latencies),
        "p50_s": round(statistics.median(latencies), 2),
        "p95_s": round(_percentile(latencies, 0.95), 2),
        "max_s": round(max(latencies), 2),
    }
    print(json.dumps(result))
    return 0
