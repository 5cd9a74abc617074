"""Vendor profiles as data: how to recognise an access point and where it keeps client counts.

One YAML file per vendor in ``profiles/``; adding a vendor is adding a file (no code). A
profile names OIDs numerically because vendor MIB files are not installed on a board.
This module validates profiles and turns what was read over SNMP into client counts; the
reading itself is in :mod:`edge.collectors.snmp.poller`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from edge.collectors.snmp.client import Value

Oid = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)+$")]

#: net-snmp's NET-SNMP-EXTEND-MIB::nsExtendOutput1Line column (index = extend name as a string).
EXTEND_OUTPUT_1LINE = "1.3.6.1.4.1.8072.1.3.2.3.1.1"


def extend_oid(name: str) -> str:
    """OID of nsExtendOutput1Line."name" (the index is the name's length, then its bytes)."""
    raw = name.encode()
    return EXTEND_OUTPUT_1LINE + "." + ".".join(str(x) for x in (len(raw), *raw))


def index_string(index: str) -> str | None:
    """Decode a string-valued table index (length, then character codes): '6.87.73...' -> 'WIFIOG'."""
    parts = [int(p) for p in index.split(".")]
    if not parts or parts[0] != len(parts) - 1 or not all(0 <= p < 256 for p in parts[1:]):
        return None
    return bytes(parts[1:]).decode("utf-8", "replace")


def as_int(value: Value) -> int | None:
    """A count from an integer, or from a text number (net-snmp ``extend`` outputs are STRINGs)."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace").strip()
        m = re.match(r"^-?\d+", text)
        return int(m.group()) if m else None
    return None


def as_text(value: Value) -> str | None:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace").strip().strip("\x00")
        return text or None
    if isinstance(value, int | str):
        return str(value)
    return None


def band_from_mhz(value: Value) -> str | None:
    mhz = as_int(value)
    if mhz is None:
        return None
    if 2400 <= mhz <= 2500:
        return "2.4GHz"
    if 4900 <= mhz < 5925:
        return "5GHz"
    if 5925 <= mhz <= 7125:
        return "6GHz"
    return None


def band_from_channel(value: Value) -> str | None:
    text = as_text(value)
    m = re.match(r"^\s*(\d+)", text or "")
    if not m:
        return None
    ch = int(m.group(1))
    if 1 <= ch <= 14:
        return "2.4GHz"
    if 32 <= ch <= 177:
        return "5GHz"
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(_Model):
    """How ``auto`` recognises the device. A profile is a candidate when its sysObjectID prefix
    or sysDescr pattern matches (or, with ``probe_alone``, when a probe answers); when probes are
    listed, one of them must also answer, which tells apart vendors that share a sysObjectID."""

    sys_object_id: list[Oid] = Field(default_factory=list, description="sysObjectID prefixes.")
    sys_descr: str | None = Field(default=None, description="Regular expression searched in sysDescr.")
    probe: list[Oid] = Field(
        default_factory=list, description="Subtrees of which at least one must hold a value."
    )
    probe_alone: bool = Field(default=False, description="An answering probe is enough to match.")


class Count(_Model):
    """One way to get the total: tried in order, the first that gives a number wins."""

    method: Literal["sum", "count", "scalar", "extend"] = Field(
        description="sum: walk columns and add their rows; count: count the rows of a column (a client "
        "table); scalar: GET these OIDs and add them; extend: net-snmp extend names whose output is a number."
    )
    oids: list[Oid] = Field(default_factory=list, description="Columns (sum, count) or OIDs (scalar).")
    extend: list[str] = Field(default_factory=list, description="Extend names (method extend).")

    @model_validator(mode="after")
    def _check(self) -> Count:
        if self.method == "extend" and not self.extend:
            raise ValueError("method extend needs extend names")
        if self.method != "extend" and not self.oids:
            raise ValueError(f"method {self.method} needs oids")
        return self

    def get_oids(self) -> list[str]:
        if self.method == "scalar":
            return list(self.oids)
        if self.method == "extend":
            return [extend_oid(n) for n in self.extend]
        return []

    def walk_oids(self) -> list[str]:
        return list(self.oids) if self.method in ("sum", "count") else []


LabelKind = Literal["text", "band_mhz", "band_channel"]


class Series(_Model):
    """Rows of per-radio or per-SSID counts. Each row's label comes from a constant, a column
    with the same index, the index itself (a string index), or, for net-snmp extends, the
    output of a sibling extend; rows with the same label are added up."""

    values: Oid | None = Field(default=None, description="Column of counts (walked).")
    extend_regex: str | None = Field(
        default=None, description="Extend names that hold counts, e.g. '^clients-(wlan\\d+)$'."
    )
    label: str | None = Field(default=None, description="Constant label for every row.")
    label_column: Oid | None = Field(default=None, description="Column (same index) giving the label.")
    label_index: bool = Field(default=False, description="The row index is a string: decode it.")
    label_extend: str | None = Field(
        default=None, description="Extend whose output is the label; {0} = the regex's first group."
    )
    label_kind: LabelKind = Field(
        default="text", description="text, band_mhz (frequency in MHz) or band_channel (channel number)."
    )
    label_map: dict[str, str] = Field(default_factory=dict, description="Raw label -> reported label.")

    @model_validator(mode="after")
    def _check(self) -> Series:
        if (self.values is None) == (self.extend_regex is None):
            raise ValueError("give exactly one of values or extend_regex")
        sources = [self.label is not None, self.label_column is not None, self.label_index]
        sources.append(self.label_extend is not None)
        if sum(sources) != 1:
            raise ValueError("give exactly one of label, label_column, label_index, label_extend")
        if self.label_extend is not None and self.extend_regex is None:
            raise ValueError("label_extend goes with extend_regex")
        if self.extend_regex is not None:
            re.compile(self.extend_regex)
        return self

    def walk_oids(self) -> list[str]:
        if self.extend_regex is not None:
            return [EXTEND_OUTPUT_1LINE]
        cols = [self.values] if self.values else []
        if self.label_column:
            cols.append(self.label_column)
        return [c for c in cols if c]

    def _label(self, raw: Value) -> str | None:
        if self.label_kind == "band_mhz":
            text = band_from_mhz(raw)
        elif self.label_kind == "band_channel":
            text = band_from_channel(raw)
        else:
            text = as_text(raw)
        if text is None:
            return None
        return self.label_map.get(text, text)[:128]

    def rows(self, walked: Mapping[str, Mapping[str, Value]]) -> dict[str, int]:
        """Label -> count from the walked columns."""
        out: dict[str, int] = {}
        if self.extend_regex is not None:
            ext = {index_string(i): v for i, v in walked.get(EXTEND_OUTPUT_1LINE, {}).items()}
            rx = re.compile(self.extend_regex)
            for name, value in ext.items():
                m = rx.match(name or "")
                count = as_int(value)
                if not m or count is None or self.label_extend is None:
                    continue
                found = self._label(ext.get(self.label_extend.format(*m.groups(), **m.groupdict())))
                if found:
                    out[found] = out.get(found, 0) + count
            return out
        assert self.values is not None
        labels = walked.get(self.label_column, {}) if self.label_column else {}
        for index, value in walked.get(self.values, {}).items():
            count = as_int(value)
            if count is None:
                continue
            if self.label is not None:
                label: str | None = self.label
            elif self.label_index:
                label = index_string(index)
                label = self.label_map.get(label, label) if label else None
            else:
                label = self._label(labels.get(index))
            if label:
                out[label] = out.get(label, 0) + count
        return out


class Clients(_Model):
    total: list[Count] = Field(default_factory=list, description="Ways to get the total, tried in order.")
    by_radio: list[Series] = Field(default_factory=list, description="Per-radio (band) counts.")
    by_ssid: list[Series] = Field(default_factory=list, description="Per-SSID counts.")


class Profile(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Profile name (file name).")
    vendor: str = Field(description="Vendor and product family, for people.")
    priority: int = Field(default=0, description="Breaks ties between profiles that match equally.")
    match: Match = Field(default_factory=Match)
    clients: Clients = Field(default_factory=Clients)
    distrust_uptime: list[Literal["sysUpTime", "hrSystemUptime", "snmpEngineTime"]] = Field(
        default_factory=list, description="Uptime sources this vendor gets wrong; never used."
    )
    notes: str = Field(default="", description="Where the OIDs come from, caveats, firmware versions.")

    @property
    def knows_clients(self) -> bool:
        return bool(self.clients.total)

    def walk_oids(self) -> list[str]:
        cols: list[str] = []
        for c in self.clients.total:
            cols += c.walk_oids()
        for s in (*self.clients.by_radio, *self.clients.by_ssid):
            cols += s.walk_oids()
        return list(dict.fromkeys(cols))

    def get_oids(self) -> list[str]:
        oids: list[str] = []
        for c in self.clients.total:
            oids += c.get_oids()
        return list(dict.fromkeys(oids))

    def total(self, got: Mapping[str, Value], walked: Mapping[str, Mapping[str, Value]]) -> int | None:
        """The client total by the first method that has data, None when none has."""
        for c in self.clients.total:
            if c.method in ("scalar", "extend"):
                values = [as_int(got.get(o)) for o in c.get_oids()]
                if values and all(v is not None for v in values):
                    return sum(v for v in values if v is not None)
            else:
                rows = [walked.get(o, {}) for o in c.oids]
                if not any(rows):
                    continue
                if c.method == "count":
                    return sum(len(r) for r in rows)
                counts = [as_int(v) for r in rows for v in r.values()]
                return sum(v for v in counts if v is not None)
        return None

    def breakdown(
        self, which: Literal["by_radio", "by_ssid"], walked: Mapping[str, Mapping[str, Value]]
    ) -> dict[str, int]:
        out: dict[str, int] = {}
        for series in getattr(self.clients, which):
            for label, n in series.rows(walked).items():
                out[label] = out.get(label, 0) + n
        return out


class ProfileError(ValueError):
    """A profile file that cannot be used, or an unknown profile name."""


@cache
def builtin_profiles() -> dict[str, Profile]:
    """Every profile in ``profiles/*.yaml``, by name (read once)."""
    out: dict[str, Profile] = {}
    folder = resources.files("edge.collectors.snmp") / "profiles"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            profile = Profile.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            raise ProfileError(f"profile {entry.name}: {exc}") from None
        if profile.name != entry.name.removesuffix(".yaml"):
            raise ProfileError(f"profile {entry.name}: name {profile.name!r} differs from the file name")
        out[profile.name] = profile
    return out


GENERIC = "generic"


def get_profile(name: str) -> Profile:
    profiles = builtin_profiles()
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}; known: auto, {', '.join(sorted(profiles))}")
    return profiles[name]


def candidates(sys_object_id: str | None, sys_descr: str | None) -> list[tuple[int, Profile]]:
    """Profiles that may fit, best first, with the score of their identity hints (0 = probe only)."""
    found: list[tuple[int, Profile]] = []
    oid = (sys_object_id or "").strip(".")
    for p in builtin_profiles().values():
        if p.name == GENERIC:
            continue
        score = 0
        if any(oid == pre or oid.startswith(pre + ".") for pre in p.match.sys_object_id):
            score += 2
        if p.match.sys_descr and sys_descr is not None and re.search(p.match.sys_descr, sys_descr):
            score += 2
        if score or (p.match.probe_alone and p.match.probe):
            found.append((score, p))
    found.sort(key=lambda sp: (-sp[0], -sp[1].priority, sp[1].name))
    return found
