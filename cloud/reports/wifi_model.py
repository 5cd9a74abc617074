"""The result of a Wi-Fi report: plain numbers, the same for HTML, XLSX, CSV and JSON.

Every renderer reads these models and nothing else, so the formats cannot disagree.
Units are in the field names; times are local (the report's time zone) ISO 8601.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

Level = Literal["all", "commune", "site", "ap"]

#: Metrics compared with the previous period (percent change; availability in points).
COMPARED = ("client_hours", "avg_clients_open", "peak_clients", "traffic_in_bytes", "traffic_out_bytes")


class Metrics(BaseModel):
    """A null figure is *no data* (nothing was measured), never zero."""

    aps: int = Field(description="Access points counted.")
    peak_clients: float | None = Field(
        description="Most concurrent clients: the largest bucket value (sum over the APs for a group)."
    )
    peak_at: datetime | None = Field(description="Start of the peak bucket, local time.")
    avg_clients_open: float | None = Field(
        description="Average concurrent clients during opening hours (sum of the APs' averages)."
    )
    client_hours: float | None = Field(
        description="Integral of clients over time, in client-hours; null: no client readings."
    )
    traffic_in_bytes: float | None = Field(
        description="Octets received by the APs' interfaces (counters); null: no counter readings."
    )
    traffic_out_bytes: float | None = Field(
        description="Octets sent by the APs' interfaces (counters); null: no counter readings."
    )
    availability_pct: float | None = Field(
        description="Up time / (period - unknown time) x 100; null when all of it was unknown or "
        "there was neither a reading nor an outage record."
    )
    coverage_pct: float | None = Field(
        None,
        description="Share of the measured part of the period (15-minute buckets x APs) with client "
        "readings, in %: how much of the period the other figures rest on. Null: nothing measured yet.",
    )
    down_s: float | None = Field(description="Time the AP itself was down (device outages, overlaps once).")
    unknown_s: float | None = Field(description="Time behind an offline board or commune uplink: not judged.")
    outages: int | None = Field(description="AP outages (device scope) overlapping the period.")
    board_outages: int | None = Field(description="Board or commune outages overlapping the period.")
    hourly_profile: list[float | None] = Field(
        description="Average clients per local hour of day 0-23 (sum over the APs)."
    )
    busiest_hours: list[int] = Field(description="Up to three local hours with the most clients.")


class Row(BaseModel):
    level: Level
    id: str
    name: str
    commune: str = Field(description="Commune id ('' for the total).")
    site: str = Field(description="Site (village) id for site and AP rows, else ''.")
    metrics: Metrics
    previous: Metrics | None = Field(description="The same figures for the previous period.")
    change_pct: dict[str, float | None] = Field(
        description="Percent change against the previous period of: " + ", ".join(COMPARED)
    )
    change_availability_pts: float | None = Field(description="Availability change in percentage points.")


class Series(BaseModel):
    start: datetime = Field(description="Local time of the first value.")
    step_s: int = Field(description="Seconds between values.")
    lines: dict[str, list[float | None]] = Field(
        description="Average concurrent clients per step: 'all' and one line per commune."
    )


class Rollups(BaseModel):
    """How fresh the 15-minute rollups the report was read from are (docs/reports.md).

    Before each build the readings stored per local day are counted in the raw ``ap``
    measurement and in the rollup; a day with more raw readings than the rollup holds
    (data replayed later than the continuous queries look back, a cloud just started,
    continuous queries missing) is stale and is re-aggregated before the report is read.
    """

    data_until: datetime = Field(
        description="Local end of the last whole 15-minute bucket the figures cover (the period's end "
        "for a past period)."
    )
    checked: bool = Field(
        description="The rollups were compared with the raw readings (or all re-aggregated) for this "
        "build; false: the check failed (see error)."
    )
    stale_days: list[date] = Field(
        default_factory=list,
        description="Local days (of the period and the previous one) whose rollups lacked readings.",
    )
    refreshed: bool = Field(False, description="The stale days were re-aggregated before reading.")
    error: str = Field("", description="Why the check or the refresh failed (the figures may lack data).")


class WifiReport(BaseModel):
    first: date = Field(description="First local day of the period.")
    last: date = Field(description="Last local day (inclusive).")
    timezone: str
    commune: str | None = Field(description="Commune the report is limited to; null: all.")
    previous_first: date
    previous_last: date
    generated_at: datetime
    grain_s: int = Field(description="Resolution clients and counters were read at.")
    gap_s: int = Field(description="Counter readings further apart than this are not differenced.")
    opening_hours: tuple[str, str]
    measured_until: datetime = Field(
        description="End of the measured part (now, for a running period); availability counts to here."
    )
    rollups: Rollups | None = Field(None, description="Freshness of the rollups (null in older reports).")
    total: Row
    communes: list[Row]
    sites: list[Row]
    aps: list[Row]
    series: Series
    heatmap: list[list[float | None]] = Field(
        description="Average clients by local weekday (0 = Monday) x hour (0-23), over the report's APs."
    )

    def rows(self) -> list[Row]:
        return [self.total, *self.communes, *self.sites, *self.aps]
