"""The committing half of an ingest worker: validate, journal, SQL, then report durable.

Why it is built this way:

* The MQTT session lives in a child process (``cloud.ingest.receiver``) so that paho's
  receive path, which costs about as much CPU per message as everything done here, has a
  core of its own instead of sharing this process's GIL. It hands raw messages over in
  batches; this side makes them durable and answers "durable up to batch N", and only
  then does the receiver acknowledge them. If this process dies the receiver sees the pipe
  close and exits without acknowledging, so the broker redelivers; if the receiver dies,
  this process starts a new one (same client id, so the same broker session and queue).
* Manual acknowledgement: a QoS-1 message is acknowledged only once it is durable
  (journal fsynced, SQL committed, snapshot file fsynced). Writes are idempotent, so a
  redelivered duplicate is harmless; that includes the counts: the seqs a batch received
  are merged into SQL (distinct seqs, not a sum) in the batch's commit, before the ack, so
  the gap count is exact whenever the process dies. Only throttled-message counts wait
  (``state_flush_interval_s``).
* Group commit: the committer takes every batch waiting in the pipe (up to
  ``commit_max`` messages), validates and converts them, makes them durable with one
  fsync and reports the last batch. While it fsyncs, the receiver keeps receiving.
  Converting in batches rather than per message keeps the validation code hot in the CPU
  caches (~15 % less CPU when measured in-process).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from cloud.config import MqttConfig, RateLimitConfig
from cloud.events.store import EventRecord
from cloud.ingest import framing
from cloud.ingest.convert import Converted, Converter, Rejected
from cloud.ingest.ratelimit import FloodReport, RateLimiter, node_of
from cloud.ingest.stats import Stats
from cloud.storage.journal import Journal
from cloud.storage.snapshots import SnapshotStore
from cloud.storage.sql import (
    BatchUpdate,
    DeadLetter,
    NodeDelta,
    SessionDelta,
    SnapshotRecord,
    SqlStore,
    StatusUpdate,
)
from wire import MotionEvent, Status
from wire.topics import SEQUENCED, Channel, valid_id

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Received:
    topic: str
    payload: bytes
    at: float


class IngestWorker:
    """One MQTT session, received by a child process; ``start()`` starts, ``stop()`` flushes and leaves."""

    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        converter: Converter,
        journal: Journal,
        sql: SqlStore,
        snapshots: SnapshotStore,
        stats: Stats,
        *,
        state_flush_interval_s: float = 1.0,
        limits: RateLimitConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.state_flush_interval_s = state_flush_interval_s
        self._unsaved = BatchUpdate()  # node counters not yet in SQL
        self._saved_at = time.monotonic()
        self.client_id = client_id
        self.converter = converter
        self.journal = journal
        self.sql = sql
        self.snapshots = snapshots
        self.stats = stats
        self.commit_max = max(1, min(cfg.commit_max_messages, cfg.receive_maximum // 2 or 1))
        self._stopping = False
        self._lifecycle = threading.Lock()
        self._send_lock = threading.Lock()  # stop() and the committer both write to the pipe
        self._connected = threading.Event()
        self.last_error: str = "not connected yet"
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._committer: threading.Thread | None = None
        self._topics: dict[bytes, str] = {}
        #: receive times of the batches read from the receiver and not yet committed, oldest first
        self._pending_at: collections.deque[float] = collections.deque()
        # Alerting (issue 3): called after each commit with what was heard and when; must not raise.
        self.observers: list[Callable[[list[tuple[Converted, float]]], None]] = []
        # Per-node rate limits (issue 9), applied before any JSON is parsed.
        self.limiter = RateLimiter(limits or RateLimitConfig())
        #: called with nodes that start, go on or stop flooding; must not raise
        self.flood_observers: list[Callable[[list[FloodReport], float], None]] = []

    # ------------------------------------------------------------------ receiver process
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def backlog_since(self) -> float | None:
        """Receive time of the oldest message received but not yet committed (None: none waits).

        Alerting judges silence against it, not the wall clock: a node is not silent merely
        because its messages wait in this worker's backlog (a cloud short of CPU)."""
        try:
            return self._pending_at[0]
        except IndexError:
            return None

    def _spawn(self) -> Connection:
        """Start a receiver child on one end of a socket pair; the other end is ours."""
        ours, theirs = socket.socketpair()
        settings = self.cfg.model_dump(mode="json")
        settings["password"] = self.cfg.password_value() or None
        settings["password_file"] = None
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "cloud.ingest.receiver", str(theirs.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"mqtt": settings, "client_id": self.client_id}).encode())
        self._proc.stdin.close()
        return Connection(ours.detach())

    def start(self) -> None:
        self._conn = self._spawn()
        self._committer = threading.Thread(
            target=self._commit_loop, name=f"commit-{self.client_id}", daemon=True
        )
        self._committer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge what was received, then disconnect.

        Messages arriving meanwhile are left unacknowledged: the broker keeps them in our
        session and redelivers them on the next start, so a clean stop causes no duplicates.
        """
        with self._lifecycle:
            self._stopping = True
            conn = self._conn
            if conn is not None:
                with contextlib.suppress(OSError), self._send_lock:  # else the receiver is gone
                    conn.send_bytes(framing.encode_seq(framing.STOP, 0))
        if self._committer is not None:
            self._committer.join(timeout)
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("MQTT receiver of %s did not stop in %.0f s; killing it", self.client_id, timeout)
                self._proc.kill()
                self._proc.wait()
        if self._conn is not None:
            self._conn.close()
        if self._unsaved:
            try:
                self.sql.apply(self._unsaved)
                self._unsaved = BatchUpdate()
            except Exception as exc:
                log.error("could not save node counters on stop: %s", exc)
        self._connected.clear()

    # ------------------------------------------------------------------ commit
    def _commit_loop(self) -> None:
        """Serve receivers until stopped: a receiver that dies is replaced."""
        while True:
            assert self._conn is not None
            self._serve(self._conn)
            if self._stopping:
                return
            code = self._proc.wait() if self._proc is not None else None
            self._connected.clear()
            self.last_error = f"MQTT receiver exited ({code}); restarting it"
            log.error("MQTT receiver of %s exited with %s; starting a new one", self.client_id, code)
            self._conn.close()
            time.sleep(1.0)
            with self._lifecycle:  # so that stop() reaches either the old receiver or the new
                if self._is_stopping():
                    return
                self._conn = self._spawn()

    def _is_stopping(self) -> bool:
        return self._stopping

    def _serve(self, conn: Connection) -> None:
        """Commit the batches of one receiver until it ends (orderly stop) or goes away."""
        frames: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pending_at.clear()  # what an earlier receiver left uncommitted comes again, newly stamped
        threading.Thread(target=self._read, args=(conn, frames), name="receiver-pipe", daemon=True).start()
        while True:
            wait = None
            if self._unsaved:
                wait = max(0.0, self._saved_at + self.state_flush_interval_s - time.monotonic())
            try:
                frame = frames.get(timeout=wait)
            except queue.Empty:
                self._save_counters()
                continue
            if frame is None:
                return  # the receiver is gone; nothing of its unreported batches was acked
            if frame[0] == framing.END:  # every batch before it is committed and reported
                self._report(conn, framing.decode_seq(frame))
                return
            batch: list[_Received] = []
            last = self._take(frame, batch)
            taken = 1
            ended = False
            # Let the batch grow for up to commit_interval_ms: fewer, larger fsyncs.
            deadline = time.monotonic() + self.cfg.commit_interval_ms / 1000
            while len(batch) < self.commit_max:
                try:
                    frame = frames.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if frame is None:
                    return
                if frame[0] == framing.END:
                    ended = True
                    break
                last = self._take(frame, batch)
                taken += 1
            if not self._commit_with_retry(batch):
                return  # stopping with a failed commit: acknowledge nothing
            for _ in range(min(taken, len(self._pending_at))):
                self._pending_at.popleft()
            self._report(conn, last)
            if ended:
                return

    def _read(self, conn: Connection, frames: queue.SimpleQueue[bytes | None]) -> None:
        """Pipe reader: connection state at once (even while a commit is retried), batches queued.

        The queue stays bounded: the broker sends at most Receive Maximum unacknowledged messages."""
        while True:
            try:
                frame = conn.recv_bytes()
            except (EOFError, OSError):
                frames.put(None)
                return
            if frame[0] == framing.STATE:
                connected, text = framing.decode_state(frame)
                if connected:
                    self._connected.set()
                else:
                    self._connected.clear()
                self.last_error = text
            else:
                if frame[0] == framing.BATCH:
                    self._pending_at.append(framing.batch_at(frame))
                frames.put(frame)

    def _report(self, conn: Connection, seq: int) -> None:
        """Tell the receiver that every batch up to ``seq`` is durable, so it may ack them."""
        with contextlib.suppress(OSError), self._send_lock:  # else it is gone: nothing gets acked
            conn.send_bytes(framing.encode_seq(framing.DURABLE, seq))

    def _take(self, frame: bytes, batch: list[_Received]) -> int:
        b = framing.decode_batch(frame)
        topics = self._topics
        for t, p in zip(b.topics, b.payloads, strict=True):
            topic = topics.get(t)
            if topic is None:
                topic = t.decode(errors="replace")
                if len(topics) < 65536:
                    topics[t] = topic
            batch.append(_Received(topic, p, b.at))
        self.stats.received += len(b.topics)
        return b.seq

    def _save_counters(self) -> None:
        try:
            self.sql.apply(self._unsaved)
        except Exception as exc:  # retried at the next flush; counters only
            log.warning("cannot save node counters to SQL (%s); will retry", exc)
            self._saved_at = time.monotonic()
            return
        self._unsaved = BatchUpdate()
        self._saved_at = time.monotonic()

    def _commit_with_retry(self, batch: list[_Received]) -> bool:
        """True once ``batch`` is durable; False if stopping before it could be made so."""
        delay = 0.2
        while True:
            try:
                self._commit(batch)
                return True
            except Exception as exc:  # disk full, SQL locked...: keep the batch, never ack
                log.error(
                    "cannot make %d messages durable (%s: %s); not acknowledged, retrying in %.1f s",
                    len(batch),
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                if self._stopping:
                    log.error(
                        "stopping: %d unacknowledged messages will be redelivered by the broker", len(batch)
                    )
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _event_record(self, res: Converted, msg: MotionEvent, at: float) -> EventRecord:
        return EventRecord(
            device=msg.device,
            event_id=msg.event_id,
            node=res.node,
            commune=res.commune,
            site=self.converter.device_site(res.node, msg.device),
            phase=msg.phase,
            start=msg.start.timestamp(),
            end=msg.end.timestamp() if msg.end is not None else None,
            msg_ts=msg.ts.timestamp(),
            peak_area_pct=msg.peak_area_pct,
            boxes=[b.model_dump() for b in msg.boxes],
            zones=list(msg.zones),
            score=msg.score,
            frames=msg.frames,
            snapshot_sha256=msg.snapshot_sha256,
            received_at=at,
            snapshot_boxes=(
                None if msg.snapshot_boxes is None else [b.model_dump() for b in msg.snapshot_boxes]
            ),
            labels=None if msg.labels is None else [x.model_dump(exclude_none=True) for x in msg.labels],
            snapshot_source=msg.snapshot_source,
            snapshot_wanted=msg.snapshot_wanted,
            snapshot_width_px=msg.snapshot_width_px,
            snapshot_height_px=msg.snapshot_height_px,
            snapshot_fallback=msg.snapshot_fallback,
        )

    def _node_delta(self, nodes: dict[str, NodeDelta], node: str, topic: str) -> NodeDelta:
        d = nodes.get(node)
        if d is None:
            parts = topic.split("/")
            commune = parts[2][:64] if len(parts) > 2 else ""
            known = self.converter.inventory.node(node) is not None
            d = nodes[node] = NodeDelta(commune, known)
        return d

    def _throttled(self, r: _Received, node: str, upd: BatchUpdate) -> None:
        """A message over its node's allowance: counted (SQL, Prometheus), acknowledged, not stored."""
        self.stats.count_rate_limited(node if valid_id(node) else "_invalid")
        if valid_id(node):
            d = self._node_delta(upd.nodes, node, r.topic)
            d.rate_limited += 1
            d.last_seen = max(d.last_seen, r.at)
        if self.limiter.take_sample(node):
            cfg = self.limiter.cfg
            upd.dead.append(
                DeadLetter(
                    r.topic,
                    node or None,
                    f"rate limited: node {node or '?'} is over its allowance of {cfg.rate_per_s:g} msg/s "
                    f"(burst {cfg.burst}); this is a sample, the other throttled messages are counted "
                    "(nodes.rate_limited), acknowledged and not stored",
                    r.payload,
                    r.at,
                )
            )

    def _report_floods(self, now: float) -> None:
        reports = self.limiter.reports(now)
        if not reports:
            return
        self.stats.flooding_nodes = len(self.limiter.flooding())
        cfg = self.limiter.cfg
        for rep in reports:
            if rep.active:
                log.warning(
                    "node %s is flooding: %.0f msg/s over the last %.0f s, %d throttled (%d since it began; "
                    "allowance %g msg/s, burst %d). Throttled messages are acknowledged and counted, "
                    "not stored; other boards are unaffected. Check the board (agent bug or tampering).",
                    rep.node or "?",
                    rep.rate_per_s,
                    rep.interval_s,
                    rep.dropped,
                    rep.dropped_total,
                    cfg.rate_per_s,
                    cfg.burst,
                    extra={"node": rep.node, "rate": round(rep.rate_per_s, 1), "throttled": rep.dropped},
                )
            else:
                log.info(
                    "node %s no longer floods (%.1f msg/s now); %d messages were throttled",
                    rep.node or "?",
                    rep.rate_per_s,
                    rep.dropped_total,
                    extra={"node": rep.node, "throttled": rep.dropped_total},
                )
        for observe in self.flood_observers:
            try:
                observe(reports, now)
            except Exception:
                log.exception("a flood observer failed; ingest continues")

    def _commit(self, batch: list[_Received]) -> None:
        lines: list[str] = []
        upd = BatchUpdate()
        nodes = upd.nodes
        convert = self.converter.convert
        heard: list[tuple[Converted, float]] = []
        statuses: list[tuple[str, Status, StatusUpdate]] = []
        limiter = self.limiter if self.limiter.enabled else None
        for r in batch:
            if limiter is not None:
                sender = node_of(r.topic)
                if not limiter.admit(sender, r.payload, "/snapshot/" in r.topic, r.at):
                    self._throttled(r, sender, upd)
                    continue
            try:
                res = convert(r.topic, r.payload, r.at)
            except Exception as exc:  # a bug must not wedge the worker on one message
                log.exception("conversion failed for %s", r.topic[:200])
                res = Rejected(f"internal error converting: {type(exc).__name__}: {exc}"[:300], None)
            if res is None:
                continue  # control plane (config, cmd, reported, reply): the fleet service's
            if isinstance(res, Rejected):
                upd.dead.append(DeadLetter(r.topic, res.node_guess, res.reason, r.payload, r.at))
                if res.node_guess:
                    d = self._node_delta(nodes, res.node_guess, r.topic)
                    d.dead_letters += 1
                    d.last_seen = max(d.last_seen, r.at)
                continue
            heard.append((res, r.at))
            lines.extend(res.lines)
            node = nodes.get(res.node)
            if node is None:
                node = nodes[res.node] = NodeDelta(res.commune, res.known)
            node.last_seen = max(node.last_seen, r.at)
            msg = res.message
            if res.channel is Channel.SNAPSHOT:
                assert res.snapshot is not None and res.event_id is not None
                sha = self.snapshots.put(res.snapshot)
                upd.snapshots.append(SnapshotRecord(sha, res.node, res.event_id, len(res.snapshot), r.at))
                node.messages += 1
            elif isinstance(msg, Status):
                st = StatusUpdate(
                    res.node,
                    res.commune,
                    res.known,
                    msg.state,
                    msg.reason,
                    msg.ts.timestamp(),
                    msg.agent_version,
                    msg.session,
                    int(r.at * 1000),
                    update=None
                    if msg.update is None
                    else (msg.update.version, msg.update.state, msg.update.error, msg.update.ts.timestamp()),
                )
                upd.statuses.append(st)
                statuses.append((r.topic, msg, st))
            elif msg is not None and res.channel in SEQUENCED:
                if isinstance(msg, MotionEvent):
                    upd.events.append(self._event_record(res, msg, r.at))
                node.messages += 1
                ts = msg.ts.timestamp()
                if node.last_msg_ts is None or ts >= node.last_msg_ts:
                    node.last_msg_ts, node.session, node.last_seq = ts, msg.session, msg.seq
                key = (res.node, msg.session)
                s = upd.sessions.get(key)
                if s is None:
                    upd.sessions[key] = SessionDelta([msg.seq], r.at)
                else:
                    s.seqs.append(msg.seq)
        if lines:
            self.journal.append(("\n".join(lines) + "\n").encode(), len(lines))
        self._unsaved.merge(upd)
        now = time.monotonic()
        if upd.must_write_now or now - self._saved_at >= self.state_flush_interval_s or self._stopping:
            self.sql.apply(self._unsaved)
            self._unsaved = BatchUpdate()
            self._saved_at = now
        # Statuses that took effect in SQL (not a stale one) get their point now, at the time
        # SQL gave them; a crash before this append redelivers them, and SQL gives the same time.
        status_lines = [
            self.converter.status_line(topic, msg, st.at_ms)
            for topic, msg, st in statuses
            if st.at_ms is not None
        ]
        if status_lines:
            self.journal.append(("\n".join(status_lines) + "\n").encode(), len(status_lines))
        # Durable: the caller reports it and the receiver acknowledges, in receive order,
        # only what its current connection delivered (the broker redelivers the rest).
        for observe in self.observers:
            observe(heard)
        for dl in upd.dead:
            channel = dl.topic.split("/")[4] if dl.topic.count("/") >= 4 else "topic"
            self.stats.dead_lettered[channel if channel in Channel.__members__.values() else "topic"] += 1
            log.warning(
                "dead-lettered message on %s: %s",
                dl.topic[:200],
                dl.reason,
                extra={"node": dl.node_guess, "size": len(dl.payload)},
            )
        self.stats.committed += len(batch)
        self.stats.commit_batches += 1
        if limiter is not None:
            self._report_floods(time.time())
