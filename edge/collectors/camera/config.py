"""The camera collector's options (validated when the edge config is loaded)."""

from __future__ import annotations

from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from edge.collectors.base import CollectorOptions
from edge.collectors.camera.motion import MotionSettings
from labels.settings import LabelSettings

Fraction = Annotated[float, Field(ge=0, le=1)]
Polygon = Annotated[list[tuple[Fraction, Fraction]], Field(min_length=3, max_length=64)]
ZoneName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class Zone(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ZoneName = Field(description="Reported in events' `zones` when motion touches the polygon.")
    polygon: Polygon = Field(description="Corners [x, y] as fractions of the frame (0..1), in order.")


class EventSettings(BaseModel):
    """When motion becomes an event and how it is reported."""

    model_config = ConfigDict(extra="forbid")

    min_duration_s: float = Field(
        default=1.0, ge=0, le=60, description="Motion must last this long before an event starts."
    )
    quiet_s: float = Field(
        default=5.0, gt=0, le=600, description="Seconds without motion that end an event (post-roll)."
    )
    update_s: float = Field(
        default=30.0, gt=0, le=3600, description="At most one `update` message per this many seconds."
    )
    max_duration_s: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="An event lasting longer is ended and a new one started (a flag or a "
        "forgotten mask then shows as a stream of long events, not one endless one).",
    )
    snapshot_width: int = Field(
        default=640, ge=64, le=1920, description="Snapshot width in px (3G uplinks: keep it small)."
    )
    jpeg_quality: int = Field(default=70, ge=10, le=100, description="Snapshot JPEG quality.")


class CameraLabels(LabelSettings):
    """Object labels on this camera's events, computed on the board (``labels`` package)."""

    enabled: bool = Field(
        default=False,
        description="Label events here, from each new snapshot frame. Needs the `labels` extra, the "
        "model (`commune-iot models fetch` on the board) and the CPU: about 4 inferences of "
        "30-60 ms on a desktop core per new snapshot, several times that on a Pi. Off: the cloud "
        "labels the snapshots (the default).",
    )


class CameraOptions(CollectorOptions):
    """One camera stream: capture, detection, events and health."""

    url: str = Field(
        min_length=1,
        description="What OpenCV opens: rtsp://host:554/path, http(s) MJPEG, or a file. Credentials "
        "may be in the URL (never logged) but belong in username + password_file.",
    )
    username: str | None = Field(default=None, description="Camera account, added to the URL.")
    password_file: Path | None = Field(
        default=None,
        description="File (mode 0600) holding the camera password, added to the URL at open time; "
        "keeps it out of the config file and the logs.",
    )
    interval_s: float = Field(default=10.0, gt=0, le=3600, description="Seconds between `camera` points.")
    expected_fps: float | None = Field(
        default=None,
        gt=0,
        le=120,
        description="The camera's configured frame rate, reported as `nominal_fps`; when unset the "
        "rate the stream declares is used.",
    )
    detect_fps: float = Field(
        default=5.0, gt=0, le=60, description="Frames per second the detector looks at."
    )
    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport.")
    open_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Give up opening after this.")
    read_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="A stream silent this long is down (then reconnect)."
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, le=600, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600, description="Reconnect delay cap.")
    frozen_after_s: float = Field(
        default=10.0, gt=0, le=3600, description="Identical pictures for this long = frozen camera."
    )
    loop_file: bool = Field(default=False, description="For a file source: play it again at its end.")
    motion: MotionSettings = Field(default_factory=MotionSettings, description="Detector settings (day).")
    night: MotionSettings | None = Field(
        default=None, description="Detector settings used between night_start and night_end (local time)."
    )
    night_start: dtime = Field(default=dtime(18, 30), description="Local time the night profile begins.")
    night_end: dtime = Field(default=dtime(5, 30), description="Local time the night profile ends.")
    masks: list[Polygon] = Field(
        default_factory=list, max_length=32, description="Polygons where motion is ignored (trees, a clock)."
    )
    zones: list[Zone] = Field(default_factory=list, max_length=16, description="Named areas that matter.")
    only_in_zones: bool = Field(default=False, description="Ignore motion outside every zone.")
    events: EventSettings = Field(default_factory=EventSettings, description="Event lifecycle and snapshots.")
    labels: CameraLabels = Field(
        default_factory=CameraLabels, description="Object labels (person, motorbike, car...) on the board."
    )

    def stream_url(self) -> str:
        """``url`` with ``username``/``password_file`` filled in (percent-encoded)."""
        if self.username is None and self.password_file is None:
            return self.url
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.url)
        user = quote(self.username or parts.username or "", safe="")
        secret = ""
        if self.password_file is not None:
            secret = ":" + quote(self.password_file.read_text(encoding="utf-8").strip(), safe="")
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, f"{user}{secret}@{host}", parts.path, parts.query, parts.fragment))

    @field_validator("zones")
    @classmethod
    def _unique(cls, zones: list[Zone]) -> list[Zone]:
        names = [z.name for z in zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique")
        return zones


class ScanConfig(BaseModel):
    """What ``commune-iot motion scan --config`` reads: a camera section, or only its detector parts."""

    model_config = ConfigDict(extra="ignore")

    motion: MotionSettings = Field(default_factory=MotionSettings)
    masks: list[Polygon] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    only_in_zones: bool = False
    events: EventSettings = Field(default_factory=EventSettings)


def load_scan_config(path: Path) -> ScanConfig:
    """A YAML with a camera collector's keys (url etc. are ignored), or an edge config: the
    first `camera` collector's section is taken."""
    doc = yaml.safe_load(path.read_text()) or {}
    if isinstance(doc, dict) and isinstance(doc.get("collectors"), list):
        cams = [c for c in doc["collectors"] if isinstance(c, dict) and c.get("type") == "camera"]
        doc = cams[0] if cams else {}
    return ScanConfig.model_validate(doc)


def load_motion_settings(path: Path) -> MotionSettings:
    return load_scan_config(path).motion
