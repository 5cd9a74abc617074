"""The camera collector's options (validated when the edge config is loaded).

Pydantic only, no OpenCV: the cloud validates a board's desired configuration with these
models (the device twin's schema) without the camera extra installed.
"""

from __future__ import annotations

from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from edge.collectors.base import CollectorOptions
from labels.settings import LabelSettings

Fraction = Annotated[float, Field(ge=0, le=1)]
Polygon = Annotated[list[tuple[Fraction, Fraction]], Field(min_length=3, max_length=64)]
ZoneName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class MotionSettings(BaseModel):
    """Detector knobs. Defaults work on the three reference clips without per-clip tuning."""

    model_config = ConfigDict(extra="forbid")

    detect_width: int = Field(
        default=320,
        ge=64,
        le=1280,
        description="Width in px of the luma image the detector works on (height keeps the aspect).",
    )
    sensitivity: float = Field(
        default=4.5,
        gt=0,
        le=20,
        description="How many times a pixel's usual deviation a change must exceed; higher = fewer "
        "alarms from water and leaves, but faint objects are missed.",
    )
    min_threshold: int = Field(
        default=6,
        ge=1,
        le=255,
        description="Grey-level change a pixel always needs, whatever its history (noise floor).",
    )
    min_area: float = Field(
        default=0.0008,
        gt=0,
        le=1,
        description="Smallest moving blob, as a share of the frame (0.0008 = 0.08 %).",
    )
    edge_area: float = Field(
        default=2.5,
        ge=1,
        le=20,
        description="A blob touching the frame's edge needs this many times min_area: an object "
        "half out of view (a car entering, a branch poking in) only counts once it is well in. "
        "A blob continuing one counted in the previous frame (an object leaving) needs min_area.",
    )
    background_s: float = Field(
        default=4.0,
        gt=0,
        le=3600,
        description="Time constant (s) of the background: slower changes (light, shadows) are absorbed.",
    )
    deviation_s: float = Field(
        default=8.0,
        gt=0,
        le=3600,
        description="Time constant (s) of each pixel's learnt deviation (water, leaves).",
    )
    global_change: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the frame changing at once that means a global change (IR switch, "
        "lightning, exposure): the background is re-learnt, no motion is reported.",
    )
    shake_px: float = Field(
        default=8.0,
        ge=0,
        le=64,
        description="Largest camera shift per frame (px at detect_width) compensated (wind on the pole, "
        "a slow pan); larger shifts enter the 'camera moving' state (0: every shift does).",
    )
    shake_check: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="Share of the frame changed above which the detector checks for camera motion "
        "(and every frame for a moment after a compensated move).",
    )
    sudden_gain: float = Field(
        default=0.15,
        gt=0,
        le=10,
        description="Whole-frame brightness step between two detected frames (0.15 = 15 %) treated as "
        "a global change even when clipping keeps the changed share low.",
    )
    settle_s: float = Field(
        default=1.0, ge=0, le=60, description="Seconds without reports after a global change or start."
    )
    warmup_s: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description="Extra seconds (beyond settle_s) after start or reconnect spent learning the "
        "scene without reports; raise it for water scenes if a reconnect gives a false event.",
    )
    start_frames: int = Field(
        default=2, ge=1, le=50, description="Motion frames within the last start_window frames to start."
    )
    start_window: int = Field(default=3, ge=1, le=50, description="Window for start_frames.")
    hold_frames: int = Field(
        default=1, ge=0, le=200, description="Quiet frames after the last motion frame before it ends."
    )
    fg_learn: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Background learning under moving pixels, relative to elsewhere (absorbs parked cars).",
    )
    spread: int = Field(
        default=1,
        ge=1,
        le=31,
        description="Neighbourhood (px, odd) whose largest learnt deviation a pixel uses: ripples move.",
    )
    persist: bool = Field(
        default=True,
        description="A blob needs a core of pixels that also changed in the previous frame: flicker "
        "(ripples, leaves, compression noise) has none worth the name, a real object has.",
    )
    core: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of min_area a blob's persistent core must cover to start motion; while "
        "motion is on none is needed (hysteresis: slow, small or half-hidden people keep counting).",
    )
    camera_motion: bool = Field(
        default=True,
        description="Estimate the camera's own motion (pan, tilt, zoom, shake) when much of the frame "
        "changes: small motion is compensated, larger motion enters a 'camera moving' state that "
        "reports no motion until the camera settles and the background is re-learnt.",
    )
    still_px: float = Field(
        default=0.75,
        gt=0,
        le=16,
        description="Camera motion between two frames below which (largest displacement of any point, "
        "px at detect_width) the camera counts as still.",
    )
    zoom_px: float = Field(
        default=1.5,
        ge=0,
        le=16,
        description="Largest zoom/rotation displacement (px at the frame's corner) compensated; more "
        "enters the 'camera moving' state.",
    )
    moving_settle_s: float = Field(
        default=0.3,
        ge=0,
        le=10,
        description="Seconds the camera must be still before leaving the 'camera moving' state.",
    )
    relearn_s: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="Seconds spent re-learning the background (no reports) after the camera settles.",
    )


