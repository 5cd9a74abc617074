"""Configuration of the notifiers (``alerting.notify`` in the cloud config)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

from labels.classes import GROUPS, MIN_CONFIDENCE, known

SecretFile = Annotated[Path | None, BeforeValidator(lambda v: None if v == "" else v)]


def secret_value(value: SecretStr | None, file: Path | None) -> str:
    if file is not None:
        return file.read_text().rstrip("\r\n")
    return value.get_secret_value() if value is not None else ""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ChannelSection(_Section):
    name: str = Field(description="Name in logs and in event_rules.")
    alerts: bool = Field(
        True,
        description="Technician alerts go here. false: a channel that carries only police event "
        "notifications (event_rules), e.g. the commune police's Zalo or group chat.",
    )


class RetryConfig(_Section):
    initial_s: float = Field(1.0, gt=0, description="First retry delay after a failed send.")
    max_s: float = Field(300.0, gt=0, description="Cap of the doubling retry delay.")
    attempts: int = Field(
        20, ge=1, description="Attempts before a notice is given up (logged as an error with the alert)."
    )
    queue_max: int = Field(1000, ge=1, description="Notices waiting per notifier; the oldest are dropped.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one attempt.")


class WebhookConfig(_ChannelSection):
    name: str = Field("webhook", description="Name in logs.")
    url: str = Field(description="Endpoint that receives a JSON POST per notice.")
    secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key; the signature goes in X-Ciot-Signature: sha256=<hex>."
    )
    secret_file: SecretFile = Field(None, description="File holding the HMAC key.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries and queue.")

    def secret_value(self) -> str:
        return secret_value(self.secret, self.secret_file)


class SmtpConfig(_ChannelSection):
    name: str = Field("email", description="Name in logs.")
    host: str = Field(description="SMTP server.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port: 587 (STARTTLS), 465 (implicit TLS), 25.")
    tls: Literal["starttls", "implicit", "none"] | None = Field(
        None,
        description="starttls: a plain connection upgraded with STARTTLS before logging in (port 587); "
        "implicit: TLS from the first byte, 'SMTPS' (port 465, which many providers require); none: no "
        "encryption (a relay on the same host or LAN only). Default: implicit on port 465, else starttls.",
    )
    starttls: bool | None = Field(
        None, description="Old spelling of tls: true is tls: starttls, false is tls: none."
    )
    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA certificate(s) to trust for the server instead of the system's "
        "(a private CA, a self-signed relay). The certificate and its host name are always checked.",
    )
    username: str = Field("", description="Login; empty: no authentication.")
    password: SecretStr | None = Field(None, description="SMTP password (prefer password_file).")
    password_file: SecretFile = Field(None, description="File holding the SMTP password.")
    sender: str = Field(description="From address, e.g. canh-bao@xa-tutra.vn.")
    recipients: list[str] = Field(min_length=1, description="To addresses.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries and queue.")

    @model_validator(mode="after")
    def _one_tls_setting(self) -> SmtpConfig:
        if self.starttls is not None and self.tls is not None:
            raise ValueError("give tls only: starttls is its old spelling")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} is not a file")
        return self

    @property
    def tls_mode(self) -> Literal["starttls", "implicit", "none"]:
        if self.tls is not None:
            return self.tls
        if self.starttls is not None:
            return "starttls" if self.starttls else "none"
        return "implicit" if self.port == 465 else "starttls"

    def password_value(self) -> str:
        return secret_value(self.password, self.password_file)


class TelegramConfig(_ChannelSection):
    name: str = Field("telegram", description="Name in logs.")
    base_url: str = Field(
        "https://api.telegram.org", description="Bot API base URL (a proxy or a test server)."
    )
    token: SecretStr | None = Field(None, description="Bot token (prefer token_file).")
    token_file: SecretFile = Field(None, description="File holding the bot token.")
    chat_id: str = Field(description="Chat or group id that receives the alerts.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries and queue.")

    def token_value(self) -> str:
        return secret_value(self.token, self.token_file)


class ZaloConfig(_ChannelSection):
    """A Zalo Official Account that messages its followers, renewing its own access token.

    Zalo's OA access token lasts about 25 hours; a new one comes only from the refresh token
    (single-use, valid about 3 months), which the cloud rotates and keeps in SQL.
    """

    name: str = Field("zalo", description="Name in logs; also the key of its tokens in SQL.")
    base_url: str = Field("https://openapi.zalo.me", description="Zalo OA Open API base URL.")
    oauth_url: str = Field(
        "https://oauth.zaloapp.com/v4/oa/access_token",
        description="Zalo OAuth v4 endpoint that turns a refresh token into a new token pair.",
    )
    app_id: str = Field(description="ID of the Zalo app the OA authorised (Zalo for Developers console).")
    app_secret: SecretStr | None = Field(None, description="The app's secret key (prefer app_secret_file).")
    app_secret_file: SecretFile = Field(None, description="File holding the app's secret key.")
    refresh_token: SecretStr | None = Field(
        None, description="Refresh token issued when the OA authorised the app (prefer refresh_token_file)."
    )
    refresh_token_file: SecretFile = Field(
        None,
        description="File holding that refresh token. Taken once: the cloud then keeps the rotated tokens "
        "in SQL (table oauth_tokens). After re-authorising, write the new refresh token here: it is "
        "taken at the next check, no restart needed.",
    )
    refresh_before_s: float = Field(
        3600.0, gt=0, description="Renew the access token when less than this is left of its life."
    )
    check_s: float = Field(
        300.0,
        gt=0,
        description="How often the stored token is looked at: due renewals (also when no alert is sent, so "
        "the 3-month refresh token never lapses), other workers' renewals, a new refresh_token_file.",
    )
    user_ids: list[str] = Field(min_length=1, description="Zalo user ids (followers of the OA) to message.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retries and queue.")

    @model_validator(mode="before")
    @classmethod
    def _no_fixed_token(cls, data: object) -> object:
        if isinstance(data, dict) and ({"access_token", "access_token_file"} & data.keys()):
            raise ValueError(
                "a fixed Zalo access_token stops working within about 25 h: give app_id, app_secret_file "
                "and refresh_token_file instead, and the cloud renews it (cloud/notify/README.md)"
            )
        return data

    @model_validator(mode="after")
    def _credentials(self) -> ZaloConfig:
        if self.app_secret is None and self.app_secret_file is None:
            raise ValueError("zalo needs app_secret_file (or app_secret): the app's secret key")
        if self.refresh_token is None and self.refresh_token_file is None:
            raise ValueError("zalo needs refresh_token_file (or refresh_token), from authorising the app")
        return self

    def app_secret_value(self) -> str:
        return secret_value(self.app_secret, self.app_secret_file)

    def refresh_token_value(self) -> str:
        """The configured refresh token, read afresh (a technician may have replaced the file)."""
        return secret_value(self.refresh_token, self.refresh_token_file)

    @property
    def refresh_token_source(self) -> str:
        """Where a technician puts a new refresh token, for log lines and notices."""
        if self.refresh_token_file is not None:
            return f"the file {self.refresh_token_file} (taken within {self.check_s:.0f} s, no restart)"
        return "refresh_token of this notifier in the cloud config (then restart the cloud)"


def parse_hours(text: str) -> tuple[int, int]:
    """``"22:00-05:00"`` -> (1320, 300): minutes after local midnight, from (inclusive) to
    (exclusive); from > to wraps midnight. Raises ValueError with what is wrong."""
    parts = text.replace(" ", "").split("-")
    if len(parts) != 2:
        raise ValueError(f"hours {text!r}: write HH:MM-HH:MM, e.g. 22:00-05:00")
    out: list[int] = []
    for part in parts:
        hh, sep, mm = part.partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) <= 24 and int(mm) < 60):
            raise ValueError(f"hours {text!r}: {part!r} is not a time HH:MM (00:00 to 24:00)")
        minute = int(hh) * 60 + int(mm)
        if minute > 24 * 60:
            raise ValueError(f"hours {text!r}: {part!r} is past 24:00")
        out.append(minute)
    if out[0] == out[1]:
        raise ValueError(f"hours {text!r} is empty; leave hours out for all day")
    return out[0], out[1]


class EventRule(_Section):
    """Which police events are announced, to whom: e.g. a person at a school gate at night.

    Evaluated once an event has its labels (the board's, or the cloud labeller's); each rule
    announces an event at most once, whatever is replayed or restarted.
    """

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Name in notices, logs and the audit trail."
    )
    communes: list[str] = Field(min_length=1, description="Commune ids whose events this rule covers.")
    cameras: list[str] = Field(
        default_factory=list, description="Only these cameras (device ids); empty: all."
    )
    sites: list[str] = Field(default_factory=list, description="Only cameras at these sites; empty: all.")
    require_label: str | None = Field(
        None,
        description="A class (person, motorcycle, car, truck, bus, bicycle, dog...) or a group (vehicle, "
        "animal) the event must be labelled with. Left out: every event of the communes is announced "
        "(noisy: leaves, headlights and insects too).",
    )
    min_confidence: float = Field(
        0.0,
        ge=0,
        le=1,
        description="The label's confidence must reach this (besides the class's own bar, labels.classes).",
    )
    hours: str | None = Field(
        None,
        description="Local time (Asia/Ho_Chi_Minh) of the event's start, HH:MM-HH:MM; may wrap midnight "
        "(22:00-05:00). Left out: all day.",
    )
    notifiers: list[str] = Field(
        min_length=1, description="Names of configured notifiers (webhooks, email, telegram, zalo) to tell."
    )

    @model_validator(mode="after")
    def _known(self) -> EventRule:
        if self.require_label is not None and not known(self.require_label):
            choices = ", ".join([*MIN_CONFIDENCE, *GROUPS])
            raise ValueError(
                f"event rule {self.name}: require_label {self.require_label!r} is not a label an event can "
                f"carry; choose one of {choices}"
            )
        if self.hours is not None:
            parse_hours(self.hours)
        return self

    @property
    def minutes(self) -> tuple[int, int] | None:
        return parse_hours(self.hours) if self.hours is not None else None


class NotifyConfig(_Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list, description="JSON webhooks.")
    email: list[SmtpConfig] = Field(default_factory=list, description="E-mail over SMTP.")
    telegram: list[TelegramConfig] = Field(default_factory=list, description="Telegram Bot API chats.")
    zalo: list[ZaloConfig] = Field(default_factory=list, description="Zalo Official Account messages.")
    event_rules: list[EventRule] = Field(
        default_factory=list,
        description="Police event notifications: which labelled events go to which notifiers "
        "(cloud/notify/README.md). Empty: events are never announced.",
    )
    event_window_h: float = Field(
        6.0,
        gt=0,
        description="Only events the cloud first received this recently are announced (an outbox a "
        "board held for days is not read out as news).",
    )

    @property
    def names(self) -> list[str]:
        """Every configured notifier's name."""
        return [c.name for c in (*self.webhooks, *self.email, *self.telegram, *self.zalo)]

    @property
    def alert_names(self) -> list[str]:
        """The notifiers technician alerts go to (not those kept for police events)."""
        return [c.name for c in (*self.webhooks, *self.email, *self.telegram, *self.zalo) if c.alerts]

    @model_validator(mode="after")
    def _rules_name_notifiers(self) -> NotifyConfig:
        names = self.names
        seen: set[str] = set()
        for rule in self.event_rules:
            if rule.name in seen:
                raise ValueError(f"two event rules are named {rule.name!r}: names must differ")
            seen.add(rule.name)
            for n in rule.notifiers:
                if n not in names:
                    raise ValueError(
                        f"event rule {rule.name}: no notifier is named {n!r} (configured: "
                        f"{', '.join(names) or 'none'}); give each notifier a name: and use it here"
                    )
                if names.count(n) > 1:
                    raise ValueError(
                        f"event rule {rule.name}: {names.count(n)} notifiers are named {n!r}; give them "
                        "different names"
                    )
        return self
