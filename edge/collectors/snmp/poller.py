"""Read one access point: identity, uptime, client counts and interfaces, in a few requests.

One :class:`ApPoller` per AP keeps what must survive between polls (the chosen profile,
whether the AP needs 32-bit counters, the last counter samples). The collector and the
``snmp probe`` command both use it, so what a technician sees is what the board sends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from edge.collectors.snmp.client import SnmpClient, SnmpError, Target, Value
from edge.collectors.snmp.profile import GENERIC, Profile, as_text, candidates, get_profile
from edge.collectors.snmp.rates import CounterTracker, Sample

SYS_DESCR: Final = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID: Final = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME: Final = "1.3.6.1.2.1.1.3.0"  # TimeTicks; resets when the agent restarts, wraps at 497 days
HR_SYSTEM_UPTIME: Final = "1.3.6.1.2.1.25.1.1.0"  # TimeTicks of the host (survives agent restarts)
SNMP_ENGINE_TIME: Final = "1.3.6.1.6.3.10.2.1.3.0"  # seconds since the engine's last boot
SYSTEM_OIDS: Final = [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, HR_SYSTEM_UPTIME, SNMP_ENGINE_TIME]

IF_DESCR: Final = "1.3.6.1.2.1.2.2.1.2"
IF_OPER_STATUS: Final = "1.3.6.1.2.1.2.2.1.8"
IF_IN_OCTETS: Final = "1.3.6.1.2.1.2.2.1.10"
IF_OUT_OCTETS: Final = "1.3.6.1.2.1.2.2.1.16"
IF_NAME: Final = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS: Final = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS: Final = "1.3.6.1.2.1.31.1.1.1.10"
IF_COLUMNS: Final = [IF_DESCR, IF_OPER_STATUS, IF_NAME, IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS]

OPER_STATUS: Final = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}
#: An uptime beyond this is a broken agent, not a device (LibreNMS flags such snmpEngineTimes too).
MAX_UPTIME_S: Final = 20 * 365 * 86400


@dataclass
class Interface:
    index: int
    name: str
    status: str | None
    in_octets: int | None = None
    out_octets: int | None = None
    bits: int = 64
    in_bps: float | None = None
    out_bps: float | None = None

    @property
    def oper_up(self) -> bool | None:
        return None if self.status is None else self.status == "up"


@dataclass
class Reading:
    """What one poll learnt about an AP. ``clients`` is None when the profile has no way to
    count them (never 0 for "unknown")."""

    profile: str
    sys_descr: str | None
    sys_object_id: str | None
    uptime_s: int | None
    uptime_source: str | None
    clients: int | None
    clients_by_radio: dict[str, int] = field(default_factory=dict)
    clients_by_ssid: dict[str, int] = field(default_factory=dict)
    interfaces: list[Interface] = field(default_factory=list)
    poll_s: float = 0.0
    #: Why the tables (clients, interfaces) are missing although the AP answered; None if complete.
    incomplete: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``snmp probe --json`` document."""
        return {
            "profile": self.profile,
            "sys_descr": self.sys_descr,
            "sys_object_id": self.sys_object_id,
            "uptime_s": self.uptime_s,
            "uptime_source": self.uptime_source,
            "clients": self.clients,
            "clients_available": self.clients is not None,
            "clients_by_radio": self.clients_by_radio,
            "clients_by_ssid": self.clients_by_ssid,
            "interfaces": [
                {
                    "index": i.index,
                    "name": i.name,
                    "status": i.status,
                    "in_octets": i.in_octets,
                    "out_octets": i.out_octets,
                    "counter_bits": i.bits if i.in_octets is not None else None,
                }
                for i in self.interfaces
            ],
            "poll_s": round(self.poll_s, 3),
            "incomplete": self.incomplete,
        }


def best_uptime(values: dict[str, Value], distrust: list[str]) -> tuple[int | None, str | None]:
    """The most trustworthy uptime in seconds, and which object gave it.

    Every source can only under-state how long the device has run: sysUpTime restarts with the
    SNMP agent and wraps at 497 days, hrSystemUptime wraps too, snmpEngineTime restarts with the
    engine. So the largest sane value wins (as LibreNMS does), skipping sources the profile
    distrusts and values that are not plausible.
    """
    found: list[tuple[float, str]] = []
    for oid, name, scale in (
        (SYS_UPTIME, "sysUpTime", 100),
        (HR_SYSTEM_UPTIME, "hrSystemUptime", 100),
        (SNMP_ENGINE_TIME, "snmpEngineTime", 1),
    ):
        raw = values.get(oid)
        if name in distrust or not isinstance(raw, int) or raw < 0:
            continue
        seconds = raw / scale
        if seconds <= MAX_UPTIME_S:
            found.append((seconds, name))
    if not found:
        return None, None
    seconds, name = max(found)
    return round(seconds), name


