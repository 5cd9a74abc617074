"""A thin pysnmp 7 (asyncio) wrapper: GETs and walks, bounded in time, with plain Python values.

Why a wrapper: pysnmp's defaults are wrong for a poller (1 s x 5 retries = 6 s per dead
AP, walks that run past their subtree to the end of the MIB), its errors come back as
values, and one ``SnmpEngine`` must serve one event loop only (a reused engine hangs).
Everything above this module sees ``int | bytes | str | None`` values and one exception.
The pitfalls this works around are listed in this plug-in's README.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

#: A converted SNMP value: integers (counters, gauges, TimeTicks), OCTET STRING bytes,
#: an OBJECT IDENTIFIER as dotted text, or None for noSuchObject/noSuchInstance/endOfMib.
Value = int | bytes | str | None

#: Most varbinds in one request: real APs answer ``tooBig`` well before snmpsim does.
MAX_VARBINDS = 24

T = TypeVar("T")


class SnmpError(Exception):
    """A request that got no usable answer; the message is one line for a technician."""

    def __init__(self, message: str, *, kind: Literal["timeout", "error", "auth"] = "error") -> None:
        super().__init__(message)
        self.kind = kind


class Credentials(BaseModel):
    """How to authenticate: a v2c community, or a v3 user with SHA authentication and AES
    privacy (authPriv). Secrets may come from the config, the environment or a file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal["2c", "3"] = Field(default="2c", description="SNMP version: '2c' or '3'.")
    community: SecretStr | None = Field(
        default=None, description="v2c community. Prefer community_file or the environment."
    )
    community_file: str | None = Field(default=None, description="File holding the v2c community.")
    community_env: str | None = Field(
        default=None, description="Environment variable holding the v2c community."
    )
    user: str | None = Field(default=None, description="v3 security name (user).")
    auth_protocol: Literal["SHA", "SHA256", "SHA512", "MD5"] = Field(
        default="SHA", description="v3 authentication protocol."
    )
    auth_key: SecretStr | None = Field(default=None, description="v3 authentication passphrase.")
    auth_key_file: str | None = Field(default=None, description="File holding the v3 auth passphrase.")
    auth_key_env: str | None = Field(default=None, description="Environment variable holding it.")
    priv_protocol: Literal["AES", "AES192", "AES256", "none"] = Field(
        default="AES", description="v3 privacy protocol ('none' for authNoPriv)."
    )
    priv_key: SecretStr | None = Field(default=None, description="v3 privacy passphrase.")
    priv_key_file: str | None = Field(default=None, description="File holding the v3 privacy passphrase.")
    priv_key_env: str | None = Field(default=None, description="Environment variable holding it.")

    @model_validator(mode="after")
    def _check(self) -> Credentials:
        if self.version == "2c":
            if self.community is None and self.community_file is None and self.community_env is None:
                raise ValueError("SNMP v2c needs community, community_file or community_env")
        else:
            if not self.user:
                raise ValueError("SNMP v3 needs user")
            if (self.auth_key, self.auth_key_file, self.auth_key_env) == (None, None, None):
                raise ValueError("SNMP v3 needs auth_key, auth_key_file or auth_key_env")
            privs = (self.priv_key, self.priv_key_file, self.priv_key_env)
            if self.priv_protocol != "none" and privs == (None, None, None):
                raise ValueError("SNMP v3 with privacy needs priv_key, priv_key_file or priv_key_env")
        return self

    @staticmethod
    def _secret(value: SecretStr | None, path: str | None, env: str | None, what: str) -> str:
        if value is not None:
            return value.get_secret_value()
        if env is not None:
            if env not in os.environ:
                raise SnmpError(f"the {what} variable {env} is not set")
            return os.environ[env]
        assert path is not None
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise SnmpError(f"cannot read the {what} file {path}: {exc.strerror}") from None

    def auth_data(self) -> Any:
        """The pysnmp ``CommunityData`` / ``UsmUserData`` for these credentials."""
        from pysnmp.hlapi.v3arch import asyncio as hl

        if self.version == "2c":
            return hl.CommunityData(
                self._secret(self.community, self.community_file, self.community_env, "community"), mpModel=1
            )
        auth = {
            "SHA": hl.usmHMACSHAAuthProtocol,
            "SHA256": hl.usmHMAC192SHA256AuthProtocol,
            "SHA512": hl.usmHMAC384SHA512AuthProtocol,
            "MD5": hl.usmHMACMD5AuthProtocol,
        }[self.auth_protocol]
        priv = {
            "AES": hl.usmAesCfb128Protocol,
            "AES192": hl.usmAesCfb192Protocol,
            "AES256": hl.usmAesCfb256Protocol,
            "none": hl.usmNoPrivProtocol,
        }[self.priv_protocol]
        auth_key = self._secret(self.auth_key, self.auth_key_file, self.auth_key_env, "auth key")
        priv_key = None
        if self.priv_protocol != "none":
            priv_key = self._secret(self.priv_key, self.priv_key_file, self.priv_key_env, "privacy key")
        return hl.UsmUserData(
            self.user, authKey=auth_key, privKey=priv_key, authProtocol=auth, privProtocol=priv
        )


def _convert(value: Any) -> Value:
    from pyasn1.type import univ
    from pysnmp.proto import rfc1905

    if isinstance(value, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView):
        return None
    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks, Unsigned32
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque
        return bytes(value.asOctets())
    if isinstance(value, univ.Null):
        return None
    return str(value.prettyPrint())


