"""Typed configuration of the cloud service, validated once at start.

Sources, highest priority first: keyword arguments, environment variables
(``CIOT_CLOUD_`` prefix, ``__`` between nested names, e.g. ``CIOT_CLOUD_INFLUX__PASSWORD``),
the YAML file (``$CIOT_CLOUD_CONFIG`` or the path given), then the defaults below.
Secrets are ``SecretStr`` or read from a ``*_file`` so they stay out of YAML and logs.
"""

from __future__ import annotations

import os
import socket
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from cloud.alerting.settings import AlertingConfig
from cloud.reports.settings import ReportsConfig
from cloud.storage.retention import RAW_DAYS, RAW_DAYS_MIN, ROLLUP_DAYS
from labels.settings import LabelSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "CIOT_CLOUD_"
#: YAML file of the load in progress (pydantic-settings builds sources in a classmethod).
_YAML_PATH: ContextVar[Path | None] = ContextVar("_YAML_PATH", default=None)


#: A file path where an empty string (e.g. an unset env override) means "none".
SecretFile = Annotated[Path | None, BeforeValidator(lambda v: None if v == "" else v)]


def _secret(value: SecretStr | None, file: Path | None) -> str:
    """A secret from its ``*_file`` (trailing newline stripped) or its inline value."""
    if file is not None:
        return file.read_text().rstrip("\r\n")
    return value.get_secret_value() if value is not None else ""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Section):
    url: str = Field(
        "mqtt://127.0.0.1:1883", description="Broker URL, mqtt://host:port; with urls, the first of them."
    )
    urls: list[str] = Field(
        default_factory=list,
        description="The nodes of a clustered broker (docs/scaling.md), tried in this order: the worker "
        "connects to the first that answers and moves to the next whenever it loses it.",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        "5",
        description="MQTT version. 5 for Mosquitto (the default); 3.1.1 for a NATS cluster, which "
        "speaks nothing newer: no shared subscriptions (one ingest worker), no Session Expiry or "
        "Receive Maximum (the broker's own settings apply).",
    )
    username: str = Field("", description="Broker user; empty for an anonymous broker.")
    password: SecretStr | None = Field(None, description="Broker password (prefer password_file).")
    password_file: SecretFile = Field(None, description="File holding the broker password.")
    client_id: str = Field(
        "",
        description="MQTT client id. Must be stable per worker (the broker keeps its session and queue "
        "under it) and unique among workers. Empty: ciot-cloud-<hostname>-<role>.",
    )
    share_group: str = Field(
        "",
        description="Empty (one worker): an exclusive subscription, which Mosquitto 2.0 keeps across "
        "its own restarts, queued messages included. To scale out, give every worker the same group "
        "name: an MQTT v5 shared subscription splits the traffic between them. Mosquitto 2.0.11 does "
        "not restore shared subscriptions after a broker restart: the nodes hold their data until a "
        "worker re-announces itself, but messages in flight to the workers at the moment the broker "
        "stops are lost (measured).",
    )
    session_expiry_s: int = Field(
        7 * 24 * 3600,
        gt=0,
        description="MQTT v5 Session Expiry Interval: how long the broker queues messages for a "
        "stopped worker.",
    )
    receive_maximum: int = Field(
        4096,
        ge=1,
        le=65535,
        description="MQTT v5 Receive Maximum: unacknowledged QoS-1 messages the broker may have in "
        "flight to this worker. Bounds memory and the work redone after a crash.",
    )
    keepalive_s: int = Field(30, ge=5, description="MQTT keep-alive.")
    host_heartbeat_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often the worker announces itself live on ciot/host/v1/state/<client_id>. "
        "Nodes hold their data while no worker has announced itself within 3 heartbeats, so a node "
        "that just connected may send nothing but its birth for up to this long: alerting counts "
        "its silence from then.",
    )
    commit_max_messages: int = Field(
        1024,
        ge=1,
        description="Group commit: journal+ack once this many messages are pending (capped at "
        "receive_maximum/2 so the broker never stalls waiting for acks).",
    )
    commit_interval_ms: float = Field(
        10.0, gt=0, description="Group commit: longest a received message waits before fsync+ack."
    )
    stall_s: float = Field(
        5.0,
        ge=2,
        le=300,
        description="The worker sends itself a probe through the broker every second; when none has "
        "come back for this long the broker is stalled (a cluster electing a leader, a wedged "
        "process) and the worker counts as disconnected: alerting stops judging silence, which "
        "would otherwise be the broker's, not the boards'.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"expected mqtt://host:port, got {value!r}")
        return value

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        urls = [cls._check_url(u) for u in value]
        if len(set(urls)) < len(urls):
            raise ValueError("a broker is listed twice")
        return urls

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value  # YAML reads 5 as a number

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.urls:
            if "url" not in self.model_fields_set:
                self.url = self.urls[0]
            elif self.url not in self.urls:
                raise ValueError(f"mqtt.url {self.url!r} is not one of mqtt.urls; leave it out")
        if self.protocol != "5":
            if self.share_group:
                raise ValueError(
                    "mqtt.share_group needs MQTT 5 (shared subscriptions); with protocol 3.1.1 run "
                    "one ingest worker"
                )
            if "." in self.client_id or " " in self.client_id:
                raise ValueError(
                    f"mqtt.client_id {self.client_id!r}: no '.' or ' ' with protocol 3.1.1 (NATS refuses "
                    "them in topic names, and the worker's presence topic carries its id)"
                )
        return self

    @property
    def endpoints(self) -> list[str]:
        """Every broker to try, in order (``url`` alone without a cluster)."""
        return self.urls or [self.url]

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1883

    def password_value(self) -> str:
        return _secret(self.password, self.password_file)

    def effective_client_id(self, role: str) -> str:
        if self.client_id:
            return self.client_id
        host = socket.gethostname()
        if self.protocol != "5":  # NATS refuses '.' in topics; the presence topic carries this id
            host = host.replace(".", "-").replace(" ", "-")
        return f"ciot-cloud-{host}-{role}"


class RateLimitConfig(_Section):
    """Per-node token buckets in the ingest worker (docs/protocol.md#rate-limits).

    A board normally sends well under 1 message/s (health and metrics every 10 s, motion
    events with snapshots). The live bucket allows 5/s sustained with an hour of normal
    traffic as burst, so a cloud-side stall that makes the broker hand over an hour of a
    board's messages at once is not mistaken for a flood. Messages flagged ``replay: true``
    (an outbox emptied after an outage) may also draw on a second, much larger bucket sized
    for several days of a board's data, so a replay is never dropped wholesale.
    """

    enabled: bool = Field(True, description="Throttle nodes that send more than their allowance.")
    rate_per_s: float = Field(5.0, gt=0, description="Live messages per second a node may send, sustained.")
    burst: int = Field(
        3600, ge=1, description="Live messages a node may send at once above the rate (bucket size)."
    )
    replay_rate_per_s: float = Field(
        200.0,
        ge=0,
        description="Extra allowance, per second, for messages flagged replay (and for snapshots of a "
        "node that is replaying), once the live bucket is empty.",
    )
    replay_burst: int = Field(
        100_000,
        ge=0,
        description="Size of the replay bucket: several days of one board's outbox (a day is ~20,000 "
        "messages for a camera board).",
    )
    report_interval_s: float = Field(
        60.0,
        gt=0,
        description="While a node is throttled: one log line, one sample dead letter and a refreshed "
        "'flooding' alert per node per interval. A node is no longer flooding after one interval "
        "without a throttled message.",
    )


class IngestConfig(_Section):
    rate_limit: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="Per-node rate limits (flood protection)."
    )


