"""Helpers for the SNMP tests: where the recordings are, what LibreNMS expected of them, and
altered copies of a recording (the recordings are static; rates need counters that move)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: Real AP recordings beside the repository (never copied into it): ../shared/testdata/snmp
RECORDINGS = REPO.parent / "shared" / "testdata" / "snmp"


def expected_devices() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = json.loads((RECORDINGS / "expected.json").read_text())["devices"]
    return devices


def read_snmprec(name: str) -> dict[str, tuple[str, str]]:
    """OID -> (type, value) of a recording, in file order."""
    out: dict[str, tuple[str, str]] = {}
    for line in (RECORDINGS / f"{name}.snmprec").read_text(errors="replace").splitlines():
        if line.count("|") >= 2:
            oid, typ, value = line.split("|", 2)
            out[oid] = (typ, value)
    return out


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


class EditableRecording:
    """A recording of our own under a temp dir that a test rewrites between polls; snmpsim
    re-reads a data file when its modification time (whole seconds) changes, so every write
    moves the time forward explicitly."""

    def __init__(self, data_dir: Path, community: str) -> None:
        self.path = data_dir / f"{community}.snmprec"
        self.community = community
        self._mtime = time.time() - 3600

    def write(self, records: dict[str, tuple[str, str]]) -> None:
        lines = [f"{oid}|{t}|{v}" for oid, (t, v) in sorted(records.items(), key=lambda kv: _oid_key(kv[0]))]
        self.path.write_text("\n".join(lines) + "\n")
        self._mtime += 10
        os.utime(self.path, (self._mtime, self._mtime))
