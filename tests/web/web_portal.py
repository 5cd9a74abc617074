"""The portal the web tests run against: a real broker, InfluxDB and ``cloud serve`` process,
users made the way an operator makes them, and motion events sent through MQTT the way
camera agents send them (so the event store is filled by the real ingest path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from web_helpers import Api, SentEvent, local

from cloud.auth.roles import Role
from commune_iot.fleet import CloudProcess
from commune_iot.localsvc import Mosquitto

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
NAMES = {
    "ca-daron": "Công an xã Đạ Ròn",
    "ca-tutra": "Công an xã Tu Tra",
    "mic-lamdong": "Sở Thông tin và Truyền thông Lâm Đồng",
}

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


def wait_ready(cloud: CloudProcess, timeout: float = 30.0) -> None:
    """Until ingest is subscribed: messages sent before that would find no session to queue in."""
    import time

    deadline = time.monotonic() + timeout
    while cloud.get_status("/readyz") != 200:
        assert time.monotonic() < deadline, "cloud never became ready"
        time.sleep(0.1)


def wait_stored(p: Portal, timeout: float = 30.0) -> None:
    """Until every seeded event is stored with its snapshot and the cloud has labelled it
    (ingest and labelling are asynchronous; the synthetic pictures show no object, so their
    labels are ``[]``)."""
    import time

    admin = p.api("admin")
    deadline = time.monotonic() + timeout
    while True:
        status, body = admin.get("/api/v1/events?limit=500")
        assert status == 200, body
        done = {
            e["event_id"]: e
            for e in body["events"]
            if e["has_snapshot"] and e["end"] and e["labels"] is not None
        }
        if len(done) >= len(p.sent):
            p.ids = {k: v["id"] for k, v in done.items()}
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(done)} of {len(p.sent)} events stored after {timeout:.0f} s")
        time.sleep(0.1)
