"""The alert engine: pure judgement of who is down and which alerts open, change or resolve.

No I/O and no clock of its own: callers feed it events with their receive time and call
``tick(now)``; it returns the alert changes. Deterministic, so every rule is tested with a
fake clock, and the same engine runs in the cloud and in the benchmark.

Rules, in the order a technician would ask about them:

* **Signals.** A node is down on a Last Will or an orderly shutdown (immediately), or when
  nothing arrived from it for ``max(silence_floor_s, silence_factor x health_interval_s)``:
  a frozen agent, a power cut or a cut cable never closes TCP, and the broker's own
  expiry is slow (1.5 x keepalive plus a 5 s scan). Any message proves it up again. The
  cause is what was seen first: a Will that follows a judged silence only confirms it.
  Statuses count only when newer than the one in force (``wire.status_order``): a Will
  ends the connection whose birth carried its stamp, never a later one.
* **The board's hold after its birth.** A board publishes its birth as soon as it connects
  but holds everything else (heartbeats included) until it hears a cloud ingest worker
  announce itself live, which workers do every ``hold_s`` (``mqtt.host_heartbeat_s``). That
  quiet is the cloud's doing, not the board's: silence counts from the end of it. (Without
  this, a silence limit below the announcement period judged every board that had just
  connected silent, opened an alert and told the technicians, seconds before its held
  heartbeats arrived.)
* **Outage span.** An outage runs from the last message heard before it to the first
  message after it: the time the node was really unheard. When it was noticed (the alert
  opened) and when its recovery was confirmed (``recovery_s`` later) are told apart.
* **Grace and recovery.** An alert opens after ``grace_s`` of being down and resolves
  after ``recovery_s`` up; a return shorter than that is a flap of the same alert.
* **Flapping.** ``flap_threshold`` outages within ``flap_window_s`` open one alert even
  when each was shorter than the grace, and keep it open until ``flap_quiet_s`` of calm.
  Outages that begin while nothing is judged (below) are not counted: they are the broker's.
* **Dependencies.** commune uplink -> node -> devices, from the inventory. Devices of a
  down node are ``unknown`` and get no alert; when most nodes of a commune are down, one
  commune alert stands for all of them.
* **Our own blindness.** While the cloud has lost the broker nothing is judged; after it
  reconnects, every node gets ``settle_s`` to reconnect itself before a Will or silence
  counts, and the retained statuses it re-reads tell who is really gone.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from cloud.alerting.settings import AlertingConfig
from cloud.inventory import Inventory
from wire import status_order


class Scope(StrEnum):
    NODE = "node"
    COMMUNE = "commune"
    DEVICE = "device"


class Cause(StrEnum):
    WILL = "will"  # the broker lost the node's connection
    SHUTDOWN = "shutdown"  # the agent stopped in order
    SILENT = "silent"  # no heartbeat (frozen agent, power cut, half-open link)
    FLAPPING = "flapping"  # short outages, repeatedly
    UPLINK = "uplink"  # most of a commune at once: its uplink or power
    DEVICE = "device"  # a problem the node reports about one of its devices


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


State = Literal["up", "down", "unknown"]


@dataclass(frozen=True, slots=True)
class Change:
    """One alert event for the lifecycle store and the notifiers."""

    kind: Literal["open", "update", "resolve"]
    key: str  # stable identity: "node:tt-ap-03", "commune:tu-tra", "device:tt-cam-01:stream_down"
    scope: Scope
    subject: str  # the node, commune or device id
    commune: str
    cause: Cause
    severity: Severity
    started_at: float  # when the outage began: just after the last message heard (epoch s)
    at: float  # when this change was judged
    flaps: int = 0
    down: int = 0  # commune alerts: nodes down ...
    total: int = 0  # ... of this many monitored
    problem: str = ""  # device alerts: what the node reported
    detail: str = ""  # device alerts: its figures ("4.0 of 15 fps")
    members: tuple[str, ...] = ()  # commune alerts: the nodes down
    #: resolve: when the outage ended (the first message after it; device alerts: the point
    #: that cleared the problem), before the recovery check that resolved it at ``at``
    ended_at: float | None = None
    #: resolve: not because it came back but because it was decommissioned (nobody is told)
    decommissioned: bool = False
    #: device alerts: the SHA-256 of the picture that shows the problem (a tampered camera's)
    snapshot_sha256: str = ""

    @property
    def duration_s(self) -> float:
        """The outage itself: from its start to its end (to now while it lasts)."""
        end = self.ended_at if self.ended_at is not None else self.at
        return max(0.0, end - self.started_at)


@dataclass(slots=True)
class _Node:
    node: str
    commune: str
    interval_s: float
    last_seen: float
    session: str = ""
    status_key: tuple[float, int] | None = None  # wire.status_order of the status in force
    offline: Cause | None = None  # set by a Will or shutdown until the next sign of life
    quiet_until: float = 0.0  # its birth's hold: it may send nothing else before this (see hold_s)
    cause: Cause = Cause.SILENT  # what made it down first (a Will after silence only confirms it)
    down: bool = False
    changed_at: float = 0.0  # when ``down`` last flipped (back up: the first message after the outage)
    outage_start: float = 0.0  # last moment known alive (its last message), for the record
    outages: deque[float] = field(default_factory=deque)  # start times, for flap counting


@dataclass(slots=True)
class _Alert:
    change: Change
    flaps: int = 0


@dataclass(slots=True)
class _Problem:
    since: float
    detail: str
    severity: Severity = Severity.WARNING
    snapshot_sha256: str = ""  # the picture that shows it, when the board sent one


def node_key(node: str) -> str:
    return f"node:{node}"


def commune_key(commune: str) -> str:
    return f"commune:{commune}"


def device_key(device: str, problem: str) -> str:
    return f"device:{device}:{problem}"


class AlertEngine:
    """Feed events (``status``, ``seen``, ``device_problem``, ``broker``), call ``tick``."""

    def __init__(self, cfg: AlertingConfig, inventory: Inventory, *, hold_s: float = 0.0) -> None:
        """``hold_s``: the longest a board holds its data after its birth, waiting for a live
        announcement of an ingest worker (the workers' ``mqtt.host_heartbeat_s``)."""
        self.cfg = cfg
        self.inventory = inventory
        self.hold_s = hold_s
        self._nodes: dict[str, _Node] = {}
        self._alerts: dict[str, _Alert] = {}
        self._problems: dict[tuple[str, str], _Problem] = {}
        self._cleared: dict[tuple[str, str], float] = {}  # when a problem's clearing point arrived
        self._commune_ok_since: dict[str, float] = {}
        self._connected = False
        self._resume_at = math.inf  # judge nothing before this (cloud not yet connected / settling)

    # ------------------------------------------------------------------ events
    def broker(self, connected: bool, at: float) -> None:
        """The cloud's own broker connection changed; the first ``True`` starts judging."""
        if connected and not self._connected:
            self._resume_at = at + self.cfg.settle_s
            for n in self._nodes.values():
                n.last_seen = max(n.last_seen, at)  # silence counts from here, not from before
        elif not connected:
            self._resume_at = math.inf
        self._connected = connected

    def status(
        self,
        node: str,
        commune: str,
        state: Literal["online", "offline"],
        reason: str,
        at: float,
        *,
        session: str = "",
        stamp: float | None = None,
        health_interval_s: float | None = None,
    ) -> None:
        """A birth or death certificate (live or retained), with the cloud's receive time.

        ``stamp`` (the status's ``ts``) orders it: one not newer than the status in force is
        stale (a Will of an earlier connection, a retained copy read again) and changes nothing.
        """
        n = self._node(node, commune, at)
        if stamp is not None:
            key = status_order(stamp, state)
            if n.status_key is not None and key <= n.status_key:
                return
            n.status_key = key
        elif state == "offline" and session and n.session and session != n.session:
            return  # (no stamp) the death of an older connection, after a newer one was born
        if health_interval_s is not None:
            n.interval_s = health_interval_s
        if state == "online":
            n.session = session or n.session
            n.offline = None
            n.last_seen = max(n.last_seen, at)
            n.quiet_until = max(n.quiet_until, at + self.hold_s)
            self._flip(n, False, at)
            return
        n.offline = Cause.SHUTDOWN if reason == "shutdown" else Cause.WILL
        # unheard since its last message: the Will is the broker's word, not the node's
        self._flip(n, True, at, outage_start=min(n.last_seen, at))

    def folded_status(
        self,
        node: str,
        commune: str,
        state: Literal["online", "offline"],
        reason: str,
        at: float,
        stamp: float,
    ) -> None:
        """A status another worker received (read from SQL, shared subscription), ``at`` when it
        took effect. One older than what this engine last judged of the node says nothing new."""
        n = self._nodes.get(node)
        if n is not None and at <= n.changed_at:
            return
        self.status(node, commune, state, reason, at, stamp=stamp)

    def seen(self, node: str, commune: str, at: float) -> None:
        """Any message from the node: it is connected now."""
        n = self._node(node, commune, at)
        n.last_seen = max(n.last_seen, at)
        if n.offline is None and n.down and at > n.changed_at:
            self._flip(n, False, at)

    def device_problem(
        self,
        device: str,
        problem: str,
        active: bool,
        at: float,
        detail: str = "",
        severity: Severity = Severity.WARNING,
        snapshot_sha256: str = "",
    ) -> None:
        """A node reports (or clears) a problem of one device: stream down, frozen, AP unreachable.
        ``snapshot_sha256``: the picture that shows it (kept from the first point that names one)."""
        if active:
            p = self._problems.setdefault((device, problem), _Problem(at, detail, severity))
            if snapshot_sha256 and not p.snapshot_sha256:
                p.snapshot_sha256 = snapshot_sha256
            self._cleared.pop((device, problem), None)
        elif self._problems.pop((device, problem), None) is not None:
            self._cleared[(device, problem)] = at

    # ------------------------------------------------------------------ judgement
    def tick(self, now: float, heard_until: float | None = None) -> list[Change]:
        """Judge at ``now``. ``heard_until``: ingest has delivered every message received before
        it (not yet the ones after: a backlog); silence is counted up to it, never past it."""
        if now < self._resume_at:
            return []
        silent_at = now if heard_until is None else min(now, heard_until)
        for n in self._nodes.values():
            self._judge_silence(n, silent_at)
        changes: list[Change] = []
        communes_down = self._communes(now, changes)
        for n in self._nodes.values():
            self._node_alert(n, now, communes_down, changes)
        self._device_alerts(now, communes_down, changes)
        return changes

    def _judge_silence(self, n: _Node, now: float) -> None:
        if n.down or n.offline is not None:
            return
        limit = self.silence_limit(n.interval_s)
        heard = self._heard(n)
        if now - heard > limit:
            self._flip(n, True, max(heard + limit, self._resume_at), outage_start=n.last_seen)

    @staticmethod
    def _heard(n: _Node) -> float:
        """Where its silence starts: its last message, or the end of its birth's hold."""
        return max(n.last_seen, n.quiet_until)

    def silence_limit(self, interval_s: float) -> float:
        return max(self.cfg.silence_floor_s, self.cfg.silence_factor * interval_s)

    def _flip(self, n: _Node, down: bool, at: float, *, outage_start: float | None = None) -> None:
        if n.down == down:
            return
        n.down = down
        n.changed_at = at
        if down:
            n.cause = n.offline or Cause.SILENT
            n.outage_start = outage_start if outage_start is not None else at
            if at >= self._resume_at:  # not while the broker itself is lost or settling: its blips
                n.outages.append(at)  # (a cluster dropping clients as it elects leaders) are not flaps
            key = node_key(n.node)
            alert = self._alerts.get(key)
            if alert is not None:
                alert.flaps += 1

    def _down_for(self, n: _Node, now: float) -> float:
        return now - max(n.changed_at, self._resume_at) if n.down else 0.0

    def _flaps(self, n: _Node, now: float) -> int:
        while n.outages and n.outages[0] < now - self.cfg.flap_window_s:
            n.outages.popleft()
        return len(n.outages)

    def _suspect(self, n: _Node, now: float) -> bool:
        """Down, or quiet for longer than most healthy nodes ever are between two heartbeats
        (only for short heartbeats: with long ones the keepalive's Will is the fast path)."""
        if n.down:
            return True
        if n.interval_s > self.cfg.suspect_max_interval_s:
            return False
        return now - self._heard(n) > self.cfg.suspect_factor * n.interval_s

    def _need(self, monitored: int) -> int:
        """Nodes down that make a commune-wide outage."""
        return max(self.cfg.commune_min_nodes, math.ceil(self.cfg.commune_fraction * monitored))

    def _communes(self, now: float, changes: list[Change]) -> set[str]:
        """Open, update or resolve commune alerts; return the communes whose alert is open."""
        members: dict[str, list[_Node]] = {}
        for n in self._nodes.values():
            members.setdefault(n.commune, []).append(n)
        open_now: set[str] = set()
        for commune, nodes in members.items():
            key = commune_key(commune)
            down = [n for n in nodes if n.down and self._down_for(n, now) >= self.cfg.grace_s]
            need = self._need(len(nodes))
            alert = self._alerts.get(key)
            if len(down) >= need:
                self._commune_ok_since.pop(commune, None)
                if alert is None:
                    started = min(n.outage_start for n in down)
                    ch = Change(
                        "open",
                        key,
                        Scope.COMMUNE,
                        commune,
                        commune,
                        Cause.UPLINK,
                        Severity.CRITICAL,
                        started,
                        now,
                        down=len(down),
                        total=len(nodes),
                        members=tuple(sorted(n.node for n in down)),
                    )
                    self._alerts[key] = _Alert(ch)
                    changes.append(ch)
                elif alert.change.down != len(down) or alert.change.total != len(nodes):
                    gone = tuple(sorted(set(alert.change.members) | {n.node for n in down}))
                    self._update(alert, now, changes, down=len(down), total=len(nodes), members=gone)
                open_now.add(commune)
            elif alert is not None:
                ok_since = self._commune_ok_since.setdefault(commune, now)
                if now - ok_since >= self.cfg.recovery_s:
                    # ended when the return that brought it under the limit was heard
                    counted = set(alert.change.members)
                    back = [
                        n.changed_at
                        for n in nodes
                        if n.node in counted and not n.down and n.changed_at <= ok_since
                    ]
                    self._resolve(key, now, changes, ended=max(back, default=ok_since))
                    del self._commune_ok_since[commune]
                else:
                    open_now.add(commune)
        return open_now

    def _node_alert(self, n: _Node, now: float, communes_down: set[str], changes: list[Change]) -> None:
        key = node_key(n.node)
        alert = self._alerts.get(key)
        flaps = self._flaps(n, now)
        flapping = flaps >= self.cfg.flap_threshold
        if alert is not None:
            if alert.flaps != alert.change.flaps:
                self._update(alert, now, changes, flaps=alert.flaps)
            if not n.down:
                calm = self.cfg.flap_quiet_s if flapping else self.cfg.recovery_s
                if now - n.changed_at >= calm:
                    self._resolve(key, now, changes, ended=n.changed_at)
                    n.outages.clear()  # its flaps belong to the alert just closed
            return
        if n.commune in communes_down:
            return  # the commune alert speaks for it
        if n.down and self._down_for(n, now) >= self.cfg.grace_s:
            if self._maybe_commune(n, now):
                return  # wait: the rest of the commune is going too
            cause = n.cause
            severity = Severity.WARNING if cause is Cause.SHUTDOWN else Severity.CRITICAL
            self._open(key, Scope.NODE, n.node, n.commune, cause, severity, n.outage_start, now, changes)
        elif flapping:
            first = n.outages[0]
            self._open(
                key,
                Scope.NODE,
                n.node,
                n.commune,
                Cause.FLAPPING,
                Severity.WARNING,
                first,
                now,
                changes,
                flaps=flaps,
            )
            self._alerts[key].flaps = flaps

    def _maybe_commune(self, n: _Node, now: float) -> bool:
        """Hold a node's alert (up to the window) while enough of its commune looks gone too.

        Silence is judged per node from its own last heartbeat, so when a whole commune
        goes dark its nodes cross the limit up to one heartbeat interval apart. When the
        first one is due, the others have been quiet for at least limit + grace - interval;
        healthy nodes are that quiet only briefly before each heartbeat, so a commune
        where enough nodes are that quiet is very likely going down as a whole.
        """
        if now - max(n.changed_at, self._resume_at) >= self.cfg.commune_window_s:
            return False
        peers = [m for m in self._nodes.values() if m.commune == n.commune]
        suspects = sum(1 for m in peers if self._suspect(m, now))
        return suspects >= self._need(len(peers))

    def _device_alerts(self, now: float, communes_down: set[str], changes: list[Change]) -> None:
        active: set[str] = set()
        for (device, problem), p in self._problems.items():
            key = device_key(device, problem)
            active.add(key)
            if key in self._alerts or now - p.since < self.cfg.grace_s:
                continue
            d = self.inventory.device(device)
            node = self._nodes.get(d.node) if d is not None else None
            commune = d.commune if d is not None else (node.commune if node is not None else "")
            if (node is not None and node.down) or commune in communes_down:
                continue  # unknown behind a down node: no alert of its own
            self._open(
                key,
                Scope.DEVICE,
                device,
                commune,
                Cause.DEVICE,
                p.severity,
                p.since,
                now,
                changes,
                problem=problem,
                detail=p.detail,
                snapshot_sha256=p.snapshot_sha256,
            )
        for key in [k for k, a in self._alerts.items() if a.change.scope is Scope.DEVICE]:
            if key not in active:
                c = self._alerts[key].change
                self._resolve(key, now, changes, ended=self._cleared.pop((c.subject, c.problem), now))

    # ------------------------------------------------------------------ alert bookkeeping
    def _open(
        self,
        key: str,
        scope: Scope,
        subject: str,
        commune: str,
        cause: Cause,
        severity: Severity,
        started: float,
        now: float,
        changes: list[Change],
        *,
        flaps: int = 0,
        problem: str = "",
        detail: str = "",
        snapshot_sha256: str = "",
    ) -> None:
        ch = Change(
            "open",
            key,
            scope,
            subject,
            commune,
            cause,
            severity,
            started,
            now,
            flaps=flaps,
            problem=problem,
            detail=detail,
            snapshot_sha256=snapshot_sha256,
        )
        self._alerts[key] = _Alert(ch, flaps)
        changes.append(ch)

    def _update(
        self,
        alert: _Alert,
        now: float,
        changes: list[Change],
        *,
        flaps: int | None = None,
        down: int | None = None,
        total: int | None = None,
        members: tuple[str, ...] | None = None,
    ) -> None:
        c = alert.change
        ch = replace(
            c,
            kind="update",
            at=now,
            flaps=c.flaps if flaps is None else flaps,
            down=c.down if down is None else down,
            total=c.total if total is None else total,
            members=c.members if members is None else members,
        )
        alert.change = ch
        changes.append(ch)

    def _resolve(
        self, key: str, now: float, changes: list[Change], *, ended: float, decommissioned: bool = False
    ) -> None:
        alert = self._alerts.pop(key)
        ended = max(alert.change.started_at, min(ended, now))
        changes.append(
            replace(
                alert.change,
                kind="resolve",
                at=now,
                flaps=alert.flaps,
                ended_at=ended,
                decommissioned=decommissioned,
            )
        )

    def _node(self, node: str, commune: str, at: float) -> _Node:
        n = self._nodes.get(node)
        if n is None:
            n = self._nodes[node] = _Node(
                node, commune, self.cfg.default_health_interval_s, at, changed_at=at
            )
        return n

    # ------------------------------------------------------------------ reading
    def restore(self, change: Change) -> None:
        """Take over an alert still open in SQL (after a restart or a change of evaluator).

        What the alert says is down stays down until a sign of life says otherwise: a node
        that never speaks again keeps its alert instead of looking healthy (and resolving)
        merely because this process has not heard from it yet.
        """
        if change.key in self._alerts:
            return
        self._alerts[change.key] = _Alert(change, change.flaps)
        if change.scope is Scope.DEVICE:
            self._problems.setdefault(
                (change.subject, change.problem), _Problem(change.started_at, "", change.severity)
            )
            return
        if change.scope is Scope.COMMUNE:
            nodes = [(m, Cause.SILENT) for m in change.members]
        elif change.cause is Cause.FLAPPING:
            nodes = []
        else:
            nodes = [(change.subject, change.cause)]
        for node, cause in nodes:
            if node in self._nodes:
                continue  # heard already: what we know live beats the record
            n = self._node(node, change.commune, change.started_at)
            n.down = True
            n.changed_at = n.outage_start = change.started_at
            n.offline = cause if cause in (Cause.WILL, Cause.SHUTDOWN) else None
            n.cause = cause

    def follow_inventory(self, now: float) -> list[Change]:
        """The inventory changed: stop watching decommissioned boards and devices (their open
        alerts are resolved as decommissioned), and take boards' new communes (a move)."""
        inv = self.inventory
        changes: list[Change] = []
        for node in [n for n in self._nodes if inv.is_retired(n)]:
            del self._nodes[node]
            if node_key(node) in self._alerts:
                self._resolve(node_key(node), now, changes, ended=now, decommissioned=True)
        for n in self._nodes.values():
            listed = inv.node(n.node)
            if listed is not None:
                n.commune = listed.commune
        for pair in [p for p in self._problems if inv.is_retired(p[0])]:
            del self._problems[pair]
        for pair in [p for p in self._cleared if inv.is_retired(p[0])]:
            del self._cleared[pair]
        for key, alert in list(self._alerts.items()):
            if alert.change.scope is Scope.DEVICE and inv.is_retired(alert.change.subject):
                self._resolve(key, now, changes, ended=now, decommissioned=True)
        return changes

    def forget_alert(self, key: str) -> None:
        """Drop an alert this engine opened but nobody recorded (it was not the evaluator);
        the next tick opens it again if its node or device is still down."""
        self._alerts.pop(key, None)

    def remember(self, node: str, commune: str, last_seen: float) -> None:
        """A node known from the database (heard before this process started).

        Without it a board that went silent while the cloud was down would never be
        judged: nothing from it arrives to make it known. Silence counts from when the
        cloud reconnects (see ``broker``), so a board that is merely slow to reconnect
        has ``settle_s`` plus its silence limit.
        """
        if node not in self._nodes:
            self._node(node, commune, last_seen)

    def open_alerts(self) -> list[Change]:
        return [a.change for a in self._alerts.values()]

    @property
    def judging(self) -> bool:
        return self._connected

    def node_state(self, node: str) -> State:
        n = self._nodes.get(node)
        if n is None:
            return "unknown"
        return "down" if n.down else "up"

    def device_state(self, device: str) -> State:
        """``unknown`` behind a down or never-heard node: we cannot tell."""
        d = self.inventory.device(device)
        node = d.node if d is not None else device
        if self.node_state(node) != "up":
            return "unknown"
        return "down" if any(dev == device for dev, _ in self._problems) else "up"

    def judge(self, device: str) -> tuple[State, State]:
        """(its board's state, the device's state): what the API shows beside raw presence."""
        d = self.inventory.device(device)
        return self.node_state(d.node if d is not None else device), self.device_state(device)

    def device_problems(self, device: str) -> dict[str, str]:
        """The problems a device has right now (alerted or still in grace), with their detail."""
        return {prob: p.detail for (dev, prob), p in self._problems.items() if dev == device}

    def last_seen(self, node: str) -> float | None:
        n = self._nodes.get(node)
        return n.last_seen if n is not None else None

    def summary(self) -> dict[str, dict[str, int]]:
        """Per commune: nodes and devices up, down and unknown (never heard counts as unknown)."""
        out: dict[str, dict[str, int]] = {}
        for c in self.inventory.communes:
            out[c.id] = {f"{what}_{s}": 0 for what in ("nodes", "devices") for s in ("up", "down", "unknown")}
        for n in self.inventory.nodes:
            out[n.commune][f"nodes_{self.node_state(n.id)}"] += 1
        for d in self.inventory.devices:
            out[d.commune][f"devices_{self.device_state(d.id)}"] += 1
        return out
