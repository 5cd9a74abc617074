"""Board health from /proc and /sys, without psutil (one less native wheel on a Pi).

Anything the board cannot tell us (no thermal zone in a container, no /proc on a
developer's Mac) is reported as null rather than guessed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class _CpuTimes:
    busy: int
    total: int


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


class BoardHealth:
    """Reads the board's vital signs; CPU % is the average since the previous reading."""

    def __init__(self, disk_path: Path, *, proc: Path = Path("/proc"), sys: Path = Path("/sys")) -> None:
        self.disk_path = disk_path
        self.proc = proc
        self.sys = sys
        self._cpu = self._cpu_times()

    def _cpu_times(self) -> _CpuTimes | None:
        text = _read(self.proc / "stat")
        if not text or not text.startswith("cpu "):
            return None
        values = [int(v) for v in text.splitlines()[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already counted in user/nice
        return _CpuTimes(busy=total - idle, total=total)

    def cpu_pct(self) -> float | None:
        now = self._cpu_times()
        before, self._cpu = self._cpu, now
        if now is None or before is None or now.total - before.total < 10:  # too short to mean much
            return None
        return round(100.0 * (now.busy - before.busy) / (now.total - before.total), 1)

    def loadavg(self) -> tuple[float, float, float] | None:
        text = _read(self.proc / "loadavg")
        if not text:
            return None
        a, b, c = (float(v) for v in text.split()[:3])
        return a, b, c

    def memory(self) -> tuple[float, float] | None:
        """(used %, available MB) from MemTotal and MemAvailable."""
        text = _read(self.proc / "meminfo")
        if not text:
            return None
        info: dict[str, int] = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                info[key] = int(parts[0])  # kB
        total, avail = info.get("MemTotal"), info.get("MemAvailable")
        if not total or avail is None:
            return None
        return round(100.0 * (total - avail) / total, 1), round(avail / 1024, 1)

    def disk(self) -> tuple[float, float] | None:
        """(used %, free MB) of the filesystem holding the outbox, as a non-root process sees it."""
        path = self.disk_path
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        total = st.f_blocks * st.f_frsize
        if total <= 0:
            return None
        free = st.f_bavail * st.f_frsize
        used = total - st.f_bfree * st.f_frsize
        return round(100.0 * used / (used + free), 1) if used + free else 0.0, round(free / 2**20, 1)

    def temperature_c(self) -> float | None:
        """Highest CPU/SoC temperature from thermal zones, else hwmon; None when neither exists."""
        readings: list[float] = []
        for pattern in ("class/thermal/thermal_zone*/temp", "class/hwmon/hwmon*/temp*_input"):
            for path in sorted(self.sys.glob(pattern)):
                text = _read(path)
                try:
                    milli = int(text.strip()) if text else None
                except ValueError:
                    milli = None
                if milli is not None and -60_000 <= milli <= 150_000:
                    readings.append(milli / 1000.0)
            if readings:
                break
        return round(max(readings), 1) if readings else None

    def board_uptime_s(self) -> float | None:
        text = _read(self.proc / "uptime")
        return float(text.split()[0]) if text else None

    def read(self) -> dict[str, Any]:
        """The board fields of :class:`wire.Health` (nulls where unknown)."""
        out: dict[str, Any] = {"cpu_pct": self.cpu_pct(), "board_uptime_s": self.board_uptime_s()}
        if (load := self.loadavg()) is not None:
            out["load1"], out["load5"], out["load15"] = load
        if (mem := self.memory()) is not None:
            out["mem_used_pct"], out["mem_avail_mb"] = mem
        if (disk := self.disk()) is not None:
            out["disk_used_pct"], out["disk_free_mb"] = disk
        out["temp_c"] = self.temperature_c()
        return out


class AgentClock:
    """Agent uptime on the monotonic clock (immune to NTP steps after a board boots offline)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 3)
