"""The ``update:`` section of the agent's configuration."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wire.release import ReleaseError, parse_public_key

#: The longest trial a board may be configured with (the ``update`` command's resume waits
#: that long at most for the launcher's verdict).
MAX_TRIAL_S = 24 * 3600.0


class UpdateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server_url: str | None = Field(
        default=None,
        description="The cloud's HTTPS address, e.g. https://ciot.example.vn. Releases are fetched only "
        "from under it (the board's credentials are never sent elsewhere); unset: updates are refused.",
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed server_url's certificate; the system's CAs when unset.",
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Release public keys (base64, as `commune-iot release keygen` prints them). A "
        "bundle must be signed by one of them. During a key rotation list the old and the new key.",
    )
    extras: list[str] = Field(
        default_factory=lambda: ["edge"],
        description="Extras installed with the agent: edge (AP and simulated boards) or camera.",
    )
    index_url: str | None = Field(
        default=None,
        description="Package index for dependencies a bundle does not carry; unset: none (the bundle's "
        "wheels and the ones kept from earlier bundles only).",
    )
    trial_s: float = Field(
        default=600.0,
        gt=0,
        le=MAX_TRIAL_S,
        description="A new version must connect and have its birth acknowledged by the broker within "
        "this many seconds, or the launcher goes back to the previous version.",
    )
    max_start_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Exits of a new version before it proved healthy that roll back at once.",
    )
    read_timeout_s: float = Field(
        default=60.0, gt=0, le=600, description="A download read stalled this long is retried."
    )
    attempts: int = Field(
        default=8, ge=1, le=100, description="Download attempts in a row without progress before giving up."
    )
    retry_max_s: float = Field(default=60.0, gt=0, le=3600, description="Cap of the pause between attempts.")

    @field_validator("server_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"expected https://host[:port], got {value!r}")
        return value.rstrip("/")

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, keys: list[str]) -> list[str]:
        for k in keys:
            try:
                parse_public_key(k)
            except ReleaseError as exc:
                raise ValueError(str(exc)) from None
        return keys