class ApPoller:
    """Polls one AP. ``profile`` is a profile name or ``auto`` (chosen on the first answer and
    again whenever the device's sysObjectID or sysDescr changes, e.g. after a firmware swap)."""

    def __init__(self, target: Target, auth: Any, profile: str = "auto", *, device: str = "") -> None:
        self.target = target
        self.auth = auth
        self.want = profile
        self.device = device or target.host
        self.profile: Profile | None = None if profile == "auto" else get_profile(profile)
        self._identity: tuple[str | None, str | None] | None = None
        self._needs_32bit: bool | None = None
        self.counters = CounterTracker()

    async def _detect(self, client: SnmpClient, oid: str | None, descr: str | None) -> Profile:
        for score, profile in candidates(oid, descr):
            if profile.match.probe:
                if not await self._answers(client, profile.match.probe):
                    continue
            elif score == 0:
                continue
            return profile
        return get_profile(GENERIC)

    async def _answers(self, client: SnmpClient, oids: list[str]) -> bool:
        """Whether any of ``oids`` holds a value: an instance (GET) or a subtree (walk)."""
        got = await client.get(self.target, oids, self.auth)
        if any(v is not None for v in got.values()):
            return True
        walked = await client.walk(self.target, oids, self.auth, max_rows=1)
        return any(walked.values())

    async def poll(self, client: SnmpClient) -> Reading:
        """One complete poll; raises :class:`SnmpError` when the AP does not answer."""
        started = time.monotonic()
        profile = self.profile
        extra = profile.get_oids() if profile else []
        got = await client.get(self.target, [*SYSTEM_OIDS, *extra], self.auth)
        descr = as_text(got.get(SYS_DESCR))
        oid_value = got.get(SYS_OBJECT_ID)
        sys_oid = oid_value if isinstance(oid_value, str) else None
        if self.want == "auto" and (profile is None or self._identity != (sys_oid, descr)):
            profile = self.profile = await self._detect(client, sys_oid, descr)
            self._identity = (sys_oid, descr)
            if profile.get_oids():
                got.update(await client.get(self.target, profile.get_oids(), self.auth))
        assert profile is not None
        uptime, source = best_uptime(got, list(profile.distrust_uptime))
        answered_at = time.monotonic()

        # Client tables and the interface table side by side: one GETBULK carries both.
        try:
            walked = await client.walk(self.target, [*profile.walk_oids(), *IF_COLUMNS], self.auth)
            interfaces = await self._interfaces(client, walked, uptime, answered_at)
        except SnmpError as exc:
            if exc.kind == "auth":
                raise
            # It answered, but its tables did not come in time (a lossy link, a busy agent):
            # report what is known rather than calling a live AP unreachable.
            return Reading(
                profile=profile.name,
                sys_descr=descr,
                sys_object_id=sys_oid,
                uptime_s=uptime,
                uptime_source=source,
                clients=profile.total(got, {}) if profile.knows_clients else None,
                poll_s=time.monotonic() - started,
                incomplete=str(exc),
            )
        return Reading(
            profile=profile.name,
            sys_descr=descr,
            sys_object_id=sys_oid,
            uptime_s=uptime,
            uptime_source=source,
            clients=profile.total(got, walked) if profile.knows_clients else None,
            clients_by_radio=profile.breakdown("by_radio", walked),
            clients_by_ssid=profile.breakdown("by_ssid", walked),
            interfaces=interfaces,
            poll_s=time.monotonic() - started,
        )

    async def _interfaces(
        self, client: SnmpClient, cols: dict[str, dict[str, Value]], uptime: int | None, at: float
    ) -> list[Interface]:
        indexes = sorted({int(i) for c in IF_COLUMNS for i in cols[c] if i.isdigit()})
        hc_in, hc_out = cols[IF_HC_IN_OCTETS], cols[IF_HC_OUT_OCTETS]
        lacking = [i for i in indexes if not isinstance(hc_in.get(str(i)), int)]
        if lacking and self._needs_32bit is not False:
            more = await client.walk(self.target, [IF_IN_OCTETS, IF_OUT_OCTETS], self.auth)
            self._needs_32bit = bool(more[IF_IN_OCTETS])  # none at all: do not ask again
        else:
            more = {IF_IN_OCTETS: {}, IF_OUT_OCTETS: {}}
        out: list[Interface] = []
        keep: set[tuple[str, ...]] = set()
        for i in indexes:
            k = str(i)
            name = as_text(cols[IF_NAME].get(k)) or as_text(cols[IF_DESCR].get(k)) or f"if{i}"
            status_raw = cols[IF_OPER_STATUS].get(k)
            status = OPER_STATUS.get(status_raw, "unknown") if isinstance(status_raw, int) else None
            iface = Interface(index=i, name=name, status=status)
            vin, vout = hc_in.get(k), hc_out.get(k)
            if isinstance(vin, int) and isinstance(vout, int):
                iface.in_octets, iface.out_octets, iface.bits = vin, vout, 64
            else:
                vin, vout = more[IF_IN_OCTETS].get(k), more[IF_OUT_OCTETS].get(k)
                if isinstance(vin, int) and isinstance(vout, int):
                    iface.in_octets, iface.out_octets, iface.bits = vin, vout, 32
            if iface.in_octets is not None and iface.out_octets is not None:
                for direction, value in (("in", iface.in_octets), ("out", iface.out_octets)):
                    key = (k, name, direction)
                    keep.add(key)
                    bps = self.counters.update(key, Sample(value, iface.bits, at, uptime))
                    setattr(iface, f"{direction}_bps", bps)
            if status is None and iface.in_octets is None:
                continue
            out.append(iface)
        self.counters.forget(keep)
        return out
