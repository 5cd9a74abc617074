"""What a technician sees in Grafana when the boards run the shipped 3G profile.

The shipped board profile (``edge/sample.yaml``, the provisioning bundles) sends health every
300 s, AP readings and camera stream health every 300 s (state changes at once), motion
events as they happen; the cloud writes ``device_state`` every 30 s and its own ``cloud``
point every 10 s. The query proof in ``test_grafana_queries.py`` runs agents at 2 s, so it
cannot show what 5-minute points look like in 10 s to 20 min buckets.

Here 26 hours of that history are written into a real InfluxDB: the messages are built by
the agent's own code (``SimAccessPoint.sample``, ``SimCamera.stream_point`` and
``motion_event``, ``wire.Health``), encoded and converted to line protocol by the cloud's
``Converter``; ``device_state`` by ``state_lines``, outages by ``outage_lines``, with the
retention policies ``ensure_retention`` makes. (Running the real pipeline for 26 hours is
not possible in a test.) In that history one camera board lost power for 40 minutes and came
back, one AP board's uplink was down for 30 minutes (it kept its readings and replayed them),
and one AP board lost power 50 minutes ago and is still dark. The same history is also
written at the agent's own defaults (health and camera every 10 s, AP readings every 30 s,
wired and lab boards), so nothing done for 300 s hides a silence at the fast cadence.

Every panel's query is then run as Grafana runs it for a 6 h, 24 h and 7 d range, with
``$__interval`` from the panel's width in pixels (Grafana's max data points), and the result
is judged the way Grafana draws it: a run of nulls between two values is bridged only when
the two values are less than the panel's ``spanNulls`` apart (Grafana's
``nullToUndefThreshold``), in time series and state timelines alike.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import influx_query

from cloud.alerting.outages import outage_lines
from cloud.alerting.states import state_lines
from cloud.ingest.convert import Converted, Converter
from cloud.inventory import Inventory, load_inventory
from cloud.notify.messages import Notice
from cloud.storage.alerts_sql import AlertRow
from cloud.storage.influx import InfluxClient, WriteOutcome
from cloud.storage.lineproto import join, line
from cloud.storage.retention import ROLLUP_POLICY, ensure_retention
from commune_iot.grafana.dashboards import all_dashboards
from commune_iot.grafana.macros import interval_s, render
from commune_iot.grafana.model import Dashboard
from commune_iot.localsvc import InfluxDB
from edge.collectors.sim_ap import SimAccessPoint, SimAPOptions
from edge.collectors.sim_camera import SimCamera, SimCameraOptions
from wire import Health, Metrics, MotionEvent, encode
from wire.topics import Channel, topic_for

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Profile:
    """How often a board sends: health, camera stream health, AP readings (seconds)."""

    name: str
    health_s: float
    camera_s: float
    ap_s: float

    def report_s(self, node: str) -> float:
        return max(self.health_s, self.camera_s if node in CAMS else self.ap_s)


#: edge/sample.yaml and the provisioning bundles
SHIPPED = Profile("shipped-300s", 300.0, 300.0, 300.0)
#: the agent's own defaults (wired and lab boards): what test_grafana_queries.py runs faster still
AGENT_DEFAULTS = Profile("agent-defaults-10s", 10.0, 10.0, 30.0)
STATES_S = 30.0  # device_state (alerting.states_s)
CLOUD_S = 10.0  # the cloud's own figures
HISTORY_S = 26 * 3600
WILL_S = 20.0  # a dark board's Will reaches the cloud within 20 s (docs/field.md)
#: A dashboard's width on a 1920 px screen; Grafana's max data points is the panel's width in px.
SCREEN_PX = 1850
#: A board silent longer than this must show as a gap (docs/field.md: lines bridge up to 11 minutes).
VISIBLE_SILENCE_S = 11 * 60
RANGES = {"6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 86400}

CAMS = ("dr-cam-01", "tt-cam-01")
APS = ("dr-ap-01", "tt-ap-01")
DEAD = "tt-ap-01"  # lost power 50 minutes ago, still dark
DEAD_FOR_S = 50 * 60
POWER_CUT = ("dr-cam-01", 5 * 3600, 4 * 3600 + 20 * 60)  # board dark from now-5h to now-4h20m
AP_REBOOT = ("tt-ap-01", 3 * 3600)  # the access point (not its board) rebooted at now-3h
LINK_DOWN = ("dr-ap-01", 3 * 3600, 2 * 3600 + 30 * 60)  # uplink down, readings kept and replayed


@dataclass
class Board:
    node: str
    commune: str
    #: (start, end) when the board produced nothing (power): no point can exist there
    dark: list[tuple[float, float]] = field(default_factory=list)
    #: (start, end) when the cloud judged it offline (dark, or its uplink down)
    offline: list[tuple[float, float]] = field(default_factory=list)
    received: list[float] = field(default_factory=list)  # cloud receive times, for last_seen

    def is_dark(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.dark)

    def is_offline(self, t: float) -> bool:
        return any(a + WILL_S <= t < b for a, b in self.offline)

    def last_seen(self, t: float) -> float | None:
        i = bisect.bisect_right(self.received, t)
        return self.received[i - 1] if i else None


@dataclass
class History:
    influx: InfluxDB
    db: str
    profile: Profile
    now: float
    boards: dict[str, Board]

    def run(self, query: str, variables: dict[str, list[str]], range_s: int, px: int) -> list[dict[str, Any]]:
        to_ms = int(self.now * 1000)
        from_ms = to_ms - range_s * 1000
        return influx_query(self.influx, self.db, render(query, from_ms, to_ms, variables, max_points=px))


def _alert(board: Board, started: float) -> AlertRow:
    """The open node alert of a dark board, as the SQL store returns it (state_lines counts it)."""
    values: dict[str, Any] = {f.name: None for f in dataclasses.fields(AlertRow)}
    values.update(
        id=1,
        key=f"node:{board.node}",
        scope="node",
        subject=board.node,
        commune=board.commune,
        cause="will",
        severity="critical",
        problem="",
        detail="",
        state="open",
        started_at=started,
        opened_at=started + WILL_S,
        flaps=0,
        down=1,
        total=1,
        members=(),
        suppressed=False,
        reminders=0,
    )
    return AlertRow(**values)


def _health(
    node: str, session: str, seq: int, ts: datetime, rng: random.Random, depth: int, up_s: float
) -> Health:
    return Health(
        node=node,
        session=session,
        seq=seq,
        ts=ts,
        cpu_pct=round(rng.uniform(4, 45), 1),
        load1=round(rng.uniform(0.1, 1.5), 2),
        mem_used_pct=round(rng.uniform(30, 60), 1),
        mem_avail_mb=round(rng.uniform(300, 700), 1),
        disk_used_pct=round(rng.uniform(20, 22), 2),
        disk_free_mb=round(rng.uniform(20000, 21000), 1),
        temp_c=round(rng.uniform(45, 68), 1),
        agent_uptime_s=round(up_s, 1),
        outbox_depth=depth,
        outbox_dropped=0,
    )


def _every(first: float, step: float, until: float) -> list[float]:
    return [first + k * step for k in range(max(0, math.ceil((until - first) / step)))]


def _board_lines(
    board: Board, conv: Converter, profile: Profile, start: float, now: float, rng: random.Random
) -> list[str]:
    """Everything the board's agent sends over the history, through the cloud's converter.

    The agent's schedules: health on a fixed grid of its own phase (``next_at += interval``),
    readings on the collector's interval, motion events as a Poisson process at the
    simulator's village-day rate. A dark board sends nothing and starts a new session (agent
    uptime from 0) when power returns; a board behind a broken uplink keeps producing into its
    outbox and replays on reconnect (``replay`` true, the original timestamps)."""
    lines: list[str] = []
    session_no = 0
    seq = 0
    mono0 = time.monotonic() - now  # the monotonic clock of a wall time t: mono0 + t
    kind_cam = board.node in CAMS
    every = profile.camera_s if kind_cam else profile.ap_s
    cam = SimCamera(SimCameraOptions(device=board.node, interval_s=every), node=board.node)
    ap = SimAccessPoint(SimAPOptions(device=board.node, interval_s=every), node=board.node)
    ap.boot_monotonic = mono0 + start - rng.uniform(3600, 30 * 86400)
    link = LINK_DOWN if LINK_DOWN[0] == board.node else None
    link_window = (now - link[1], now - link[2]) if link else None
    queued = 0

    def send(payload_msg: Health | Metrics | MotionEvent, channel: Channel, produced: float) -> None:
        nonlocal queued
        replay = link_window is not None and link_window[0] <= produced < link_window[1]
        received = (link_window[1] if replay and link_window else produced) + rng.uniform(0.1, 1.5)
        queued = queued + 1 if replay else 0
        if replay:
            payload_msg = payload_msg.model_copy(update={"replay": True})
        got = conv.convert(topic_for(board.commune, board.node, channel), encode(payload_msg), received)
        assert isinstance(got, Converted), got
        lines.extend(got.lines)
        board.received.append(received)

    schedule = [
        (t, "health") for t in _every(start + rng.uniform(0, profile.health_s), profile.health_s, now)
    ]
    schedule += [(t, "reading") for t in _every(start + rng.uniform(0, every), every, now)]
    if kind_cam:
        t = start
        while True:
            t += rng.expovariate(max(cam.event_rate_per_s(_dt(t)), 1e-9))
            if t >= now:
                break
            schedule.append((t, "event"))
    if board.node == AP_REBOOT[0]:
        schedule.append((now - AP_REBOOT[1], "ap-reboot"))
    schedule.sort()
    agent_start = start - rng.uniform(3600, 86400)
    was_dark = False
    for t, what in schedule:
        if board.is_dark(t):
            was_dark = True
            continue
        if was_dark:  # power back: the agent starts again, a new session
            was_dark = False
            session_no += 1
            agent_start = t
            ap.boot_monotonic = mono0 + t - 40.0  # the AP lost power too: uptime from its boot
        session = f"{session_no:02x}{board.node.encode().hex()}"[:16]
        if what == "ap-reboot":
            ap.boot_monotonic = mono0 + t
            continue
        seq += 1
        if what == "health":
            ts = _dt(t + rng.uniform(0.0, 0.05))  # the loop's own latency
            send(_health(board.node, session, seq, ts, rng, queued, t - agent_start), Channel.HEALTH, t)
        elif what == "reading":
            at = _dt(t + rng.uniform(0.0, 0.5))
            points = [cam.stream_point(at)] if kind_cam else ap.sample(at, mono0 + t)
            send(Metrics(node=board.node, session=session, seq=seq, ts=at, points=points), Channel.METRICS, t)
        else:
            event, _jpeg = cam.motion_event(_dt(t))
            send(MotionEvent(node=board.node, session=session, seq=seq, ts=_dt(t), **event), Channel.EVENT, t)
    board.received.sort()
    return lines


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _state_lines(
    inv: Inventory, boards: dict[str, Board], start: float, now: float, rng: random.Random
) -> list[str]:
    """``device_state`` every 30 s for every inventory device, as the evaluator writes it: a
    board never heard is unknown, a board whose Will came (dark or uplink down) is unknown
    with its node alert open, the others up."""
    out: list[str] = []
    t = start + 7.3
    while t < now:
        states: list[tuple[str, Any, float | None]] = []
        active: list[AlertRow] = []
        for d in inv.devices:
            b = boards.get(d.node)
            if b is None:
                states.append((d.id, "unknown", None))
                continue
            seen = b.last_seen(t)  # None before its first message here: known from the database
            states.append((d.id, "unknown" if b.is_offline(t) else "up", seen))
            if b.is_offline(t):
                started = max(a for a, _ in b.offline if a <= t)
                active.append(_alert(b, started))
        out += state_lines(states, active, inv, t + rng.uniform(0.0, 0.3))  # the evaluator's own latency
        t += STATES_S
    return out


def _outage_lines(inv: Inventory, boards: dict[str, Board], now: float) -> list[str]:
    out: list[str] = []
    for i, b in enumerate(boards.values(), start=1):
        for a, e in b.offline:
            ongoing = e > now
            notice = Notice(
                kind="open" if ongoing else "resolve",
                alert_id=i,
                key=f"node:{b.node}",
                scope="node",
                subject=b.node,
                commune=b.commune,
                cause="will",
                severity="critical",
                started_at=a,
                at=now if ongoing else e + 5,
                duration_s=e - a,
                ended_at=None if ongoing else e,
            )
            out += outage_lines(notice, inv, f"{b.node} mất kết nối")
    return out


def _cloud_lines(start: float, now: float) -> list[str]:
    """One ``cloud`` point every 10 s (``cloud/selfmon.py``), counters cumulative."""
    out, received, t = [], 0.0, start + 3.1
    while t < now:
        received += 2.0
        fields: dict[str, bool | int | float | str | None] = {
            "received": received,
            "dead_lettered": 0.0,
            "write_latency_s": 0.004,
            "spool_lines": 0.0,
            "broker_connected": True,
            "notify_sent": 0.0,
            "notify_failed_attempts": 0.0,
            "notify_given_up": 0.0,
        }
        out.append(line("cloud", {"worker": "cloud-1"}, fields, int(t * 1000)))
        t += CLOUD_S
    return out


async def _store(influx: InfluxDB, db: str, raw: list[str], rollups: list[str]) -> None:
    client = InfluxClient(influx.url, username=influx.username, password=influx.password)
    try:
        await ensure_retention(client, db, raw_days=45, rollup_days=3650)
        for body, rp in ((raw, ""), (rollups, ROLLUP_POLICY)):
            for i in range(0, len(body), 20_000):
                result = await client.write(db, join(body[i : i + 20_000]), rp=rp)
                assert result.outcome is WriteOutcome.OK, result.error
    finally:
        await client.aclose()


@pytest.fixture(scope="module", params=[SHIPPED, AGENT_DEFAULTS], ids=lambda p: p.name)
def history(request: pytest.FixtureRequest, influx_server: InfluxDB) -> Iterator[History]:
    """26 hours of one profile's history in a database of its own."""
    profile: Profile = request.param
    db = "t_grafana_" + profile.name.replace("-", "_")
    inv = load_inventory(REPO / "firmware_config" / "inventory.yaml")
    conv = Converter(inv)
    now = time.time()
    start = now - HISTORY_S
    rng = random.Random(18)
    boards = {n: Board(n, inv.node(n).commune) for n in CAMS + APS}  # type: ignore[union-attr]
    boards[DEAD].dark.append((now - DEAD_FOR_S, math.inf))
    boards[DEAD].offline.append((now - DEAD_FOR_S, math.inf))
    node, a, e = POWER_CUT
    boards[node].dark.append((now - a, now - e))
    boards[node].offline.append((now - a, now - e))
    node, a, e = LINK_DOWN
    boards[node].offline.append((now - a, now - e))
    raw: list[str] = []
    for b in boards.values():
        raw += _board_lines(b, conv, profile, start, now, rng)
    raw += _state_lines(inv, boards, start, now, rng)
    raw += _cloud_lines(start, now)
    asyncio.run(_store(influx_server, db, raw, _outage_lines(inv, boards, now)))
    yield History(influx_server, db, profile, now, boards)


