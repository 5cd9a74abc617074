"""The fleet's control plane on the wire: the device twin and commands (docs/protocol.md).

```
ciot/v1/<commune>/<node>/config     cloud -> node, retained   DesiredConfig
ciot/v1/<commune>/<node>/reported   node -> cloud             ConfigReport
ciot/v1/<commune>/<node>/cmd        cloud -> node             Command
ciot/v1/<commune>/<node>/reply      node -> cloud             CommandReply
```

Only the cloud may publish on ``config`` and ``cmd`` (broker ACL); a board reads only its own.

**Twin.** The desired configuration is the part of the edge agent's configuration the
cloud manages (``edge.config.ManagedConfig`` is its schema), with a version that only
grows. It is retained, so a board that was offline for a week gets the latest on
reconnect and nothing older; a board refuses a version at or below one it has already
tried. Secrets in it are sealed for the board (``wire.crypto``) or ``REDACTED`` ("keep
what the board has"), never clear. The board answers each version with a ConfigReport:
applied, rejected (validation or apply error, word for word), or reverted (it ran, the
board could not do its job with it, the last good one runs again).

**Commands.** Each has an id (a board runs an id once, ever), who issued it, an absolute
expiry (a board never runs one late: it answers ``expired``), and arguments checked
against ``COMMANDS``. Replies carry the command's id (correlation in the envelope, so
they survive the board's outbox): ``accepted`` on receipt, ``running`` with progress for
long ones, then ``done`` with a result or ``failed`` with an error; ``refused`` for a
duplicate, forged or unknown command. A command may outlive the agent process that took
it (``restart``; ``update``, finished by the new version, or by the old one after a
rollback): the next process finishes it from the board's command log.

Adding a command is adding its argument model to ``COMMANDS`` and a handler on the
board (``edge.control.commands``); nothing else on the channel changes.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import Field, StringConstraints, ValidationError

from wire.messages import (
    SCHEMA_VERSION,
    ConfigVersion,
    Envelope,
    Id,
    UtcDatetime,
    Version,
    WireError,
    _Model,
    decode_as,
)
from wire.release import UpdateArgs
from wire.topics import Channel

#: Longest a command may wait for its board (an agent update rolled out to boards that
#: come online once a week needs long ones).
MAX_TTL_S: Final = 30 * 86400
DEFAULT_TTL_S: Final = 300

CommandId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
CommandName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Issuer = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Signature = Annotated[str, StringConstraints(max_length=200)]
Text = Annotated[str, StringConstraints(max_length=2000)]
#: A host name or address for ``ping``; never starting with ``-`` (it goes on a command line).
Host = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.:_-]{0,252}$")]


# ---------------------------------------------------------------------------- device twin


class DesiredConfig(_Model):
    """What the cloud wants a board to run (retained on ``config``)."""

    v: Version = SCHEMA_VERSION
    node: Id
    version: int = Field(ge=1, le=2**53)
    issued_by: Issuer
    issued_at: UtcDatetime
    #: The managed part of the edge configuration (``edge.config.ManagedConfig``); secret
    #: fields hold sealed values or ``REDACTED``.
    config: dict[str, Any]
    sig: Signature | None = None


ReportState = Literal["applied", "rejected", "reverted", "stale"]


class ConfigReport(Envelope):
    """What a board runs, after a desired version arrived and at every agent start. ``seq`` is 0."""

    state: ReportState
    #: The desired version this report answers; at start, the running one.
    version: ConfigVersion
    #: The version running now (0: the board's local file only).
    running: ConfigVersion
    #: The highest version the board has answered: it ignores that one and refuses older ones,
    #: so the cloud numbers the next above it.
    tried: ConfigVersion = 0
    #: The running configuration passed its checks (stream up, APs answering, broker
    #: reachable), or had none to pass; false while a new one is on trial.
    good: bool
    #: Why a version was rejected or reverted, word for word.
    error: Text | None = None
    #: The managed configuration now running; every secret shows as ``REDACTED``.
    config: dict[str, Any]
    #: The board's X25519 public key (base64): what the cloud seals secrets to.
    board_key: Annotated[str, StringConstraints(max_length=64)] | None = None
    agent_version: Annotated[str, StringConstraints(max_length=64)] = ""


# ---------------------------------------------------------------------------- commands


class Command(_Model):
    """One command for one board (on ``cmd``)."""

    v: Version = SCHEMA_VERSION
    node: Id
    id: CommandId
    name: CommandName
    args: dict[str, Any] = Field(default_factory=dict)
    issued_by: Issuer
    issued_at: UtcDatetime
    #: After this instant the board must not run it (it answers ``expired``).
    expires_at: UtcDatetime
    sig: Signature | None = None


ReplyState = Literal["accepted", "running", "done", "failed", "expired", "refused"]
#: Replies after which nothing more comes for that command.
FINAL_REPLIES: Final = frozenset({"done", "failed", "expired", "refused"})


class CommandReply(Envelope):
    """A board's answer to a command (on ``reply``); correlated by ``id``. ``seq`` is 0."""

    id: CommandId
    name: CommandName
    state: ReplyState
    progress: Annotated[str, StringConstraints(max_length=500)] | None = None
    result: dict[str, Any] | None = None
    error: Text | None = None


