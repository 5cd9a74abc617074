"""Police event notifications scoped by label (issue 19 part 2), end to end: labelled events
from boards through the real Mosquitto into the real cloud service, whose rules tell a real
HTTP receiver (the commune police's webhook). What an officer notices: "a person at
Ngã ba trung tâm xã at 02:10" arrives once, in Vietnamese then English, with a link to the
event page behind the login; a dog, a person in the afternoon, another commune's person do
not; the same event replayed, relabelled or judged again after a cloud restart is not told
twice; the technicians' channel carries none of it, the police channel no technician alert;
and the audit trail says who was told what.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from local_http import LocalHttp, local_http
from paho.mqtt.enums import CallbackAPIVersion
from support import lab_cloud_config

from cloud.audit.trail import AuditTrail
from cloud.config import CloudConfig
from cloud.storage.sql import SqlStore
from commune_iot.fleet import CloudProcess
from commune_iot.localsvc import InfluxDB, Mosquitto
from wire import Channel, MotionEvent, encode, topic_for
from wire.topics import HOST_STATE_PREFIX

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
RULES: list[dict[str, Any]] = [
    {
        "name": "nguoi-ban-dem",
        "communes": ["da-ron"],
        "require_label": "person",
        "min_confidence": 0.6,
        "hours": "22:00-05:00",
        "notifiers": ["cong-an-da-ron"],
    },
    {
        "name": "xe-cong-cho",
        "communes": ["da-ron"],
        "cameras": ["dr-cam-02"],
        "require_label": "vehicle",
        "notifiers": ["cong-an-da-ron"],
    },
]


def _at(hh: int, mm: int) -> datetime:
    """Today's (local) hh:mm, in UTC; the early hours of today are in the past."""
    now = datetime.now(LOCAL)
    local = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if local > now:
        local -= timedelta(days=1)
    return local.astimezone(UTC)


class Board:
    """A camera board's messages, published through the real broker with QoS 1."""

    def __init__(self, broker: Mosquitto, commune: str, node: str) -> None:
        self.commune, self.node = commune, node
        self.session = uuid.uuid4().hex[:8]
        self.seq = 0
        self.sent: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def event(
        self, event_id: str, start: datetime, labels: list[tuple[str, float]], *, replay: bool = False
    ) -> None:
        """The event's start and end messages, each with the board's labels."""
        for phase in ("start", "end"):
            self.seq += 1
            msg = MotionEvent(
                node=self.node,
                session=self.session,
                seq=self.seq,
                ts=start + timedelta(seconds=4 if phase == "end" else 0),
                replay=replay,
                event_id=event_id,
                device=self.node,
                phase=phase,  # type: ignore[arg-type]
                start=start,
                end=start + timedelta(seconds=4) if phase == "end" else None,
                peak_area_pct=3.0,
                score=0.7,
                labels=[
                    {"label": name, "confidence": conf, "box": {"x": 0.4, "y": 0.3, "w": 0.1, "h": 0.3}}
                    for name, conf in labels
                ],  # type: ignore[misc]
            )
            self.publish(topic_for(self.commune, self.node, Channel.EVENT), encode(msg))

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(30)
        self.sent.append((topic, payload))

    def restarted(self) -> None:
        """A new agent session (its sequence numbers start again)."""
        self.session, self.seq = uuid.uuid4().hex[:8], 0

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_cloud_subscribed(broker: Mosquitto, worker: str, timeout: float = 30.0) -> None:
    """The cloud worker says, live, that it is subscribed (what a board waits for, too)."""
    online = threading.Event()

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError):
            if json.loads(m.payload).get("online") is True:
                online.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.connect("127.0.0.1", broker.port)
    c.subscribe(f"{HOST_STATE_PREFIX}/{worker}", qos=1)
    c.loop_start()
    try:
        assert online.wait(timeout), f"cloud worker {worker} never said it is subscribed"
    finally:
        c.disconnect()
        c.loop_stop()


def _events(hook: LocalHttp) -> list[dict[str, Any]]:
    return [r.json() for r in hook.requests if r.json()["notice"]["kind"] == "event"]