# ----------------------------------------------------------------- how Grafana draws it


def _px(width: int) -> int:
    return width * SCREEN_PX // 24


def _span_ms(panel: dict[str, Any]) -> float:
    """The panel's spanNulls as Grafana applies it: -1 (never bridge) when unset or false."""
    span = panel["fieldConfig"]["defaults"].get("custom", {}).get("spanNulls")
    return -1 if not span else math.inf if span is True else float(span)


def _breaks(values: list[list[Any]], span_ms: float) -> list[tuple[int, int]]:
    """(last value before, first value after) of every null run Grafana leaves as a gap."""
    out, prev, nulls = [], None, False
    for t, v in values:
        if v is None:
            nulls = prev is not None
            continue
        if prev is not None and nulls and not t - prev < span_ms:
            out.append((prev, t))
        prev, nulls = t, False
    return out


def _variables(h: History, model: dict[str, Any]) -> dict[str, list[str]]:
    variables: dict[str, list[str]] = {}
    for v in model["templating"]["list"]:
        rows = influx_query(h.influx, h.db, render(v["query"], 0, 1, variables))
        variables[v["name"]] = sorted({str(r[1]) for s in rows for r in s["values"]})
        assert variables[v["name"]], f"variable ${v['name']} has no values"
    return variables


def _board_of(series: dict[str, Any]) -> str | None:
    tags = series.get("tags") or {}
    return tags.get("device") or tags.get("node")


