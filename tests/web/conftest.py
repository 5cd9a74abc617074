"""A running portal for the web tests: a real broker, InfluxDB and ``cloud serve`` process,
users made the way an operator makes them, and motion events sent through MQTT the way
camera agents send them (so the event store is filled by the real ingest path)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from web_helpers import Api, SentEvent, camera_event, local, publish

from cloud.auth.roles import Role
from cloud.auth.users import UserStore
from cloud.storage.sql import SqlStore
from commune_iot.fleet import CloudProcess, cloud_config
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

PASSWORDS = {
    "admin": "quan-tri-2026!",
    "ca-daron": "cong-an-da-ron-1",
    "ca-tutra": "cong-an-tu-tra-1",
    "mic-lamdong": "so-tttt-lam-dong",
    "kythuat": "ky-thuat-vien-1",
}
ROLES = {
    "admin": ({Role.ADMIN}, set()),
    "ca-daron": ({Role.POLICE}, {"da-ron"}),
    "ca-tutra": ({Role.POLICE}, {"tu-tra"}),
    "mic-lamdong": ({Role.MIC}, set()),
    "kythuat": ({Role.TECHNICIAN}, set()),
}
NAMES = {"ca-daron": "Công an xã Đạ Ròn", "ca-tutra": "Công an xã Tu Tra"}

#: (commune, camera, local start, duration s) of the seeded events.
SEED: list[tuple[str, str, datetime, float]] = [
    ("da-ron", "dr-cam-01", local(2026, 11, 20, 6, 30), 5),
    ("da-ron", "dr-cam-01", local(2026, 11, 20, 9, 15), 20),
    ("da-ron", "dr-cam-01", local(2026, 11, 20, 13, 0), 45),
    ("da-ron", "dr-cam-02", local(2026, 11, 20, 19, 45), 8),
    ("da-ron", "dr-cam-02", local(2026, 11, 20, 22, 10), 90),
    ("da-ron", "dr-cam-03", local(2026, 11, 21, 23, 30), 30),
    ("tu-tra", "tt-cam-01", local(2026, 11, 20, 10, 0), 12),
    ("tu-tra", "tt-cam-01", local(2026, 11, 20, 21, 0), 40),
    ("tu-tra", "tt-cam-02", local(2026, 11, 21, 8, 0), 15),
]


@dataclass
class Portal:
    url: str
    cloud: CloudProcess
    broker: Mosquitto
    sql_url: str
    tokens: dict[str, str]
    sent: list[SentEvent]
    ids: dict[str, int] = field(default_factory=dict)  # event_id -> row id
    artifacts: Path = Path("var/artifacts")

    def api(self, user: str | None) -> Api:
        return Api(self.url, self.tokens[user] if user else None)

    def ids_of(self, commune: str) -> list[int]:
        return [self.ids[e.event_id] for e in self.sent if e.commune == commune]


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxDB) -> Iterator[Portal]:
    run = tmp_path_factory.mktemp("portal")
    broker = Mosquitto(run / "broker").start()
    pw_file = run / "influx.pw"
    pw_file.write_text(influx_server.password)
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx_server.url,
        influx_db=f"web_{os.getpid()}_{run.name}".replace("-", "_"),
        influx_user=influx_server.username,
        influx_password_file=pw_file,
        state_dir=run / "state",
        http_port=free_port(),
        client_id=f"web-{run.name}",
    )
    cfg["events"] = {"exports_dir": str(run / "state" / "exports")}
    cloud = CloudProcess.write(run, cfg)
    sql = SqlStore(cfg["sql"]["url"])
    users = UserStore(sql.engine)
    tokens = {}
    for name, (roles, communes) in ROLES.items():
        users.add(
            name,
            PASSWORDS[name],
            frozenset(roles),
            communes=frozenset(communes),
            display_name=NAMES.get(name, ""),
        )
        tokens[name] = users.create_token(name, "tests")
    sql.dispose()
    try:
        cloud.start()
        _wait_ready(cloud)
        sent = [camera_event(c, d, i, start, dur) for i, (c, d, start, dur) in enumerate(SEED)]
        publish(broker.port, [m for ev in sent for m in ev.messages])
        p = Portal(cloud.url, cloud, broker, cfg["sql"]["url"], tokens, sent)
        p.artifacts = Path(os.environ.get("CIOT_ARTIFACTS", "var/artifacts"))
        p.artifacts.mkdir(parents=True, exist_ok=True)
        _wait_stored(p)
        yield p
    finally:
        cloud.stop()
        broker.stop()


def _wait_ready(cloud: CloudProcess, timeout: float = 30.0) -> None:
    """Until ingest is subscribed: messages sent before that would find no session to queue in."""
    import time

    deadline = time.monotonic() + timeout
    while cloud.get_status("/readyz") != 200:
        assert time.monotonic() < deadline, "cloud never became ready"
        time.sleep(0.1)


def _wait_stored(p: Portal, timeout: float = 30.0) -> None:
    """Until every seeded event is stored with its snapshot (ingest is asynchronous)."""
    import time

    admin = p.api("admin")
    deadline = time.monotonic() + timeout
    while True:
        status, body = admin.get("/api/v1/events?limit=500")
        assert status == 200, body
        done = {e["event_id"]: e for e in body["events"] if e["has_snapshot"] and e["end"]}
        if len(done) >= len(p.sent):
            p.ids = {k: v["id"] for k, v in done.items()}
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(done)} of {len(p.sent)} events stored after {timeout:.0f} s")
        time.sleep(0.1)