class RetentionConfig(_Section):
    """How long InfluxDB keeps what (cloud/storage/retention.py; disk per board: docs/scaling.md)."""

    raw_days: float = Field(
        RAW_DAYS,
        ge=0,
        description="Raw points (board health, AP and camera metrics, motion, status, device states): "
        "kept this many days in the default retention policy (autogen); 0: forever. Grafana's "
        "dashboards show raw points, so this is how far back they reach; at least 35 (the monthly "
        "Wi-Fi report re-aggregates the month just ended from them). Disk: about 0.5 MB per board "
        "per day (docs/scaling.md).",
    )
    rollup_days: float = Field(
        ROLLUP_DAYS,
        ge=0,
        description="The Wi-Fi report's 15-minute rollups and the outage records (reports, "
        "availability, Grafana's outage annotations): kept this many days in retention policy "
        "'rollups'; 0: forever.",
    )

    @field_validator("raw_days")
    @classmethod
    def _raw_days(cls, v: float) -> float:
        if 0 < v < RAW_DAYS_MIN:
            raise ValueError(
                f"raw points must be kept 0 (forever) or at least {RAW_DAYS_MIN:g} days: the monthly "
                "Wi-Fi report re-aggregates the month just ended from them"
            )
        return v


class InfluxConfig(_Section):
    url: str = Field("http://127.0.0.1:8086", description="InfluxDB 1.x base URL (v1 HTTP API).")
    database: str = Field("ciot", description="Database; created when missing.")
    username: str = Field("", description="HTTP Basic auth user; empty when auth is off.")
    password: SecretStr | None = Field(None, description="HTTP Basic auth password (prefer password_file).")
    password_file: SecretFile = Field(None, description="File holding the InfluxDB password.")
    precision: Literal["ms"] = Field("ms", description="Timestamp precision of every write.")
    self_metrics_s: float = Field(
        10.0,
        ge=0,
        description="Write this worker's own figures (ingest rate, spool, write latency, notices) as "
        "measurement 'cloud' this often, for the Grafana cloud dashboard; 0: never.",
    )
    batch_max_lines: int = Field(5000, ge=1, description="Most lines per /write request.")
    flush_interval_s: float = Field(
        0.2, gt=0, description="Longest a journaled line waits before it is sent to InfluxDB."
    )
    retry_initial_s: float = Field(0.5, gt=0, description="First retry delay after a failed write.")
    retry_max_s: float = Field(30.0, gt=0, description="Cap of the exponential retry delay.")
    timeout_s: float = Field(10.0, gt=0, description="HTTP timeout of one request.")
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="Raw points for days, rollups for years."
    )
    backup_address: str = Field(
        "127.0.0.1:8088",
        description="InfluxDB's RPC bind address (its bind-address setting), which `commune-iot backup` "
        "and `restore` reach with `influxd backup|restore -portable`. It has no authentication: keep it "
        "on loopback or a private network.",
    )
    spool_dir: Path = Field(
        Path("var/spool"),
        description="Journal directory (one sub-directory per worker client id). Every message is "
        "fsynced here before it is acknowledged; while InfluxDB is down this is the disk spool.",
    )

    def password_value(self) -> str:
        return _secret(self.password, self.password_file)