#: Measurements the cloud writes itself, for every device, whether its board speaks or not.
CLOUD_WRITTEN = ('FROM "device_state"', 'FROM "cloud"')


def _judge_drawn(
    h: History, title: str, query: str, series: list[dict[str, Any]], span: float, iv: int, range_s: int
) -> list[str]:
    """What a technician would notice on a line or state timeline, one complaint per problem.

    Series of a board may only break where the board was dark (a replayed health message has
    no clock skew: the skew line may break while the uplink was down too) and must end where a
    still-dark board stopped; series the cloud writes must not break at all."""
    bad: list[str] = []
    end = h.now * 1000
    by_cloud = any(m in query for m in CLOUD_WRITTEN)
    for s in series:
        name = _board_of(s) or str(s.get("tags"))
        board = None if by_cloud else h.boards.get(_board_of(s) or "")
        if board is not None and "clock_skew_s" in query:
            board = dataclasses.replace(board, dark=board.dark + board.offline)
        values = s["values"]
        drawn = [t for t, v in values if v is not None]
        if not drawn:
            if board is None or not board.is_dark(h.now - range_s / 2):
                bad.append(f"{title} / {name}: no value at all")
            continue
        wrong = [
            (a, b)
            for a, b in _breaks(values, span)
            if board is None or not any(a / 1000 < d1 + iv and d0 < b / 1000 + iv for d0, d1 in board.dark)
        ]  # a gap is right only where the board really said nothing
        if wrong:
            a, b = wrong[0]
            bad.append(
                f"{title} / {name}: {len(wrong)} gaps while the board reported "
                f"(the first from {_hm(a, end)} to {_hm(b, end)}; {iv} s buckets)"
            )
        if board is not None:
            gaps = _breaks(values, span)
            for d0, d1 in board.dark:
                long_inside = d1 - d0 > VISIBLE_SILENCE_S and d1 < h.now and d0 > h.now - range_s
                if long_inside and not any(a / 1000 < d0 + iv and b / 1000 >= d1 - iv for a, b in gaps):
                    bad.append(f"{title} / {name}: a {round((d1 - d0) / 60)}-minute silence is drawn over")
            last_ok = h.now - h.profile.report_s(board.node) - 2 * iv - 5
            if board.is_dark(h.now):
                since = max(d0 for d0, _ in board.dark)
                if drawn[-1] / 1000 > since:
                    bad.append(f"{title} / {name}: a value after the board went dark (stale)")
            elif drawn[-1] / 1000 < last_ok:
                bad.append(f"{title} / {name}: last value {_hm(drawn[-1], end)}, older than one report")
    return bad


