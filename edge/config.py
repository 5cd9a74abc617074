"""Agent configuration: one YAML file per board, any field overridable from the environment.

Environment variables win over the file so that a secret (``CIOT_EDGE_BROKER__PASSWORD``)
or a per-board value can be injected by systemd or a container without editing YAML.
Errors name the file, the field and what was expected, because the person reading them
is a technician at a commune office with an SSH session, not the author of this code.

:class:`ManagedConfig` is the part the cloud may set remotely (the device twin's schema:
the cloud validates a desired configuration with these very models before it sends it);
the rest (identity, broker, outbox, control) stays in the board's own file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge.collectors.base import CollectorOptions
from edge.collectors.registry import RegistryError, resolve_options
from edge.update.config import UpdateConfig
from wire.topics import ID_PATTERN

ENV_PREFIX = "CIOT_EDGE_"
ENV_CONFIG = "CIOT_EDGE_CONFIG"

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class ConfigError(ValueError):
    """The configuration cannot be used; the message is meant for the person fixing it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _broker_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {value!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    return value


class BrokerConfig(_Section):
    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker address: mqtt://host:port (plain) or mqtts://host:port (TLS). With "
        "``urls``: the first of them unless set.",
    )
    urls: list[str] = Field(
        default_factory=list,
        description="The nodes of a clustered broker (docs/scaling.md), all mqtt:// or all mqtts://. "
        "The agent starts at one picked by its client id (so a fleet spreads over the cluster) and "
        "moves to the next whenever a connection fails or is lost.",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version. 5 for Mosquitto (the default); 3.1.1 for a broker that speaks "
        "nothing newer, such as a NATS cluster.",
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle for mqtts://; the system's CAs when unset."
    )
    username: str | None = Field(default=None, description="MQTT username; anonymous when unset.")
    password: SecretStr | None = Field(
        default=None, description="MQTT password. Prefer password_file or CIOT_EDGE_BROKER__PASSWORD."
    )
    password_file: Path | None = Field(
        default=None, description="File holding the MQTT password (trailing newline ignored)."
    )
    client_id: str | None = Field(
        default=None, max_length=128, description="MQTT client id; defaults to the node id."
    )
    keepalive_s: int = Field(
        default=10,
        ge=2,
        le=3600,
        description="MQTT keepalive. The broker declares the board dead (and sends the Last Will) "
        "after 1.5x this without traffic.",
    )
    check_link_s: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="How long the board waits for a sign of the broker before it checks the link "
        "with a PINGREQ. Unset: every keepalive_s, as MQTT clients do. Longer (the 3G profile: 32): "
        "between checks the keepalive is kept with an empty QoS 0 message to ciot/beat/<node> "
        "that the broker does not answer, one packet instead of three (0.3-0.44 MB/day less at "
        "keepalive 8); the broker's Will is as fast, and a dead link is found within "
        "check_link_s + keepalive_s instead of 2 x keepalive_s (edge/keepalive.py). MQTT 5 only.",
    )
    compress: bool = Field(
        default=False,
        description="Send JSON messages deflated with the wire's dictionary (wire/compression.py): "
        "a health message 418 -> about 118 bytes, an AP reading 865 -> about 163, 0.25 MB/day less "
        "for an AP board on the 3G profile. The cloud must be of this release or newer (it reads "
        "both); status, births and Wills stay JSON for mosquitto_sub.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120, description="TCP/TLS connect timeout.")
    reconnect_min_s: float = Field(
        default=1.0, gt=0, le=600, description="First reconnect delay; doubles per failed attempt."
    )
    reconnect_max_s: float = Field(
        default=60.0, gt=0, le=3600, description="Cap of the reconnect delay (jitter applied below it)."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _broker_url(value)

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        urls = [_broker_url(u) for u in value]
        if len({urlsplit(u).scheme for u in urls}) > 1:
            raise ValueError("mix of mqtt:// and mqtts://: one cluster, one scheme")
        if len(set(urls)) < len(urls):
            raise ValueError("a broker is listed twice")
        return urls

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value  # YAML reads 5 as a number

    @model_validator(mode="after")
    def _check(self) -> BrokerConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either broker.password or broker.password_file, not both")
        if self.check_link_s is not None and self.check_link_s < self.keepalive_s:
            raise ValueError(
                f"broker.check_link_s ({self.check_link_s:g}) is below broker.keepalive_s "
                f"({self.keepalive_s}): the link is checked at least every keepalive anyway"
            )
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(
                f"broker.reconnect_max_s ({self.reconnect_max_s}) is below "
                f"broker.reconnect_min_s ({self.reconnect_min_s})"
            )
        if self.urls:
            if "url" not in self.model_fields_set:
                self.url = self.urls[0]
            elif self.url not in self.urls:
                raise ValueError(f"broker.url {self.url!r} is not one of broker.urls; leave it out")
        return self

    @property
    def endpoints(self) -> list[str]:
        """Every broker address to try, in order (``url`` alone without a cluster)."""
        return self.urls or [self.url]

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    def secret(self) -> str | None:
        """The password from ``password`` or ``password_file`` (read at connect time)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            try:
                return self.password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"broker.password_file {self.password_file}: {exc.strerror}") from None
        return None


class OutboxConfig(_Section):
    path: Path = Field(
        default=Path("/var/lib/commune-iot/outbox.sqlite3"),
        description="SQLite file of the outbox. Put it on the board's persistent storage.",
    )
    max_messages: int = Field(default=200_000, ge=1, description="Most messages kept while offline.")
    max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="Most payload bytes kept while offline."
    )
    max_age_s: float = Field(
        default=7 * 24 * 3600, gt=0, description="Messages older than this are dropped unsent."
    )
    sync: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite synchronous mode. 'full' survives power loss at the cost of one fsync "
        "per message; 'normal' may lose the last messages on power loss (never corrupts).",
    )
    commit_interval_s: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description="0: each message is committed (fsync) before the agent goes on. Above 0: health, "
        "metrics and acknowledgements are committed together at most this often (events and "
        "snapshots still at once): each commit writes a few SQLite pages whatever it holds, so an AP "
        "board writes about 64 MB/day at 60 and half that at 120 (docs/field.md); a power cut may "
        "then lose the health and metrics of the last interval "
        "that the broker had not acknowledged.",
    )
    inflight_window: int = Field(
        default=20, ge=1, le=1000, description="Messages handed to MQTT awaiting PUBACK at once."
    )
    flush_on_shutdown_s: float = Field(
        default=5.0, ge=0, le=300, description="On SIGTERM, how long to try to empty the outbox."
    )


class ClockConfig(_Section):
    """When the board's wall clock is trusted (edge/clock.py): stamps taken before are held and
    corrected once it is."""

    sync_check: Literal["kernel", "not_before"] = Field(
        default="not_before",
        description="'kernel': trust the clock once the kernel reports it synchronised (adjtimex; "
        "set by systemd-timesyncd, chrony or ntpd) -- what a Raspberry Pi should run, as it catches "
        "a fake-hwclock time hours old. 'not_before': trust any time after the release date (catches "
        "a clock at 1970 or years off only); for hosts whose kernel never reports sync (containers).",
    )


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    json_lines: bool = Field(
        default=False, alias="json", description="JSON lines (for a log shipper) instead of text."
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CollectorSpec(BaseModel):
    """One collector: ``type`` picks the plug-in, the other keys are that plug-in's options."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Plug-in name (sim_ap, sim_camera, ...) or 'package.module:Class'.")
    _options: CollectorOptions | None = PrivateAttr(default=None)

    @property
    def options(self) -> CollectorOptions:
        if self._options is None:
            raise RuntimeError("collector options were not validated")
        return self._options


class ControlConfig(_Section):
    """The cloud's control of this board: desired configuration and commands (edge/control)."""

    enabled: bool = Field(
        default=True,
        description="Take desired configuration and commands from the cloud (topics config and cmd).",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where the board keeps its key, the configuration it applied and the ids of the "
        "commands it ran; default: the outbox's directory.",
    )
    revert_after_s: float = Field(
        default=120.0,
        ge=1,
        le=86400,
        description="A configuration from the cloud that leaves the board unable to do its job (camera "
        "stream down, no access point answering, broker unreachable) this long is reverted to the last "
        "good one, and the board says why.",
    )
    cloud_public_key: str | None = Field(
        default=None,
        max_length=64,
        description="The cloud's Ed25519 public key (base64; `commune-iot fleet key`). When set, "
        "commands and configurations not signed with it are refused.",
    )
    log_lines: int = Field(
        default=2000, ge=0, le=100_000, description="Log lines kept in memory for the `logs` command."
    )

    @field_validator("cloud_public_key")
    @classmethod
    def _cloud_key(cls, v: str | None) -> str | None:
        """A key that is not one would make the board refuse every command: say so at start."""
        from wire.crypto import check_verify_key

        return None if v is None else check_verify_key(v)


class ManagedConfig(BaseModel):
    """What the cloud may set on a board (the device twin's desired configuration)."""

    model_config = ConfigDict(extra="forbid")

    health_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="Seconds between health messages (the heartbeat)."
    )
    collectors: list[CollectorSpec] = Field(
        default_factory=list, description="Collector plug-ins to run; each has a type and its options."
    )
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")

    @field_validator("collectors")
    @classmethod
    def _validate_collectors(cls, specs: list[CollectorSpec]) -> list[CollectorSpec]:
        for i, spec in enumerate(specs):
            try:
                options = resolve_options(spec.type)
            except RegistryError as exc:
                raise ValueError(f"collectors[{i}]: {exc}") from None
            try:
                spec._options = options.model_validate(spec.model_extra or {})
            except ValidationError as exc:
                raise ValueError(f"collectors[{i}] ({spec.type}): {_first_error(exc)}") from None
        return specs


#: Top-level keys of :class:`ManagedConfig`: what a desired configuration replaces.
MANAGED_KEYS = frozenset(ManagedConfig.model_fields)


class EdgeConfig(BaseSettings, ManagedConfig):
    """Everything one agent needs. Field descriptions double as the reference documentation."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    node: Id = Field(description="Id of this board (edge node), e.g. dr-cam-01; one topic level.")
    commune: Id = Field(description="Commune id: da-ron, tu-tra or lac-xuan.")
    site: Id | None = Field(default=None, description="Site id from the inventory, e.g. dr-thon-03.")
    broker: BrokerConfig = Field(default_factory=BrokerConfig, description="MQTT broker connection.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Durable outbox.")
    clock: ClockConfig = Field(default_factory=ClockConfig, description="Trust in the board's clock.")
    hold_until_cloud: bool = Field(
        default=True,
        description="Send data only while a cloud ingest worker announces itself live on "
        "ciot/host/v1/state/+ (Sparkplug's primary host); until then it waits in the outbox. "
        "Turn off only for a broker with no cloud behind it (tests, bench).",
    )
    watchdog_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="End the agent (exit 70, for systemd to restart it) when its event loop has not "
        "run for this long, or no health message was produced for 2 x health_interval_s plus this; "
        "the MQTT connection is dropped first so the broker sends the Will at once. 0: off.",
    )
    control: ControlConfig = Field(
        default_factory=ControlConfig, description="Desired configuration and commands from the cloud."
    )
    update: UpdateConfig = Field(
        default_factory=UpdateConfig, description="Self-update: where releases come from, who signs them."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: it overrides the YAML (passed as init kwargs) field by field.
        return (env_settings, init_settings)

    @property
    def client_id(self) -> str:
        return self.broker.client_id or self.node

    @property
    def state_dir(self) -> Path:
        return self.control.state_dir or self.outbox.path.parent

    def managed(self) -> ManagedConfig:
        """The cloud-managed part of this configuration."""
        return ManagedConfig.model_validate({k: getattr(self, k) for k in MANAGED_KEYS})

    def with_managed(self, managed: ManagedConfig) -> EdgeConfig:
        """This board's configuration with ``managed`` in place of its managed part."""
        return self.model_copy(update={k: getattr(managed, k) for k in MANAGED_KEYS})

    @property
    def devices(self) -> list[str]:
        """Devices this board serves (for the birth certificate), the node itself if none named."""
        seen: list[str] = []
        for spec in self.collectors:
            for device in spec.options.device_ids() or [self.node]:
                if device not in seen:
                    seen.append(device)
        return seen or [self.node]


class ManagedConfigError(ValueError):
    """A desired configuration the schema refuses; ``errors`` are (dotted field, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{where}: {msg}" for where, msg in errors[:5])[:1900])


def _errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in (*prefix, *err["loc"])) or "(top level)"
        out.append((where, err["msg"].removeprefix("Value error, ")))
    return out


def validate_managed(doc: Any) -> ManagedConfig:
    """``doc`` as a :class:`ManagedConfig`, or ManagedConfigError naming each bad field by its
    full path (``collectors.0.masks.1``): a collector's options are checked one by one so the
    path reaches inside them."""
    if not isinstance(doc, dict):
        raise ManagedConfigError([("(top level)", "expected a mapping of settings")])
    errors: list[tuple[str, str]] = []
    collectors = doc.get("collectors")
    for i, spec in enumerate(collectors if isinstance(collectors, list) else []):
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            continue  # the whole-model pass below says what is wrong
        try:
            options = resolve_options(spec["type"])
        except RegistryError as exc:
            errors.append((f"collectors.{i}.type", str(exc)))
            continue
        try:
            options.model_validate({k: v for k, v in spec.items() if k != "type"})
        except ValidationError as exc:
            errors += _errors(exc, ("collectors", i))
    if errors:
        raise ManagedConfigError(errors)
    try:
        return ManagedConfig.model_validate(doc)
    except ValidationError as exc:
        raise ManagedConfigError(_errors(exc)) from None


def _walk_secrets(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, SecretStr):
        out.append(path)
    elif isinstance(value, CollectorSpec):
        _walk_secrets(value.options, path, out)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk_secrets(getattr(value, name), f"{path}.{name}" if path else name, out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk_secrets(item, f"{path}.{i}", out)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_secrets(item, f"{path}.{key}", out)


def secret_paths(managed: ManagedConfig) -> list[str]:
    """Dotted paths of the secret fields set in ``managed`` (``collectors.0.snmp.community``):
    the places where a desired configuration may hold only sealed values or ``REDACTED``."""
    out: list[str] = []
    _walk_secrets(managed, "", out)
    return out


def url_password_paths(doc: Any, path: str = "") -> list[str]:
    """Paths of strings in ``doc`` that are URLs carrying a password (``rtsp://u:pw@host``)."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in url_password_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in url_password_paths(v, f"{path}.{i}")]
    if isinstance(doc, str) and "://" in doc and "@" in doc:
        try:
            if urlsplit(doc).password:
                return [path]
        except ValueError:
            return []
    return []


def reported(managed: ManagedConfig) -> dict[str, Any]:
    """What a board says it runs: the collectors' options as written (defaults left out), every
    secret as ``**********`` and any password inside a URL replaced by it too."""
    doc: dict[str, Any] = {
        "health_interval_s": managed.health_interval_s,
        "log": managed.log.model_dump(mode="json", by_alias=True),
        "collectors": [
            {"type": spec.type, **spec.options.model_dump(mode="json", exclude_unset=True)}
            for spec in managed.collectors
        ],
    }
    for path in url_password_paths(doc):
        *parents, last = path.split(".")
        holder: Any = doc
        for part in parents:
            holder = holder[int(part)] if isinstance(holder, list) else holder[part]
        key: Any = int(last) if isinstance(holder, list) else last
        parts = urlsplit(holder[key])
        holder[key] = holder[key].replace(f":{parts.password}@", ":**********@", 1)
    return doc


def _first_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = ""
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            shown = repr(err["input"])
            got = f" (got {shown[:60]})"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}{got}")
    more = exc.error_count() - len(lines)
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(p).upper() for p in loc if isinstance(p, str))


def load_config(path: Path | None = None) -> EdgeConfig:
    """Read ``path`` (or ``$CIOT_EDGE_CONFIG``), apply ``CIOT_EDGE_*`` overrides, validate.

    With neither a path nor the variable, the configuration comes from the environment alone.
    """
    if path is None and os.environ.get(ENV_CONFIG):
        path = Path(os.environ[ENV_CONFIG])
    source = str(path) if path is not None else "environment (no config file)"
    data: Any = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"config {path}: cannot read: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"config {path}:{where}: not valid YAML: {problem}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return EdgeConfig(**data)
    except ValidationError as exc:
        details = []
        for err in exc.errors(include_url=False)[:5]:
            loc = err["loc"]
            where = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            got = ""
            if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
                got = f" (got {repr(err['input'])[:60]})"
            hint = ""
            if err["type"] == "missing":
                hint = f" (set it in the file or as {_env_name(loc)})"
            details.append(f"  {where}: {msg}{got}{hint}")
        more = exc.error_count() - len(details)
        tail = f"\n  and {more} more" if more > 0 else ""
        raise ConfigError(f"config {source} is invalid:\n" + "\n".join(details) + tail) from None
