"""Object labels in the police event log: labels a board sent, labels the cloud found (none on
the seeded synthetic pictures), the object filter of the API, and the evidence export that can
require a label. (The web page and its filter: tests/camera/test_camera_labels.py, in a browser.)

The portal's cloud labels snapshots itself (``labels.enabled: true``); the seeded events'
pictures are drawn, not filmed, so the model finds nothing in them: their labels are ``[]``.
That they are labelled at all is the path the demo's simulated cameras take.
"""

from __future__ import annotations

import time

from web_helpers import camera_event, local, publish, replayed
from web_portal import Portal

from wire import Box, Label

BOARD = [
    Label(label="person", confidence=0.91, box=Box(x=0.3, y=0.3, w=0.1, h=0.4)),
    Label(label="motorcycle", confidence=0.74, box=Box(x=0.28, y=0.45, w=0.16, h=0.3)),
    Label(label="dog", confidence=0.66),  # seen only in an earlier snapshot: no box
]


def _send_board_labelled(portal: Portal) -> int:
    ev = camera_event(
        "da-ron", "dr-cam-02", 90, local(2026, 11, 22, 2, 10), 14, session="b0a4d1ab", labels=BOARD
    )
    publish(portal.broker.port, ev.messages)
    admin = portal.api("admin")
    deadline = time.monotonic() + 20
    while True:
        _, body = admin.get("/api/v1/events?device=dr-cam-02&limit=100")
        mine = [e for e in body["events"] if e["event_id"] == ev.event_id and e["end"] and e["has_snapshot"]]
        if mine:
            pk: int = mine[0]["id"]
            break
        assert time.monotonic() < deadline, "the board-labelled event never arrived"
        time.sleep(0.1)
    publish(portal.broker.port, replayed(ev))  # a replay changes nothing
    return pk


def test_labels_reach_the_api_and_filter_the_event_log(portal: Portal) -> None:
    officer = portal.api("ca-daron")
    status, body = officer.get("/api/v1/events?limit=100")
    assert status == 200
    seeded = {e["event_id"]: e for e in body["events"]}
    assert seeded and all(e["labels"] == [] and e["labels_source"] == "cloud" for e in seeded.values())

    pk = _send_board_labelled(portal)
    _, ev = officer.get(f"/api/v1/events/{pk}")
    assert [(x["label"], x["name"]) for x in ev["labels"]] == [
        ("person", "người"),
        ("motorcycle", "xe máy"),
        ("dog", "chó"),
    ]
    assert ev["labels"][0]["box"] == {"x": 0.3, "y": 0.3, "w": 0.1, "h": 0.4}
    assert ev["labels"][2]["box"] is None
    assert ev["labels_source"] == "edge"

    def ids(query: str) -> set[int]:
        status, page = officer.get("/api/v1/events?limit=500&" + query)
        assert status == 200, page
        return {e["id"] for e in page["events"]}

    everything = ids("")
    assert ids("label=person") == {pk}
    assert ids("label=vehicle") == {pk}  # a motorbike is a vehicle
    assert ids("label=motorcycle") == {pk}
    assert ids("label=car") == set()
    assert ids("label=animal") == {pk}
    assert ids("labelled=true") == {pk}
    assert ids("labelled=false") == everything - {pk}  # kept, and can be hidden
    status, err = officer.get("/api/v1/events?label=umbrella")
    assert status == 422 and "umbrella" in err["detail"]

    # The cloud leaves the board's labels alone, however long it runs.
    admin = portal.api("admin")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        _, again = admin.get(f"/api/v1/events/{pk}")
        assert again["labels_source"] == "edge" and len(again["labels"]) == 3
        time.sleep(0.5)

    # Exports can require a label: an event without it is refused, naming it.
    other = next(iter(everything - {pk}))
    status, err = officer.post(
        "/api/v1/exports", {"event_ids": [pk, other], "reason": "tra cứu", "require_label": "person"}
    )
    assert status == 422 and str(other) in err["detail"], err
    status, rec = officer.post(
        "/api/v1/exports", {"event_ids": [pk], "reason": "tra cứu", "require_label": "vehicle"}
    )
    assert status == 201 and rec["events"] == [pk], rec