def _hm(ms: float, end_ms: float) -> str:
    return f"now-{(end_ms - ms) / 60000:.0f}min"


@pytest.mark.parametrize("range_name", list(RANGES))
@pytest.mark.parametrize("dashboard", all_dashboards(), ids=lambda d: d.uid)
def test_lines_and_state_timelines_connect_and_break_only_where_a_board_was_dark(
    history: History, dashboard: Dashboard, range_name: str
) -> None:
    """Lines and state timelines stay connected between a board's points (5 minutes apart on
    the shipped profile), break only where a board was dark, reach to within one report of now,
    and end where a dark board stopped; every other panel has its values."""
    range_s = RANGES[range_name]
    model = dashboard.to_json()
    variables = _variables(history, model)
    bad: list[str] = []
    for panel, built in zip(model["panels"], dashboard.panels, strict=True):
        px = _px(panel["gridPos"]["w"])
        iv = interval_s(0, range_s * 1000, px)
        for target in panel["targets"]:
            series = history.run(target["query"], variables, range_s, px)
            values = [v for s in series for row in s.get("values", []) for v in row[1:] if v is not None]
            if built.expect_data and not values:
                bad.append(f"{panel['title']}: no data ({target['query']})")
                continue
            draws_lines = panel["type"] == "state-timeline" or (
                panel["type"] == "timeseries" and built.custom.get("drawStyle", "line") == "line"
            )
            if draws_lines and "GROUP BY time($__interval)" in target["query"]:
                bad += _judge_drawn(
                    history, panel["title"], target["query"], series, _span_ms(panel), iv, range_s
                )
    assert not bad, f"{range_name} range:\n" + "\n".join(bad)