class SqlConfig(_Section):
    url: str = Field(
        "sqlite:///var/ciot-cloud.db",
        description="SQLAlchemy URL: sqlite:///path (WAL mode) or postgresql://user@host/db (psycopg 3).",
    )
    password: SecretStr | None = Field(None, description="Password substituted into the URL, if set.")
    password_file: SecretFile = Field(None, description="File holding the SQL password.")
    busy_timeout_ms: int = Field(10_000, ge=0, description="SQLite busy timeout (several workers write).")
    state_flush_interval_s: float = Field(
        1.0,
        ge=0,
        description="How often the counts of throttled messages (rate_limited) are written; they are "
        "aggregated in memory between writes, so a crash may lose this much of them. Everything else "
        "(the sequence numbers received, which the gap count comes from, statuses, dead letters, "
        "snapshots, events, last seen) is committed with each batch, before its messages are "
        "acknowledged.",
    )

    def password_value(self) -> str:
        return _secret(self.password, self.password_file)


class HttpConfig(_Section):
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP API.")
    max_body_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest request body; a larger one is answered 413 before it is read "
        "(the biggest legitimate body, an export of 500 events, is a few kB).",
    )
    max_auth_body_bytes: int = Field(
        16_384, ge=1024, description="Largest request body of the login and token routes (no account needed)."
    )
    public_metrics: bool = Field(
        False,
        description="Serve /metrics without a login. Off: it needs a technician's or an admin's "
        "login or API token (Prometheus: authorization.credentials_file). Turn on only when the port "
        "is reachable from a trusted monitoring network alone.",
    )
    public_docs: bool = Field(
        True,
        description="Serve /docs and /openapi.json without a login. They describe the routes, never "
        "data; off: they need a login too.",
    )