def oid_tuple(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.strip(".").split("."))


@dataclass(frozen=True)
class Target:
    """One agent to talk to."""

    host: str
    port: int = 161
    timeout_s: float = 2.0
    retries: int = 1

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port != 161 else self.host


class SnmpClient:
    """One ``SnmpEngine`` for the running event loop, shared by every AP and request.

    Create it inside the loop that uses it and ``close()`` it there: pysnmp engines must never
    outlive their loop (a reused one hangs forever). Transport targets are cached per agent.
    """

    def __init__(self) -> None:
        from pysnmp.hlapi.v3arch import asyncio as hl

        self._hl = hl
        self._engine = hl.SnmpEngine()
        self._context = hl.ContextData()
        self._targets: dict[Target, Any] = {}
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._engine.close_dispatcher()

    async def _transport(self, target: Target) -> Any:
        transport = self._targets.get(target)
        if transport is None:
            try:
                transport = await self._hl.UdpTransportTarget.create(
                    (target.host, target.port), timeout=target.timeout_s, retries=target.retries
                )
            except Exception as exc:  # pysnmp wraps resolver errors in PySnmpError
                cause = exc.__cause__ or exc.__context__
                reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
                if isinstance(cause, socket.gaierror):
                    reason = str(cause.args[-1])
                raise SnmpError(f"cannot resolve {target.host}: {reason}") from None
            self._targets[target] = transport
        return transport

    def _raise_for(self, target: Target, indication: Any, status: Any, index: Any) -> None:
        if indication:
            text = str(indication)
            name = type(indication).__name__
            if name == "RequestTimedOut":
                waited = target.timeout_s * (target.retries + 1)
                raise SnmpError(f"no SNMP answer from {target.address} within {waited:g} s", kind="timeout")
            kind: Literal["auth", "error"] = (
                "auth" if any(w in text.lower() for w in ("auth", "unknown user", "decrypt")) else "error"
            )
            raise SnmpError(f"SNMP error from {target.address}: {text}", kind=kind)
        if status and int(status) != 0:
            raise SnmpError(f"SNMP error from {target.address}: {status.prettyPrint()} at varbind {index}")

    async def get(self, target: Target, oids: Sequence[str], auth: Any) -> dict[str, Value]:
        """GET ``oids`` (in PDUs of at most MAX_VARBINDS); missing ones come back as None."""
        hl = self._hl
        out: dict[str, Value] = {}
        transport = await self._transport(target)
        for start in range(0, len(oids), MAX_VARBINDS):
            chunk = oids[start : start + MAX_VARBINDS]
            binds = [hl.ObjectType(hl.ObjectIdentity(o)) for o in chunk]
            indication, status, index, varbinds = await hl.get_cmd(
                self._engine, auth, transport, self._context, *binds, lookupMib=False
            )
            self._raise_for(target, indication, status, index)
            for name, value in varbinds:
                out[str(name)] = _convert(value)
        for o in oids:
            out.setdefault(o, None)
        return out

    async def walk(
        self, target: Target, columns: Sequence[str], auth: Any, *, max_rows: int = 2000
    ) -> dict[str, dict[str, Value]]:
        """Walk several table columns at once with GETBULK and stop each at its subtree end.

        Returns ``{column: {index: value}}`` where ``index`` is the OID suffix after the column
        ("3" or "6.87.73.70"). Columns are fetched side by side, so a table costs one round
        trip per few rows however many columns are asked for.
        """
        hl = self._hl
        prefixes = {c: oid_tuple(c) for c in columns}
        result: dict[str, dict[str, Value]] = {c: {} for c in columns}
        cursor: dict[str, tuple[int, ...]] = dict(prefixes)
        active = list(dict.fromkeys(columns))
        transport = await self._transport(target)
        rows = 0
        while active:
            reps = max(1, MAX_VARBINDS // len(active))
            binds = [hl.ObjectType(hl.ObjectIdentity(".".join(map(str, cursor[c])))) for c in active]
            indication, status, index, table = await hl.bulk_cmd(
                self._engine, auth, transport, self._context, 0, reps, *binds, lookupMib=False
            )
            self._raise_for(target, indication, status, index)
            if not table:
                break
            done: set[str] = set()
            advanced: set[str] = set()
            for i, (name, value) in enumerate(table):
                col = active[i % len(active)]
                if col in done:
                    continue
                oid = tuple(name)
                prefix = prefixes[col]
                converted = _convert(value)
                if (
                    oid[: len(prefix)] != prefix
                    or len(oid) <= len(prefix)
                    or value.__class__.__name__ == ("EndOfMibView")
                ):
                    done.add(col)
                    continue
                if oid <= cursor[col]:  # an agent that does not advance: stop, do not loop
                    done.add(col)
                    continue
                result[col][".".join(map(str, oid[len(prefix) :]))] = converted
                cursor[col] = oid
                advanced.add(col)
                rows += 1
            active = [c for c in active if c not in done and c in advanced]
            if rows >= max_rows:
                break
        return result


async def bounded(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """Await with a hard deadline: pysnmp's own timeout is not always honoured."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise SnmpError(f"{what}: no complete answer within {seconds:g} s", kind="timeout") from None