def _fleet_rows(h: History, range_s: int) -> dict[str, dict[str, Any]]:
    fleet = next(d for d in all_dashboards() if d.uid == "ciot-fleet")
    table = next(p for p in fleet.panels if p.type == "table")
    query = table.queries[0].influxql.replace("/^$site$/", "/.*/").replace("/^$device$/", "/.*/")
    series = h.run(query, {"commune": ["da-ron", "tu-tra", "lac-xuan"]}, range_s, _px(24))
    return {s["tags"]["device"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in series}


@pytest.mark.parametrize("range_name", list(RANGES))
def test_fleet_says_which_board_is_dark_and_when_each_was_last_heard(
    history: History, range_name: str
) -> None:
    """The stat and table panels answer "now" from device_state (every 30 s), not from a
    5-minute-old health point: a healthy board is up and was heard at most one report ago,
    the board that went dark 50 minutes ago is unknown with its alert, heard 50 minutes ago."""
    range_s = RANGES[range_name]
    rows = _fleet_rows(history, range_s)
    assert len(rows) == 59
    now_ms = history.now * 1000
    for node in CAMS + APS:
        row = rows[node]
        if node == DEAD:
            assert row["Trạng thái"] == "unknown" and row["Cảnh báo"] == 1
            heard_ago = (
                now_ms - row["Liên lạc lần cuối"]
            ) / 1000  # its last message, sent before it went dark
            assert DEAD_FOR_S - 2 <= heard_ago <= DEAD_FOR_S + history.profile.report_s(node) + 5
        else:
            assert row["Trạng thái"] == "up" and row["Cảnh báo"] == 0, (node, row)
            assert (now_ms - row["Liên lạc lần cuối"]) / 1000 <= history.profile.report_s(
                node
            ) + STATES_S + 5, (node, row)
    # availability counts the dark and offline time, whatever the range
    assert rows[DEAD]["Hoạt động %"] < 100 and rows["tt-cam-01"]["Hoạt động %"] == 100
    fleet = next(d for d in all_dashboards() if d.uid == "ciot-fleet")
    every = {"commune": ["da-ron", "tu-tra", "lac-xuan"], "site": [".*"], "device": [".*"]}
    stats = {
        p.title: history.run(p.queries[0].influxql.replace("/^$site$/", "/.*/"), every, range_s, _px(p.width))
        for p in fleet.panels
        if p.type == "stat"
    }
    counts = {t: (s[0]["values"][0][1] if s else 0) for t, s in stats.items()}
    assert counts == {"Trực tuyến": 3, "Hỏng": 0, "Không rõ": 56, "Cảnh báo đang mở": 1}


def test_a_dark_board_is_not_drawn_as_a_healthy_one(history: History) -> None:
    """The state timeline of the fleet shows the dark board grey (unknown) up to now, and its
    Wi-Fi panels stop where it went dark: no stale 'reachable' or client count is carried on."""
    fleet = next(d for d in all_dashboards() if d.uid == "ciot-fleet")
    timeline = next(p for p in fleet.panels if p.type == "state-timeline")
    every = {"commune": ["tu-tra"], "site": [".*"], "device": [DEAD]}
    query = timeline.queries[0].influxql.replace("/^$site$/", "/.*/")
    (series,) = history.run(query, every, RANGES["6h"], _px(timeline.width))
    drawn = [(t, v) for t, v in series["values"] if v is not None]
    assert drawn[-1][1] == 2 and (history.now * 1000 - drawn[-1][0]) / 1000 <= STATES_S + 20
    went_dark = (history.now - DEAD_FOR_S) * 1000
    assert all(v == 2 for t, v in drawn if t > went_dark + (WILL_S + STATES_S + 20) * 1000)
    aps = next(d for d in all_dashboards() if d.uid == "ciot-aps")
    for p in aps.panels:
        if p.type not in ("timeseries", "state-timeline") or "ap_radio" in p.queries[0].influxql:
            continue
        if "ap_ssid" in p.queries[0].influxql:
            continue
        q = p.queries[0].influxql.replace("/^$site$/", "/.*/")
        got = history.run(
            q, {"commune": ["tu-tra"], "site": [".*"], "ap": [DEAD]}, RANGES["6h"], _px(p.width)
        )
        last = max(t for s in got for t, v in s["values"] if v is not None)
        assert last <= went_dark, f"{p.title}: a value after the board went dark"


@pytest.mark.parametrize("range_name", list(RANGES))
def test_an_ap_reboot_shows_in_5_minute_readings(history: History, range_name: str) -> None:
    """The reboot table counts the AP's reboot from its uptime falling between two readings,
    and the uptime line drops to under two plotted intervals: 5-minute readings lose neither."""
    aps = next(d for d in all_dashboards() if d.uid == "ciot-aps")
    table = next(p for p in aps.panels if p.type == "table")
    uptime = next(p for p in aps.panels if 'last("uptime_s")' in p.queries[0].influxql)
    every = {"commune": ["da-ron", "tu-tra"], "ap": list(APS)}
    series = history.run(
        table.queries[0].influxql.replace("/^$site$/", "/.*/"), every, RANGES[range_name], _px(table.width)
    )
    reboots = {s["tags"]["device"]: s["values"][0][1] for s in series}
    assert reboots == {AP_REBOOT[0]: 1}
    (line_,) = [
        s
        for s in history.run(
            uptime.queries[0].influxql.replace("/^$site$/", "/.*/"),
            every,
            RANGES[range_name],
            _px(uptime.width),
        )
        if s["tags"]["device"] == AP_REBOOT[0]
    ]
    rebooted_ms = (history.now - AP_REBOOT[1]) * 1000
    # The first bucket that starts after the reboot ends up to two plotted intervals after it
    # (7 d: 600 s buckets), so its last uptime is under 2 x interval + one reading interval.
    iv = interval_s(0, RANGES[range_name] * 1000, _px(uptime.width))
    after = [v for t, v in line_["values"] if v is not None and t >= rebooted_ms]
    before = [v for t, v in line_["values"] if v is not None and t < rebooted_ms - 600_000]
    assert after and after[0] < history.profile.ap_s + max(900, 2 * iv), (after[:3], iv)
    assert before and before[-1] > 3600