class WebConfig(_Section):
    session_ttl_h: float = Field(12.0, gt=0, le=24 * 30, description="A login lasts this long.")
    cookie_secure: bool = Field(
        False,
        description="Send the session cookie over HTTPS only. Turn on behind a TLS proxy; off only "
        "for a loopback or LAN test setup.",
    )
    login_window_s: float = Field(900.0, gt=0, description="Login throttling window.")
    login_max_per_user: int = Field(5, ge=1, description="Failed logins of one name in the window.")
    login_max_per_ip: int = Field(20, ge=1, description="Failed logins from one address in the window.")
    login_backoff_s: float = Field(
        30.0,
        gt=0,
        description="After login_max_per_user failures of a name, each further attempt waits this long, "
        "doubled per failure, capped at login_window_s. Addresses the user logged in from before are "
        "judged on their own failures, so strangers cannot lock the user out.",
    )
    refusal_window_s: float = Field(
        600.0,
        gt=0,
        description="Audit: identical refused requests within this long are one row plus a count.",
    )
    refusal_max_rows: int = Field(
        100, ge=1, description="Audit: refusal rows per user per window; further ones are counted."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For is believed (audit 'from where').",
    )
    public_url: str = Field(
        "",
        description="The web UI's address as people reach it, e.g. https://ciot.example.vn: alert "
        "notifications link to <public_url>/alerts/<id>. Empty: notifications carry no link.",
    )
    grafana_url: str = Field(
        "",
        description="Grafana's address as technicians reach it, e.g. https://grafana.example.vn: the "
        "device pages link into its dashboards with the device preselected. Empty: no links.",
    )
    docs_dir: Path = Field(
        REPO_ROOT / "docs",
        description="The user guides (vi/*.md) and their screenshots, served by the UI's help link.",
    )


class EventsConfig(_Section):
    retention_days: float = Field(30.0, gt=0, description="Events and snapshots older than this are deleted.")
    retention_interval_s: float = Field(3600.0, gt=0, description="How often the retention job runs.")
    exports_dir: Path = Field(Path("var/exports"), description="Evidence export ZIPs.")
    signing_key_file: Path = Field(
        Path("var/keys/evidence-ed25519.pem"),
        description="Private Ed25519 key that signs evidence exports; created (mode 0600) on first use, "
        "kept out of the database. Earlier public keys stay beside it in a 'retired' folder "
        "(commune-iot evidence rotate-key).",
    )


class FleetConfig(_Section):
    """The fleet's control plane: desired configurations and commands (cloud/fleet)."""

    enabled: bool = Field(True, description="Run the fleet service (the `serve` process only).")
    signing_key_file: Path = Field(
        Path("var/fleet-signing.pem"),
        description="Ed25519 key (PEM, mode 0600) every command and configuration is signed with; made "
        "on first start. Boards given its public half (`commune-iot fleet key`, control.cloud_public_key) "
        "refuse anything else.",
    )
    default_ttl_s: float = Field(300.0, gt=0, description="Time-to-live of a command when none is given.")
    resend_s: float = Field(
        15.0,
        gt=0,
        description="A command an online board has not acknowledged is sent again this often (same id: "
        "the board runs it once).",
    )
    sweep_s: float = Field(1.0, gt=0, description="How often expired commands are marked.")