class NoArgs(_Model):
    pass


class DeviceArgs(_Model):
    device: Id | None = Field(default=None, description="Device of the board; its only one when unset.")


class PingArgs(_Model):
    host: Host | None = Field(default=None, description="Host to ping; default: every device's address.")
    device: Id | None = Field(default=None, description="Ping this device's address.")
    count: int = Field(default=3, ge=1, le=10, description="Echo requests per host.")


class LogsArgs(_Model):
    lines: int = Field(default=100, ge=1, le=2000, description="Last lines of the agent's log.")


#: Commands and their arguments. ``snapshot``: a camera's picture now; ``poll``: an access
#: point polled now; ``ping``: reachability from the board; ``diag``: versions, uptime,
#: disk, outbox, clock; ``logs``: the agent's last log lines (size-capped); ``rebirth``:
#: birth certificate and configuration report again; ``restart``: the agent process;
#: ``update``: a signed agent release installed and put on trial (its model lives with the
#: release format in ``wire.release``; docs/updates.md).
COMMANDS: Final[dict[str, type[_Model]]] = {
    "snapshot": DeviceArgs,
    "poll": DeviceArgs,
    "ping": PingArgs,
    "diag": NoArgs,
    "logs": LogsArgs,
    "rebirth": NoArgs,
    "restart": NoArgs,
    "update": UpdateArgs,
}


def command_args(name: str, args: dict[str, Any], *, strict: bool = False) -> _Model:
    """The arguments of command ``name`` validated; WireError for an unknown command or bad
    arguments (the text names the field)."""
    model = COMMANDS.get(name)
    if model is None:
        raise WireError(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    try:
        return model.model_validate(args, strict=strict)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "args"
        raise WireError(f"args.{where}: {first['msg']}"[:300]) from None


#: The model of each control channel.
CONTROL_MODELS: Final[dict[Channel, type[DesiredConfig | ConfigReport | Command | CommandReply]]] = {
    Channel.CONFIG: DesiredConfig,
    Channel.REPORTED: ConfigReport,
    Channel.CMD: Command,
    Channel.REPLY: CommandReply,
}


def decode_control(channel: Channel, payload: bytes) -> DesiredConfig | ConfigReport | Command | CommandReply:
    """Validate a control-plane payload for ``channel``; WireError with a one-line reason."""
    model = CONTROL_MODELS.get(channel)
    if model is None:
        raise WireError(f"channel {channel.value!r} is not a control channel")
    return decode_as(model, payload)
