"""The ``alerting:`` section of the cloud configuration.

Kept apart from ``cloud/config.py`` so the engine and its tests import it without the
settings machinery. Defaults are chosen for the shipped edge defaults (health every 10 s,
MQTT keepalive 10 s): a silent site alerts in under 20 s, a 30 s broker restart alerts
nobody, and a device flapping every 5 s stays one alert.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.notify.settings import NotifyConfig


class AlertingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the alert evaluator in this process.")
    tick_s: float = Field(1.0, gt=0, le=60, description="How often the evaluator judges every node.")
    silence_factor: float = Field(
        1.5,
        ge=1.0,
        le=20,
        description="A node is silent when nothing arrived for silence_factor x its health_interval_s "
        "(from its birth certificate), but never less than silence_floor_s. 1.5 tolerates one late "
        "heartbeat by half an interval; the grace period below absorbs a single slower one.",
    )
    silence_floor_s: float = Field(
        12.0, gt=0, description="Shortest silence ever judged an outage, whatever the node's interval."
    )
    default_health_interval_s: float = Field(
        10.0, gt=0, description="Heartbeat interval assumed for a node whose birth did not state one."
    )
    grace_s: float = Field(
        3.0,
        ge=0,
        description="A node must stay down this long before an alert opens, so a reconnect after a "
        "Will or a single late heartbeat alerts nobody.",
    )
    recovery_s: float = Field(
        10.0,
        ge=0,
        description="A node must stay up this long before its alert resolves; a shorter return is "
        "counted as a flap of the same alert.",
    )
    flap_window_s: float = Field(300.0, gt=0, description="Window in which outages are counted as flaps.")
    flap_threshold: int = Field(
        3,
        ge=2,
        description="Outages within flap_window_s that make a node flapping: an alert opens even if "
        "every outage was shorter than grace_s, and it resolves only after flap_quiet_s of calm.",
    )
    flap_quiet_s: float = Field(60.0, ge=0, description="Calm needed before a flapping alert resolves.")
    commune_fraction: float = Field(
        0.6,
        gt=0,
        le=1,
        description="When at least this share of a commune's monitored nodes is down, raise one "
        "commune alert (uplink or power) instead of one per node.",
    )
    commune_min_nodes: int = Field(
        3, ge=2, description="Smallest number of down nodes that can make a commune-wide outage."
    )
    commune_window_s: float = Field(
        20.0,
        ge=0,
        description="When enough of a commune looks gone (see suspect_factor), a node's own alert "
        "waits up to this long after it went down, to see whether the whole commune is going.",
    )
    suspect_factor: float = Field(
        0.75,
        gt=0,
        description="A node quiet for this many heartbeat intervals is a suspect; when enough nodes of "
        "a commune to make a commune-wide outage are suspects, node alerts wait (up to "
        "commune_window_s) for the commune alert. Must stay below (silence limit + grace_s) / interval "
        "- 1 (0.8 with the defaults) so a commune going dark at once is always recognised.",
    )
    suspect_max_interval_s: float = Field(
        30.0,
        gt=0,
        description="Nodes whose birth states a longer health interval than this (the shipped 3G "
        "profile: 300 s) are judged by their Will alone: being quiet for most of an interval says "
        "nothing of them, so only a node already down counts as a suspect (else healthy peers would "
        "hold a node's alert back by up to commune_window_s).",
    )
    settle_s: float = Field(
        45.0,
        ge=0,
        description="After the cloud (re)connects to the broker, give nodes this long to reconnect "
        "themselves (their back-off can reach 30 s after a broker restart) before a Will or silence "
        "counts. While the cloud has no broker, nothing is judged.",
    )
    reminder_s: float = Field(
        3600.0, ge=0, description="Repeat the notice of an unacknowledged alert this often; 0: never."
    )
    backlog_warn_s: float = Field(
        600.0, gt=0, description="Warn when a node's oldest unsent message is older than this (outbox)."
    )
    clock_skew_warn_s: float = Field(
        120.0, gt=0, description="Warn when a node's live messages are stamped this far from cloud time."
    )
    states_s: float = Field(
        30.0,
        ge=0,
        description="Write every device's state (up, down, unknown) as measurement device_state this "
        "often, for the Grafana fleet overview; 0: never.",
    )
    forget_after_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="A node missing from the inventory and silent for longer than this is no longer "
        "watched after a restart (a board tried once and removed). Inventory nodes are always watched.",
    )
    fps_low_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A camera whose measured frame rate falls below this share of its nominal rate "
        "(the stream's own, as the camera agent reports it) has a frame-rate collapse: a warning.",
    )
    language: Literal["vi", "en"] = Field("vi", description="Language of notifications.")
    lease_s: float = Field(
        15.0,
        gt=0,
        description="Several cloud workers: one evaluates, holding a lease row in SQL it renews every "
        "tick; another takes over when it lapses.",
    )
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="Where notices are sent.")
