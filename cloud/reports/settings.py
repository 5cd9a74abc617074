"""The ``reports:`` section of the cloud configuration (Wi-Fi usage reports, issue 8).

Kept apart from ``cloud/config.py`` so the report code and its tests import it without the
settings machinery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Format = Literal["html", "xlsx", "csv"]
FORMATS: tuple[Format, ...] = ("html", "xlsx", "csv")


class ReportsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(
        "Asia/Ho_Chi_Minh",
        description="Time zone of days, months, opening hours and hour-of-day profiles (the province's).",
    )
    opening_start: str = Field("06:00", description="Opening hours start (local HH:MM), for average clients.")
    opening_end: str = Field("22:00", description="Opening hours end (local HH:MM, exclusive).")
    max_gap_s: int = Field(
        1800,
        ge=900,
        description="Counter readings further apart than this are not differenced: a 32-bit counter "
        "may have wrapped unseen. Default: one missing 15-minute bucket is bridged, two are not.",
    )
    rollup_resample_h: int = Field(
        2,
        ge=1,
        le=48,
        description="The continuous queries re-aggregate this many hours each run, so data replayed "
        "up to this late is in the rollups; older replays wait for a refresh (monthly job, refresh=1).",
    )
    output_dir: Path = Field(
        Path("var/reports"), description="Where generated report files are kept (one folder per report)."
    )
    monthly: bool = Field(
        True, description="Build last month's report on the 1st (local time), once across all workers."
    )
    monthly_hour: int = Field(
        1,
        ge=0,
        le=23,
        description="On the 1st, build no earlier than this local hour (boards' last readings of the "
        "month arrive first); a cloud that was down on the 1st catches up at any hour.",
    )
    monthly_formats: list[Format] = Field(
        default_factory=lambda: list(FORMATS), description="Files the monthly report is kept as."
    )
    monthly_check_s: float = Field(
        600.0, gt=0, description="How often the monthly job looks whether a report is due."
    )
    language: Literal["vi", "en"] = Field("vi", description="Default language of reports.")

    @field_validator("opening_start", "opening_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        h, _, m = v.partition(":")
        if not (h.isdigit() and m.isdigit() and 0 <= int(h) <= 24 and 0 <= int(m) < 60):
            raise ValueError(f"expected HH:MM, got {v!r}")
        if int(m) % 15:
            raise ValueError(f"opening hours are in 15-minute steps (the report's resolution), got {v!r}")
        return f"{int(h):02d}:{int(m):02d}"

    def opening_minutes(self) -> tuple[int, int]:
        """Opening hours as minutes since local midnight, [start, end)."""

        def mins(s: str) -> int:
            h, m = s.split(":")
            return int(h) * 60 + int(m)

        return mins(self.opening_start), mins(self.opening_end)
