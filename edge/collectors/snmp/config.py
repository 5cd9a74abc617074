"""Options of the ``snmp_ap`` collector (validated when the edge config is loaded).

No pysnmp here: the cloud validates a board's desired configuration with these models
(the device twin's schema) without the edge extra installed.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.collectors.base import CollectorOptions
from edge.collectors.snmp.client import Credentials
from edge.collectors.snmp.profile import builtin_profiles
from wire.topics import ID_PATTERN


class ApSpec(BaseModel):
    """One access point this board polls."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(pattern=ID_PATTERN, description="Device id of the AP, e.g. lx-ap-11.")
    host: str = Field(min_length=1, description="AP address (IP or name).")
    port: int = Field(default=161, ge=1, le=65535, description="SNMP UDP port.")
    profile: str | None = Field(default=None, description="Vendor profile; the collector's when unset.")
    snmp: Credentials | None = Field(default=None, description="Credentials; the collector's when unset.")


class SnmpApOptions(CollectorOptions):
    """Options of the ``snmp_ap`` collector. ``device`` is unused: each AP names its own."""

    aps: list[ApSpec] = Field(min_length=1, max_length=1000, description="Access points to poll.")
    snmp: Credentials | None = Field(default=None, description="Credentials shared by all APs.")
    profile: str = Field(default="auto", description="Vendor profile (auto, or a name in profiles/).")
    interval_s: float = Field(default=30.0, ge=1, le=3600, description="Seconds between polls.")
    check_interval_s: float | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Between polls, ask each AP for its uptime (one SNMP GET, nothing sent upstream) "
        "this often, and poll (and publish) at once when an AP stops or starts answering; so a "
        "board that publishes every 300 s to spare its 3G uplink still reports a dead AP within "
        "about this many seconds. Default: off (every poll is published anyway).",
    )
    timeout_s: float = Field(default=2.0, gt=0, le=30, description="SNMP timeout per request attempt.")
    retries: int = Field(default=1, ge=0, le=5, description="SNMP retries per request.")
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        description="Hard limit of one AP's whole poll, ping included; default: 0.8 x interval_s, "
        "at most 20 s.",
    )
    concurrency: int = Field(default=20, ge=1, le=500, description="APs polled at the same time.")
    ping: Literal["on_failure", "always", "off"] = Field(
        default="on_failure",
        description="ICMP second opinion: when SNMP fails (default), every poll, or never "
        "(then the ping field is left out).",
    )
    ping_timeout_s: float = Field(default=1.0, gt=0, le=10, description="Wait for an echo reply.")
    ifname_pattern: str | None = Field(
        default=None, description="Regular expression: report only interfaces whose name matches."
    )

    @model_validator(mode="after")
    def _check(self) -> SnmpApOptions:
        known = set(builtin_profiles())
        for name in [self.profile, *(a.profile for a in self.aps if a.profile)]:
            if name != "auto" and name not in known:
                raise ValueError(f"unknown SNMP profile {name!r}; known: auto, {', '.join(sorted(known))}")
        for ap in self.aps:
            if ap.snmp is None and self.snmp is None:
                raise ValueError(f"AP {ap.device}: no SNMP credentials (set snmp: here or on the AP)")
        ids = [a.device for a in self.aps]
        if len(set(ids)) != len(ids):
            raise ValueError("each AP needs its own device id")
        if self.ifname_pattern:
            re.compile(self.ifname_pattern)
        if self.check_interval_s is not None and self.check_interval_s >= self.interval_s:
            raise ValueError(
                f"check_interval_s ({self.check_interval_s:g}) must be shorter than interval_s "
                f"({self.interval_s:g}), or left out"
            )
        return self

    @property
    def deadline(self) -> float:
        return self.deadline_s or min(0.8 * self.interval_s, 20.0)

    @property
    def snmp_budget(self) -> float:
        """The part of the deadline SNMP may use: the rest is kept for the ping."""
        reserve = self.ping_timeout_s + 0.3 if self.ping != "off" else 0.0
        return max(0.5, self.deadline - reserve)

    def device_ids(self) -> list[str]:
        return [a.device for a in self.aps]