class ReleasesConfig(_Section):
    """Signed agent updates (docs/updates.md): where bundles are kept, who may fetch them."""

    dir: Path = Field(
        Path("var/releases"), description="Published bundles, one directory per version (release publish)."
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Release public keys (base64 Ed25519) the boards trust. When set, `release publish` "
        "refuses a bundle no board would accept. The cloud never holds a private release key.",
    )
    board_passwd_file: SecretFile = Field(
        None,
        description="The broker's password file (written by `commune-iot provision`, e.g. "
        "var/broker/passwd). Boards download releases with HTTP Basic, their broker username and "
        "password, checked against it. Unset: only users with an API token can download.",
    )
    public_url: str = Field(
        "",
        description="This API's address as boards reach it, e.g. https://ciot.example.vn (behind the TLS "
        "proxy); the update command points boards to <public_url>/api/v1/releases/<version>/.",
    )
    board_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="In a rollout, a board whose update command has not ended done this long after it "
        "was issued counts as failed (and pauses the rollout); also the command's time-to-live. Above the "
        "boards' update.trial_s plus a download over 3G.",
    )
    rollout_interval_s: float = Field(2.0, gt=0, le=300, description="How often rollouts are advanced.")


class LabelsConfig(LabelSettings):
    """Object labels on events from their snapshots (``labels`` package, docs/eventlog.md)."""

    enabled: bool | Literal["auto"] = Field(
        "auto",
        description="Label events from their snapshots. auto: when the `labels` extra is installed "
        "and the model fetched (`commune-iot models fetch`); true: the same, but saying so loudly "
        "when they are missing; false: never (events the boards label keep their labels).",
    )
    window_h: float = Field(
        24.0,
        gt=0,
        description="Events first received within this many hours are labelled (a backlog after a "
        "restart included); older ones are left as they are.",
    )
    sweep_s: float = Field(
        30.0, gt=0, description="Besides being woken by ingest, look for unlabelled snapshots this often."
    )


class BrokerAdminConfig(_Section):
    """Onboarding from the cloud (docs/onboarding.md): the broker's auth directory and its reload."""

    dir: Path | None = Field(
        None,
        description="The broker's auth directory (passwd, acl, ca.crt; what `commune-iot provision "
        "--broker-dir` writes), writable by the cloud. Unset: devices can be added to the inventory but "
        "no board credentials or bundles are issued and decommissioning revokes nothing.",
    )
    reload_command: str = Field(
        "",
        description="A command (no shell) that makes the running broker reread its files, e.g. "
        "`kill -HUP 1234` or `systemctl reload mosquitto` when the cloud may signal the broker.",
    )
    reload_request_file: SecretFile = Field(
        None,
        description="Instead of a command (compose: the cloud's container cannot signal the broker's): "
        "write a token to this file, which firmware_config/mosquitto/reload-watcher.sh beside the broker "
        "watches; it sends the broker SIGHUP and writes the token to reload_ack_file.",
    )
    reload_ack_file: SecretFile = Field(
        None, description="Where the watcher acknowledges a reload (see reload_request_file)."
    )
    reload_timeout_s: float = Field(
        15.0, gt=0, le=300, description="How long to wait for the command or the watcher's acknowledgement."
    )
    board_url: str = Field(
        "",
        description="What boards dial, mqtts://HOST:8883, written into each bundle's edge.yaml. "
        "Required to issue bundles.",
    )
    bundle_ttl_s: float = Field(
        86400.0,
        gt=0,
        le=30 * 86400,
        description="A bundle not downloaded within this time is deleted (issue another: the board "
        "gets a new password).",
    )