class TamperSettings(BaseModel):
    """Video tampering checks; defaults raise nothing on the reference clips."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Check for covering, blinding, blur and turning.")
    check_view: bool = Field(
        default=True,
        description="Alarm when the view no longer matches the learnt scene (camera turned). "
        "Switch off for PTZ cameras that tour presets.",
    )
    every_s: float = Field(default=0.5, gt=0, le=60, description="Seconds between checks.")
    hold_s: float = Field(default=3.0, ge=0, le=600, description="A condition must last this long to raise.")
    clear_s: float = Field(default=3.0, ge=0, le=600, description="Gone this long to clear.")
    learn_s: float = Field(
        default=60.0, gt=0, le=86400, description="Time constant of the learnt scene (sharpness, structure)."
    )
    flat_std: float = Field(
        default=6.0, ge=0, le=255, description="Contrast (grey levels) below which: covered."
    )
    dark_mean: float = Field(default=22.0, ge=0, le=255, description="Brightness below which: dark (no IR).")
    blur_ratio: float = Field(
        default=0.4, gt=0, le=1, description="Sharpness below this share of the learnt scene's: blurred."
    )
    view_match: float = Field(
        default=0.2, ge=-1, le=1, description="Structure correlation below which the view counts as changed."
    )


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
    password: SecretStr | None = Field(
        default=None,
        description="The camera password itself. Set from the cloud only as a sealed secret "
        "(`commune-iot fleet config set --secret`); on the board prefer password_file.",
    )
    detect_url: str | None = Field(
        default=None,
        min_length=1,
        description="The low-resolution substream the detector decodes (e.g. Hikvision "
        "/Streaming/Channels/102, Dahua subtype=1), with the same username/password; unset: `url` "
        "itself. Decoding a 640x360 substream costs a Pi a fraction of the 1080p main stream.",
    )
    snapshot_source: Literal["detect", "main", "http"] = Field(
        default="detect",
        description="Where event snapshots come from: `detect` = the detected frame itself; `http` = "
        "snapshot_url fetched at the best frame's time (recommended with detect_url: full resolution "
        "for one HTTP request); `main` = `url`, opened only while an event is being pictured. If it "
        "fails, the detected frame is sent and the event says why (snapshot_fallback).",
    )
    snapshot_url: str | None = Field(
        default=None,
        min_length=1,
        description="HTTP(S) JPEG snapshot URL (ONVIF GetSnapshotUri, Hikvision "
        "/ISAPI/Streaming/channels/101/picture, Dahua /cgi-bin/snapshot.cgi); basic or digest auth "
        "with username + password_file. Required by snapshot_source: http.",
    )
    snapshot_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Longest wait for one high-resolution snapshot; an event is delayed by at most "
        "twice this (one fetch in flight plus its own) before it falls back to the detected frame.",
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
    tamper: TamperSettings = Field(
        default_factory=TamperSettings,
        description="Video tampering checks (covered, dark without IR, blurred, turned): stream problems.",
    )

    def secret(self) -> str | None:
        """The camera password (from ``password`` or ``password_file``), read at call time."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None

    def stream_url(self, url: str | None = None) -> str:
        """``url`` (or the given one, e.g. ``detect_url``) with ``username``/``password_file``
        filled in (percent-encoded)."""
        url = self.url if url is None else url
        if self.username is None and self.password_file is None and self.password is None:
            return url
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(url)
        user = quote(self.username or parts.username or "", safe="")
        secret = ""
        if self.password is not None:
            secret = ":" + quote(self.password.get_secret_value(), safe="")
        elif self.password_file is not None:
            secret = ":" + quote(self.password_file.read_text(encoding="utf-8").strip(), safe="")
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, f"{user}{secret}@{host}", parts.path, parts.query, parts.fragment))

    def detect_stream_url(self) -> str:
        """What the detector decodes: ``detect_url`` when set, else ``url`` (credentials in)."""
        return self.stream_url(self.detect_url or self.url)

    @property
    def hires_snapshots(self) -> bool:
        """Snapshots come from another source than the detected frames."""
        return self.snapshot_source != "detect"

    @model_validator(mode="after")
    def _one_password(self) -> CameraOptions:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either password or password_file, not both")
        return self

    @model_validator(mode="after")
    def _snapshot_source(self) -> CameraOptions:
        if self.snapshot_source == "http":
            if self.snapshot_url is None:
                raise ValueError("snapshot_source: http needs snapshot_url (the camera's JPEG snapshot URL)")
            if not self.snapshot_url.lower().startswith(("http://", "https://")):
                raise ValueError("snapshot_url must be an http:// or https:// URL")
        if self.snapshot_source == "main" and (self.detect_url is None or self.detect_url == self.url):
            raise ValueError(
                "snapshot_source: main needs detect_url (a substream): without one the detected "
                "frames already are the main stream's"
            )
        return self

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
