"""Report ranges in the province's time zone: days, weeks, months, and the period before.

A report covers ``[start, end)`` between two local midnights. Vietnam has no daylight
saving time, but the arithmetic goes through ``zoneinfo`` anyway, so the code stays right
if the zone is configured to one that has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
STORABLE = (date(1700, 1, 1), date(2250, 12, 31))


@dataclass(frozen=True, slots=True)
class Period:
    """Local dates ``first`` .. ``last`` inclusive, as an absolute range ``[start, end)``."""

    first: date
    last: date
    tz: str

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the range ends ({self.last}) before it starts ({self.first})")
        # InfluxDB stores nanoseconds since 1970 in 64 bits (1677-2262).
        if self.first < STORABLE[0] or self.last > STORABLE[1]:
            raise ValueError(f"{self.first} to {self.last} is outside what InfluxDB can store")

    def check_supported(self) -> Period:
        """A range someone asked for: dates far from the network's life are a typo, answered
        as such (the previous period of a report may reach before EARLIEST; that is fine)."""
        if self.first < EARLIEST or self.last > LATEST:
            raise ValueError(f"reports cover {EARLIEST} to {LATEST}; got {self.first} to {self.last}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), self.zone)

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def previous(self) -> Period:
        """The period of equal length (in days) just before this one."""
        n = timedelta(days=self.days)
        return Period(self.first - n, self.first - timedelta(days=1), self.tz)

    @property
    def is_month(self) -> bool:
        return self.first.day == 1 and (self.last + timedelta(days=1)).day == 1 and self.days >= 28

    @property
    def key(self) -> str:
        """``2026-11`` for a calendar month, else ``2026-11-01_2026-11-07``."""
        if self.is_month:
            return self.first.strftime("%Y-%m")
        return f"{self.first.isoformat()}_{self.last.isoformat()}"

    def local(self, ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, self.zone)


def month_of(day: date, tz: str) -> Period:
    """The calendar month containing ``day``."""
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return Period(first, nxt - timedelta(days=1), tz)


def last_month(now: datetime, tz: str) -> Period:
    """The calendar month before the one ``now`` falls in (local time)."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return month_of(today.replace(day=1) - timedelta(days=1), tz)


def week_of(day: date, tz: str) -> Period:
    """Monday to Sunday containing ``day``."""
    monday = day - timedelta(days=day.weekday())
    return Period(monday, monday + timedelta(days=6), tz)


def parse_range(first: str, last: str | None, tz: str) -> Period:
    """``--from``/``--to`` (ISO dates, ``--to`` inclusive); ``2026-11`` alone means that month."""
    if len(first) == 7 and last is None:
        y, m = first.split("-")
        return month_of(date(int(y), int(m), 1), tz).check_supported()
    d0 = date.fromisoformat(first)
    d1 = date.fromisoformat(last) if last else d0
    return Period(d0, d1, tz).check_supported()