class CloudConfig(BaseSettings):
    """The whole cloud configuration; see cloud/sample.yaml for an annotated example."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Broker connection.")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Ingest: per-node rate limits.")
    influx: InfluxConfig = Field(default_factory=InfluxConfig, description="Time-series database.")
    sql: SqlConfig = Field(default_factory=SqlConfig, description="Device state and dead letters.")
    http: HttpConfig = Field(default_factory=HttpConfig, description="HTTP API.")
    web: WebConfig = Field(default_factory=WebConfig, description="Web UI logins and sessions.")
    events: EventsConfig = Field(
        default_factory=EventsConfig, description="Police event log: retention and evidence exports."
    )
    alerting: AlertingConfig = Field(
        default_factory=AlertingConfig, description="Outage detection, alert lifecycle, notifications."
    )
    reports: ReportsConfig = Field(
        default_factory=ReportsConfig, description="Wi-Fi usage reports (docs/reports.md)."
    )
    fleet: FleetConfig = Field(
        default_factory=FleetConfig, description="Desired configuration and commands (docs/protocol.md)."
    )
    releases: ReleasesConfig = Field(
        default_factory=ReleasesConfig, description="Signed agent updates and staged rollouts."
    )
    labels: LabelsConfig = Field(
        default_factory=LabelsConfig, description="Object labels (person, motorbike, car...) on events."
    )
    inventory: Path = Field(
        REPO_ROOT / "firmware_config" / "inventory.yaml",
        description="Inventory YAML the SQL inventory is filled from when the database holds none "
        "(first start, the demo); afterwards SQL is the inventory (docs/onboarding.md). Relative "
        "paths are resolved against the config file.",
    )
    inventory_poll_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="How often each cloud process checks the SQL inventory's version: a device added, "
        "moved or decommissioned through another process reaches this one's ingest, alerting and "
        "reports within this time (through this process's own API: at once).",
    )
    broker_admin: BrokerAdminConfig = Field(
        default_factory=BrokerAdminConfig,
        description="The broker's password and ACL files, written by the cloud when devices are "
        "onboarded or decommissioned, and how the broker is told to reload them.",
    )
    snapshots_dir: Path = Field(
        Path("var/snapshots"), description="Snapshot JPEGs, stored by SHA-256 (ab/cd/<sha>.jpg)."
    )

    @field_validator("inventory", "snapshots_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_path = _YAML_PATH.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_path:
            sources.append(
                YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path, yaml_file_encoding="utf-8")
            )
        return tuple(sources)


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p)


def load_config(path: Path | str | None = None, **overrides: Any) -> CloudConfig:
    """Load YAML (``path`` or ``$CIOT_CLOUD_CONFIG``; none = defaults), then env, then ``overrides``.

    Relative paths in a YAML file are taken relative to that file, so a config works from
    any working directory; without a file they are relative to the working directory.
    """
    if path is None:
        env_path = os.environ.get(ENV_PREFIX + "CONFIG")
        path = Path(env_path) if env_path else None
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cloud config {path} not found")
    token = _YAML_PATH.set(path)
    try:
        cfg = CloudConfig(**overrides)
    finally:
        _YAML_PATH.reset(token)
    if path is not None:
        base = path.resolve().parent
        cfg.inventory = _resolve(base, cfg.inventory)
        cfg.snapshots_dir = _resolve(base, cfg.snapshots_dir)
        cfg.events.exports_dir = _resolve(base, cfg.events.exports_dir)
        cfg.events.signing_key_file = _resolve(base, cfg.events.signing_key_file)
        cfg.influx.spool_dir = _resolve(base, cfg.influx.spool_dir)
        cfg.reports.output_dir = _resolve(base, cfg.reports.output_dir)
        cfg.fleet.signing_key_file = _resolve(base, cfg.fleet.signing_key_file)
        cfg.releases.dir = _resolve(base, cfg.releases.dir)
        cfg.web.docs_dir = _resolve(base, cfg.web.docs_dir)
        if cfg.releases.board_passwd_file is not None:
            cfg.releases.board_passwd_file = _resolve(base, cfg.releases.board_passwd_file)
        if cfg.labels.model is not None:
            cfg.labels.model = _resolve(base, cfg.labels.model.expanduser())
        ba = cfg.broker_admin
        if ba.dir is not None:
            ba.dir = _resolve(base, ba.dir)
        if ba.reload_request_file is not None:
            ba.reload_request_file = _resolve(base, ba.reload_request_file)
        if ba.reload_ack_file is not None:
            ba.reload_ack_file = _resolve(base, ba.reload_ack_file)
        if cfg.sql.url.startswith("sqlite:///") and not cfg.sql.url.startswith("sqlite:////"):
            rel = cfg.sql.url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                cfg.sql.url = "sqlite:///" + str(_resolve(base, Path(rel)))
    return cfg