def _wait_notice(
    hook: LocalHttp, event_id: str, cloud: CloudProcess, timeout: float = 30.0
) -> dict[str, Any]:
    """The police notice of the board's event ``event_id`` (found through the API)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = cloud.get_json("/api/v1/events?limit=100")["events"]
        pk = next((e["id"] for e in rows if e["event_id"] == event_id), None)
        got = [b for b in _events(hook) if pk is not None and b["notice"]["event_id"] == pk]
        if got:
            return got[0]
        assert time.monotonic() < deadline, f"no notice of {event_id}: {_events(hook)}"
        with hook.arrived:
            hook.arrived.wait(0.5)


def _get(url: str) -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_a: Any, **_k: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as r:
            return int(r.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers.get("Location", "")


def test_a_person_at_night_is_told_to_the_police_once_and_nothing_else_is(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB
) -> None:
    cfg = lab_cloud_config(tmp_path, mosquitto.url, influx_server, "evnotify")
    stack = contextlib.ExitStack()
    police = stack.enter_context(local_http(lambda _r, _i: (200, {"ok": True})))
    technicians = stack.enter_context(local_http(lambda _r, _i: (200, {"ok": True})))
    cfg["alerting"] = {
        "settle_s": 1.0,
        "grace_s": 1.0,
        "notify": {
            "webhooks": [
                {"name": "ky-thuat", "url": technicians.url},
                {"name": "cong-an-da-ron", "url": police.url, "alerts": False},
            ],
            "event_rules": RULES,
        },
    }
    public = f"http://127.0.0.1:{cfg['http']['port']}"
    cfg["web"] = {"public_url": public}
    cloud = CloudProcess.write(tmp_path, cfg)
    worker = CloudConfig.model_validate(cfg).mqtt.effective_client_id("serve")
    boards: list[Board] = []
    try:
        cloud.start()
        _wait_cloud_subscribed(mosquitto, worker)
        cam1, cam2 = Board(mosquitto, "da-ron", "dr-cam-01"), Board(mosquitto, "da-ron", "dr-cam-02")
        tutra = Board(mosquitto, "tu-tra", "tt-cam-01")
        boards += [cam1, cam2, tutra]
        cam1.event("ev-afternoon", _at(14, 0), [("person", 0.9)])  # outside the rule's hours
        cam1.event("ev-dog", _at(2, 30), [("dog", 0.8)])  # labels lack the class
        cam1.event("ev-faint", _at(2, 35), [("person", 0.52)])  # below the rule's confidence
        tutra.event("ev-tutra", _at(2, 10), [("person", 0.9)])  # another commune's
        cam2.event("ev-moto", _at(2, 20), [("motorcycle", 0.8)])
        sent_at = time.monotonic()
        cam1.event("ev-gate", _at(2, 10), [("person", 0.87), ("dog", 0.7)])

        gate = _wait_notice(police, "ev-gate", cloud)
        print(f"board-labelled event published -> police webhook: {time.monotonic() - sent_at:.2f} s")
        moto = _wait_notice(police, "ev-moto", cloud)
        text = gate["text"]
        assert text.startswith(
            "🔔 Phát hiện người tại Ngã ba trung tâm xã, camera dr-cam-01 (Đạ Ròn) lúc 02:10"
        )
        assert "Độ tin cậy 87%" in text and "quy tắc nguoi-ban-dem" in text
        assert "Person detected at Ngã ba trung tâm xã, camera dr-cam-01 (Đạ Ròn) at 02:10" in text
        assert text.index("Phát hiện người") < text.index("Person detected")
        url = f"{public}/events/{gate['notice']['event_id']}"
        assert gate["url"] == url and url in text
        assert "snapshot" not in text and "/api/" not in text  # no picture to a third party
        assert gate["notice"]["snapshot_sha256"] == ""
        assert "Phát hiện xe máy tại Cổng chợ" in moto["text"] and "Motorbike detected" in moto["text"]
        # the link leads to the login, not to the event
        status, where = _get(url)
        assert status in (302, 303) and where.startswith("/login"), (status, where)

        # Redelivered as is, replayed from a restarted board's outbox with a new label, and the
        # cloud restarted: still one notice per event and rule.
        for topic, payload in list(cam1.sent):
            cam1.publish(topic, payload)
        cam1.restarted()
        cam1.event("ev-gate", _at(2, 10), [("person", 0.91), ("car", 0.6)], replay=True)
        cam1.event("ev-barrier-1", _at(3, 0), [("person", 0.8)])
        _wait_notice(police, "ev-barrier-1", cloud)  # judged after the replays (ingest order)
        cloud.stop()
        cloud.start()
        _wait_cloud_subscribed(mosquitto, worker)
        cam1.event("ev-barrier-2", _at(3, 5), [("person", 0.8)])
        _wait_notice(police, "ev-barrier-2", cloud)

        ids = {e["id"]: e["event_id"] for e in cloud.get_json("/api/v1/events?limit=100")["events"]}
        told = sorted((ids[b["notice"]["event_id"]], b["notice"]["rule"]) for b in _events(police))
        assert told == [
            ("ev-barrier-1", "nguoi-ban-dem"),
            ("ev-barrier-2", "nguoi-ban-dem"),
            ("ev-gate", "nguoi-ban-dem"),
            ("ev-moto", "xe-cong-cho"),
        ], told
        # the event says who was told, in the API and on its page
        gate_id = gate["notice"]["event_id"]
        detail = cloud.get_json(f"/api/v1/events/{gate_id}")
        assert [(n["rule"], n["label"], n["notifiers"]) for n in detail["notified"]] == [
            ("nguoi-ban-dem", "person", ["cong-an-da-ron"])
        ]
        with urllib.request.urlopen(cloud.request(f"/events/{gate_id}"), timeout=10) as r:
            page = r.read().decode()
        told_on_page = page[page.index('id="notified"') :]
        assert "Đã báo tin" in page and "quy tắc nguoi-ban-dem" in told_on_page
        assert "tới cong-an-da-ron" in told_on_page
        # police events never reach the technicians; technician alerts never reach the police
        assert _events(technicians) == []
        assert all(r.json()["notice"]["kind"] == "event" for r in police.requests)

        # on record: who was told what
        sql = SqlStore(cfg["sql"]["url"])
        try:
            entries = AuditTrail(sql.engine).entries(action="event_notified", newest_first=False)
        finally:
            sql.dispose()
        assert len(entries) == 4, entries
        first = next(e for e in entries if e.target == f"event:{gate['notice']['event_id']}")
        assert first.commune == "da-ron" and first.actor == "system"
        assert first.detail["notifier"] == "cong-an-da-ron" and first.detail["to"] == police.url + "/"
        assert first.detail["rule"] == "nguoi-ban-dem" and first.detail["label"] == "person"
        assert first.detail["url"] == url
    finally:
        for b in boards:
            b.close()
        cloud.stop()
        stack.close()


def test_the_cloud_labels_a_snapshot_of_people_and_the_police_are_told_once(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB
) -> None:
    """A board that does not label: it sends its snapshot (the PETS walkers, frame 150 of the
    shared clip) and the event; the cloud's labeller finds the people, and that wakes the rule
    requiring ``person``; the rule requiring ``truck`` stays silent."""
    import sys

    import cv2

    sys.path.append(str(Path(__file__).resolve().parents[1] / "camera"))
    from camera_helpers import need_clips
    from support import need_model

    cap = cv2.VideoCapture(str(need_clips() / "pets2009_illumination" / "video.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 150)
    ok, frame = cap.read()
    cap.release()
    assert ok
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    cfg = lab_cloud_config(tmp_path, mosquitto.url, influx_server, "evlabel")
    cfg["labels"] = {"enabled": True, "model": str(need_model())}
    stack = contextlib.ExitStack()
    police = stack.enter_context(local_http(lambda _r, _i: (200, {"ok": True})))
    rule = {"communes": ["da-ron"], "notifiers": ["cong-an-da-ron"]}
    cfg["alerting"] = {
        "notify": {
            "webhooks": [{"name": "cong-an-da-ron", "url": police.url, "alerts": False}],
            "event_rules": [
                {"name": "nguoi", "require_label": "person", **rule},
                {"name": "xe-tai", "require_label": "truck", **rule},
            ],
        },
    }
    cloud = CloudProcess.write(tmp_path, cfg)
    worker = CloudConfig.model_validate(cfg).mqtt.effective_client_id("serve")
    board: Board | None = None
    try:
        cloud.start()
        _wait_cloud_subscribed(mosquitto, worker)
        board = Board(mosquitto, "da-ron", "dr-cam-01")
        start = datetime.now(UTC) - timedelta(seconds=20)
        board.publish(topic_for("da-ron", "dr-cam-01", Channel.SNAPSHOT, "ev-walkers"), jpeg)
        board.seq += 1
        walkers = [  # where two of the walkers moved in that frame (as the detector reports them)
            {"x": 97 / 768, "y": 427 / 576, "w": 36 / 768, "h": 78 / 576},
            {"x": 484 / 768, "y": 350 / 576, "w": 24 / 768, "h": 55 / 576},
        ]
        msg = MotionEvent(
            node="dr-cam-01",
            session=board.session,
            seq=board.seq,
            ts=start + timedelta(seconds=3),
            event_id="ev-walkers",
            device="dr-cam-01",
            phase="end",
            start=start,
            end=start + timedelta(seconds=3),
            peak_area_pct=1.0,
            boxes=walkers,  # type: ignore[arg-type]
            snapshot_boxes=walkers,  # type: ignore[arg-type]
            snapshot_sha256=hashlib.sha256(jpeg).hexdigest(),
            snapshot_bytes=len(jpeg),
        )
        sent_at = time.monotonic()
        board.publish(topic_for("da-ron", "dr-cam-01", Channel.EVENT), encode(msg))
        told = _wait_notice(police, "ev-walkers", cloud, timeout=60)
        print(f"event + snapshot published -> labelled -> police webhook: {time.monotonic() - sent_at:.2f} s")
        assert told["notice"]["rule"] == "nguoi" and told["notice"]["label"] == "person"
        assert "Phát hiện người tại Ngã ba trung tâm xã" in told["text"]
        ev = cloud.get_json(f"/api/v1/events/{told['notice']['event_id']}")
        assert ev["labels_source"] == "cloud" and "truck" not in [x["label"] for x in ev["labels"]]
        # the truck rule was judged in the same pass: nothing else was, or will be, told
        assert [b["notice"]["rule"] for b in _events(police)] == ["nguoi"]
        assert "police event notifications: rule nguoi announces event" in cloud.log_path.read_text()
    finally:
        if board is not None:
            board.close()
        cloud.stop()
        stack.close()


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ({"require_label": "umbrella"}, "require_label 'umbrella' is not a label an event can carry"),
        ({"notifiers": ["nobody"]}, "no notifier is named 'nobody'"),
        ({"hours": "22:00-25:00"}, "'25:00' is not a time"),
        ({"hours": "22h-5h"}, "'22h' is not a time"),
    ],
)
def test_a_wrong_rule_stops_the_start_with_what_is_wrong(rule: dict[str, Any], why: str) -> None:
    from pydantic import ValidationError

    from cloud.notify.settings import NotifyConfig

    with pytest.raises(ValidationError) as err:
        NotifyConfig.model_validate(
            {
                "webhooks": [{"name": "cong-an", "url": "http://127.0.0.1:9/"}],
                "event_rules": [{"name": "r", "communes": ["da-ron"], "notifiers": ["cong-an"], **rule}],
            }
        )
    assert why in str(err.value), str(err.value)


def _record(event_id: str, start: float, labels: list[dict[str, Any]] | None) -> Any:
    from cloud.events.store import EventRecord

    return EventRecord(
        device="dr-cam-01",
        event_id=event_id,
        node="dr-cam-01",
        commune="da-ron",
        site="dr-diem-01",
        phase="end",
        start=start,
        end=start + 4,
        msg_ts=start + 4,
        peak_area_pct=3.0,
        boxes=[],
        zones=[],
        score=0.7,
        frames=20,
        snapshot_sha256=None,
        labels=labels,
    )


def test_two_workers_judging_together_tell_each_event_once_and_a_later_person_is_told(
    sql_url: str,
) -> None:
    """Several cloud workers share the database: whichever judges first tells, the other finds it
    told. An event first unlabelled (the cloud labels its snapshot a moment later) is told once
    its labels show the person."""
    from cloud.events.announce import EventAnnouncer
    from cloud.events.store import events, upsert_events
    from cloud.notify.settings import NotifyConfig
    from cloud.storage.notice_outbox import SqlNoticeQueue, notice_outbox

    cfg = NotifyConfig.model_validate(
        {
            "webhooks": [{"name": "cong-an-da-ron", "url": "http://127.0.0.1:9/", "alerts": False}],
            "event_rules": RULES,
        }
    )
    sql = SqlStore(sql_url)
    SqlNoticeQueue(sql.engine)
    night = _at(2, 10).timestamp()
    person = [{"label": "person", "confidence": 0.8}]
    with sql.engine.begin() as conn:
        upsert_events(conn, sql._insert, [_record(f"ev-{i}", night + i, person) for i in range(30)])
        upsert_events(conn, sql._insert, [_record("ev-late", night + 60, None)])
    workers = [EventAnnouncer(cfg, sql.engine, lambda: None) for _ in range(2)]
    queued = [0, 0]

    def judge(i: int) -> None:
        queued[i] = workers[i].judge(time.time())

    threads = [threading.Thread(target=judge, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(queued) == 30, queued

    # the cloud's labeller finds the person on the late event's snapshot
    with sql.engine.begin() as conn:
        conn.execute(
            events.update()
            .where(events.c.event_id == "ev-late")
            .values(labels=json.dumps(person), label_set=",person,", labels_source="cloud")
        )
    assert workers[1].judge(time.time()) == 1
    assert workers[0].judge(time.time()) == 0
    with sql.engine.connect() as conn:
        keys = [
            json.loads(p)["key"]
            for p in conn.execute(notice_outbox.select().with_only_columns(notice_outbox.c.payload)).scalars()
        ]
    sql.dispose()
    assert len(keys) == len(set(keys)) == 31, keys
