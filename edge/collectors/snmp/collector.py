"""The ``snmp_ap`` collector: polls one or many village access points over SNMP.

Every AP gets one ``ap`` point per cycle, on schedule, whether it answered or not: the
cloud turns ``reachable=false`` (with the ``ping`` second opinion) into an alert, so a
silent AP must never go silent on the wire too. APs are polled concurrently, each poll
under a hard deadline, and each AP's points are sent as soon as its own poll ends: ten
dead APs cost their own timeouts, never the other APs' timeliness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

from edge.collectors.base import Collector, CollectorOptions, JobState, Sink, Unsupported
from edge.collectors.snmp.client import SnmpClient, SnmpError, Target
from edge.collectors.snmp.config import ApSpec, SnmpApOptions
from edge.collectors.snmp.poller import SYS_UPTIME, ApPoller, Reading
from edge.ping import ping
from wire import Point

log = logging.getLogger(__name__)

#: Points in one AP's reading at most (the runtime splits messages; this bounds a broken agent).
MAX_POINTS_PER_AP = 300


class _Ap:
    """Per-AP state: the poller and what was last logged, so logs say changes, not every poll."""

    def __init__(self, spec: ApSpec, opts: SnmpApOptions) -> None:
        creds = spec.snmp or opts.snmp
        assert creds is not None
        self.spec = spec
        self.creds = creds
        self.target = Target(spec.host, spec.port, opts.timeout_s, opts.retries)
        self.poller: ApPoller | None = None
        self.profile = spec.profile or opts.profile
        self.last_state: str | None = None
        #: Whether the last published poll found it answering (None before the first).
        self.reachable: bool | None = None


class SnmpAccessPoints(Collector):
    Options = SnmpApOptions

    def __init__(self, options: CollectorOptions, *, node: str) -> None:
        super().__init__(options, node=node)
        assert isinstance(options, SnmpApOptions)
        self.opts: SnmpApOptions = options
        self.aps = [_Ap(spec, options) for spec in options.aps]
        self._ifname = re.compile(options.ifname_pattern) if options.ifname_pattern else None
        self.cycles = 0
        #: APs that answered in the last full cycle, of how many (None before the first).
        self.answered: tuple[int, int] | None = None
        self._client: SnmpClient | None = None
        self._changed = asyncio.Event()

    def reconfigure(self, options: CollectorOptions) -> bool:
        """Everything applies live: the next cycle starts now with the new APs, credentials,
        profiles and interval (pollers start afresh, so a new profile is detected again)."""
        if not isinstance(options, SnmpApOptions):
            return False
        self.options = self.opts = options
        self.aps = [_Ap(spec, options) for spec in options.aps]
        self._ifname = re.compile(options.ifname_pattern) if options.ifname_pattern else None
        self.answered = None
        self._changed.set()
        return True

    def job_state(self) -> JobState:
        if self.answered is None:
            return JobState(None, "no SNMP poll cycle finished yet")
        ok, total = self.answered
        if ok == 0:
            return JobState(False, f"none of the {total} access point(s) answers SNMP")
        return JobState(True)

    def addresses(self) -> dict[str, str]:
        return {ap.spec.device: ap.spec.host for ap in self.aps}

    async def poll_now(self, device: str, sink: Sink) -> dict[str, Any]:
        ap = next((a for a in self.aps if a.spec.device == device), None)
        if ap is None or self._client is None:
            raise Unsupported(f"no access point {device} polled by this board (or polling not started)")
        ts = datetime.now(UTC)
        reading, pinged, poll_s = await self._poll_one(self._client, ap, ts, asyncio.Semaphore(1), sink)
        out: dict[str, Any] = {"device": device, "reachable": reading is not None, "poll_s": poll_s}
        if pinged is not None:
            out["ping"] = pinged
        if reading is not None:
            out.update(profile=reading.profile, clients=reading.clients, uptime_s=reading.uptime_s)
        return out

    async def run(self, sink: Sink) -> None:
        attempts = self.opts.timeout_s * (self.opts.retries + 1)
        if attempts > self.opts.snmp_budget:
            log.warning(
                "SNMP timeout_s x (retries + 1) = %g s does not fit in the %g s the deadline leaves "
                "for SNMP: slow APs will be cut short; lower timeout_s/retries or raise interval_s",
                attempts, self.opts.snmp_budget, extra={"node": self.node},
            )  # fmt: skip
        client = self._client = SnmpClient()  # one engine for this loop, shared by every AP
        start = time.monotonic()
        slot = 0
        try:
            while True:
                if self._changed.is_set():  # reconfigured: a new schedule from now
                    self._changed.clear()
                    start, slot = time.monotonic(), 0
                interval = self.opts.interval_s
                sem = asyncio.Semaphore(self.opts.concurrency)
                began = time.monotonic()
                ts = datetime.now(UTC)
                aps = list(self.aps)
                results = await asyncio.gather(*(self._poll_one(client, ap, ts, sem, sink) for ap in aps))
                if not self._changed.is_set():
                    self.answered = (sum(r[0] is not None for r in results), len(aps))
                self.cycles += 1
                took = time.monotonic() - began
                slot += 1
                next_at = start + slot * interval
                now = time.monotonic()
                if now > next_at:
                    skipped = int((now - next_at) // interval) + 1
                    log.warning(
                        "SNMP poll cycle of %d AP(s) took %.1f s, longer than interval_s %.0f s: "
                        "%d poll(s) skipped; raise interval_s or concurrency, or lower timeout_s",
                        len(self.aps),
                        took,
                        interval,
                        skipped,
                        extra={"node": self.node, "cycle_s": round(took, 3)},
                    )
                    slot += skipped
                    next_at = start + slot * interval
                while (left := next_at - time.monotonic()) > 0:
                    check = self.opts.check_interval_s
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), min(left, check) if check else left)
                    if self._changed.is_set() or not check or time.monotonic() >= next_at:
                        break
                    if await self._answering_changed(client):
                        start, slot = time.monotonic(), 0  # poll now, then on a new schedule
                        break
        finally:
            self._client = None
            client.close()

    async def _answering_changed(self, client: SnmpClient) -> bool:
        """One GET of sysUpTime per AP: whether any AP stopped or started answering since the
        last poll. It costs the uplink nothing; the full poll it triggers publishes the change."""
        sem = asyncio.Semaphore(self.opts.concurrency)

        async def answers(ap: _Ap) -> bool:
            async with sem:
                try:
                    await asyncio.wait_for(
                        client.get(ap.target, [SYS_UPTIME], ap.creds.auth_data()), self.opts.snmp_budget
                    )
                except Exception:  # timeout, refusal, error: not answering, as a poll would say
                    return False
                return True

        aps = [ap for ap in self.aps if ap.reachable is not None]
        now = await asyncio.gather(*(answers(ap) for ap in aps))
        changed = [ap.spec.device for ap, ok in zip(aps, now, strict=True) if ok != ap.reachable]
        if changed:
            log.info(
                "AP(s) %s stopped or started answering between polls: polling now",
                ", ".join(changed),
                extra={"node": self.node},
            )
        return bool(changed)

    async def _poll_one(
        self, client: SnmpClient, ap: _Ap, ts: datetime, sem: asyncio.Semaphore, sink: Sink
    ) -> tuple[Reading | None, bool | None, float]:
        reading: Reading | None = None
        error: SnmpError | None = None
        async with sem:
            started = time.monotonic()
            snmp_budget = self.opts.snmp_budget
            try:
                if ap.poller is None:
                    ap.poller = ApPoller(ap.target, ap.creds.auth_data(), ap.profile, device=ap.spec.device)
                reading = await asyncio.wait_for(ap.poller.poll(client), snmp_budget)
            except TimeoutError:
                error = SnmpError(f"no complete SNMP answer within {snmp_budget:g} s", kind="timeout")
            except SnmpError as exc:
                error = exc
            except Exception as exc:  # a bug or an agent pysnmp cannot parse: this AP only
                log.exception("AP %s: polling failed", ap.spec.device, extra={"device": ap.spec.device})
                error = SnmpError(f"unexpected {type(exc).__name__}: {exc}")
            pinged: bool | None = None
            if self.opts.ping == "always" or (self.opts.ping == "on_failure" and reading is None):
                left = started + self.opts.deadline - time.monotonic()
                pinged = await ping(ap.target.host, max(0.2, min(self.opts.ping_timeout_s, left)))
        poll_s = round(time.monotonic() - started, 3)
        ap.reachable = reading is not None
        self._log_state(ap, reading, error, pinged)
        sink.emit_metrics(self.points(ap, ts, reading, pinged, poll_s))
        return reading, pinged, poll_s

    def points(
        self, ap: _Ap, ts: datetime, reading: Reading | None, pinged: bool | None, poll_s: float
    ) -> list[Point]:
        """The wire points of one poll (same measurements and fields as ``sim_ap``)."""
        dev = ap.spec.device
        fields: dict[str, bool | int | float | str] = {"reachable": reading is not None, "poll_s": poll_s}
        if pinged is not None:
            fields["ping"] = pinged
        if reading is None:
            return [Point(measurement="ap", device=dev, fields=fields, ts=ts)]
        if reading.uptime_s is not None:
            fields["uptime_s"] = reading.uptime_s
        if reading.clients is not None:
            fields["clients"] = reading.clients
        fields["profile"] = reading.profile
        points = [Point(measurement="ap", device=dev, fields=fields, ts=ts)]
        points += [
            Point(measurement="ap_radio", device=dev, tags={"band": b}, fields={"clients": n}, ts=ts)
            for b, n in sorted(reading.clients_by_radio.items())
        ]
        points += [
            Point(measurement="ap_ssid", device=dev, tags={"ssid": s}, fields={"clients": n}, ts=ts)
            for s, n in sorted(reading.clients_by_ssid.items())
        ]
        for iface in reading.interfaces:
            if self._ifname is not None and not self._ifname.search(iface.name):
                continue
            f: dict[str, bool | int | float | str] = {}
            if iface.in_octets is not None and iface.out_octets is not None:
                f["in_octets"], f["out_octets"] = iface.in_octets, iface.out_octets
            if iface.in_bps is not None:
                f["in_bps"] = iface.in_bps
            if iface.out_bps is not None:
                f["out_bps"] = iface.out_bps
            if iface.oper_up is not None:
                f["oper_up"] = iface.oper_up
            if f:
                name = iface.name[:128] or f"if{iface.index}"
                points.append(Point(measurement="ap_if", device=dev, tags={"ifname": name}, fields=f, ts=ts))
        return points[:MAX_POINTS_PER_AP]

    def _log_state(
        self, ap: _Ap, reading: Reading | None, error: SnmpError | None, pinged: bool | None
    ) -> None:
        dev, host = ap.spec.device, ap.target.address
        extra = {"device": dev, "host": host}
        if reading is not None and reading.incomplete:
            if ap.last_state != "partial":
                log.warning(
                    "AP %s at %s answered SNMP but its client and interface tables did not come in "
                    "time (%s): check the link's packet loss, or raise timeout_s / retries",
                    dev, host, reading.incomplete, extra=extra,
                )  # fmt: skip
            ap.last_state = "partial"
            return
        if reading is not None:
            if ap.last_state != "ok":
                clients = "unknown" if reading.clients is None else str(reading.clients)
                log.info(
                    "AP %s at %s answers SNMP (profile %s, %s clients)%s",
                    dev,
                    host,
                    reading.profile,
                    clients,
                    " again" if ap.last_state else "",
                    extra={**extra, "profile": reading.profile},
                )
            ap.last_state = "ok"
            return
        assert error is not None
        state = f"{error.kind}/{pinged}"
        if state == ap.last_state:
            return
        ap.last_state = state
        ping_text = {True: "ping ok", False: "no ping reply either", None: "ping not available"}[pinged]
        if error.kind == "timeout":
            waited = min(ap.target.timeout_s * (ap.target.retries + 1), self.opts.deadline)
            what = f"did not answer SNMP within {waited:g} s ({ping_text})"
        elif error.kind == "auth":
            what = f"refused our SNMPv3 credentials: {error} ({ping_text})"
        else:
            what = f"answered SNMP with an error: {error} ({ping_text})"
        if error.kind == "auth":
            hint = "check the v3 user, keys and auth/priv protocols configured for it"
        elif pinged:
            hint = "the AP is up: check the community / credentials and that SNMP is enabled on it"
        elif pinged is False:
            hint = "check the AP's power, its cable and the link to it"
        else:
            hint = "check that the AP is powered and that SNMP is enabled with this community"
        log.warning(
            "AP %s at %s %s: %s", dev, host, what, hint, extra={**extra, "ping": pinged, "error": str(error)}
        )
