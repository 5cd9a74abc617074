"""The board's side of the device twin: which desired version to take, and what it becomes.

A desired configuration replaces the managed part of the board's own file
(``edge.config.ManagedConfig``); identity, broker, outbox and control stay local. Its
versions only grow: the board answers each version once, ignores the retained copy it gets
again on every reconnect, and refuses an older one ("stale"), so an old retained message,
a cloud restored from backup or a replay can never take it back in time.

Secrets: in a desired document a secret field holds either a value sealed for this board
(decrypted here, in memory only) or ``REDACTED``, meaning "keep what the board has there":
the sealed value of the running version if it had one, else the value in the local file.
What is kept on disk (the running and last good documents) still has them sealed or
``REDACTED``; a secret in clear is refused, whoever sent it.

Last known good: a version applied while the board was doing its job goes on trial; it is
confirmed once every check passes (``edge.control.plane``), or reverted after
``control.revert_after_s``. An agent restart during a trial reverts it too: a version that
crashed the agent must not crash it again at every start.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edge.config import (
    EdgeConfig,
    ManagedConfig,
    ManagedConfigError,
    secret_paths,
    url_password_paths,
    validate_managed,
)
from edge.control.state import ControlState, TwinState
from wire import DesiredConfig, WireError, crypto, decode_as

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

log = logging.getLogger(__name__)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do (the retained copy of a version already answered)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer ``state`` for ``version`` and change nothing."""

    state: str  # rejected | stale
    version: int
    error: str
    #: Count the version as tried (not for a forged one: it must not block real versions).
    mark: bool = True


@dataclass(frozen=True, slots=True)
class Apply:
    version: int
    config: EdgeConfig
    doc: dict[str, Any]  # as kept on disk: secrets sealed or REDACTED


Decision = Ignore | Refuse | Apply


class TwinError(ValueError):
    """A desired document this board cannot use; the text says which field and why."""


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return _MISSING
    return doc


class Twin:
    def __init__(
        self, local: EdgeConfig, state: ControlState, key: X25519PrivateKey, verify_key: str | None
    ) -> None:
        self.local = local
        self.state = state
        self.key = key
        self.verify_key = verify_key
        #: The local file's managed part as written (secrets in clear, for ``REDACTED``).
        self._local_raw = local.managed().model_dump(mode="python", by_alias=True)
        self.st: TwinState = state.twin()

    # -- documents -> configurations ---------------------------------------------------------

    def build(
        self, doc: dict[str, Any], running_doc: dict[str, Any] | None
    ) -> tuple[EdgeConfig, dict[str, Any]]:
        """The board's configuration from a desired document, and that document as to be kept
        (``REDACTED`` resolved against ``running_doc``). TwinError says what is wrong."""
        errors: list[str] = []
        kept, clear = self._resolve(doc, [], running_doc, errors)
        if errors:
            raise TwinError("; ".join(errors))
        try:
            managed = validate_managed(clear)
        except ManagedConfigError as exc:
            raise TwinError(str(exc)) from None
        self._check_no_clear_secrets(doc, managed)
        return self.local.with_managed(managed), kept

    def _resolve(
        self, value: Any, path: list[str], running: dict[str, Any] | None, errors: list[str]
    ) -> tuple[Any, Any]:
        if isinstance(value, dict):
            pairs = {k: self._resolve(v, [*path, str(k)], running, errors) for k, v in value.items()}
            return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
        if isinstance(value, list):
            items = [self._resolve(v, [*path, str(i)], running, errors) for i, v in enumerate(value)]
            return [p[0] for p in items], [p[1] for p in items]
        where = ".".join(path)
        if value == crypto.REDACTED:
            before = _get(running, path) if running is not None else _MISSING
            if crypto.is_sealed(before):
                value = before  # the secret the cloud sealed for the running version
            else:
                local = _get(self._local_raw, path)
                if not isinstance(local, str):
                    errors.append(
                        f"{where}: '{crypto.REDACTED}' keeps the board's secret, but it has none there"
                    )
                    return value, value
                return value, local
        if crypto.is_sealed(value):
            try:
                return value, crypto.unseal(self.key, value)
            except crypto.CryptoError as exc:
                errors.append(f"{where}: {exc}")
        return value, value

    @staticmethod
    def _check_no_clear_secrets(doc: dict[str, Any], managed: ManagedConfig) -> None:
        clear = [
            p
            for p in secret_paths(managed)
            if not (crypto.is_sealed(v := _get(doc, p.split("."))) or v == crypto.REDACTED or v is _MISSING)
        ]
        clear += url_password_paths(doc)
        if clear:
            raise TwinError(
                f"{', '.join(clear)}: a secret in clear; the cloud sends secrets sealed for this board only"
            )

    # -- the twin's life ---------------------------------------------------------------------

    def startup(self) -> EdgeConfig:
        """The configuration to start with: the running version (a trial cut short by a
        restart is reverted first)."""
        st = self.st
        if st.running and not st.good:
            tried = st.running
            self._run_lkg()
            why = f"version {tried} was on trial when the agent restarted; back to version {st.running}"
            self._note("reverted", tried, why)
            log.warning("configuration %s", why)
        return self.current()

    def current(self) -> EdgeConfig:
        """The running version's configuration, or the local file's if it cannot be built any
        more (the local file changed under it, a plug-in is gone): then that is said too."""
        st = self.st
        if st.running_doc is None:
            return self.local
        try:
            cfg, _ = self.build(st.running_doc, st.running_doc)
        except TwinError as exc:
            log.error("cannot rebuild configuration version %d (%s): running the local file", st.running, exc)
            version = st.running
            st.running, st.running_doc, st.lkg, st.lkg_doc, st.good, st.trial_since = (
                0,
                None,
                0,
                None,
                True,
                None,
            )
            self._note(
                "reverted", version, f"version {version} no longer fits ({exc}); running the local file"
            )
            return self.local
        return cfg

    def receive(self, payload: bytes) -> Decision:
        try:
            msg = decode_as(DesiredConfig, payload)
        except WireError as exc:
            log.error("ignoring a malformed desired configuration: %s", exc)
            return Ignore()
        if msg.node != self.local.node:
            log.error("ignoring a desired configuration for node %s on this board's topic", msg.node)
            return Ignore()
        st = self.st
        if msg.version == st.tried:
            return Ignore()  # the retained copy of what was answered already
        if self.verify_key is not None:
            try:
                crypto.verify(self.verify_key, json.loads(payload))
            except crypto.CryptoError as exc:
                log.error("refusing desired configuration version %d: %s", msg.version, exc)
                return Refuse("rejected", msg.version, f"refused: {exc}", mark=False)
        if msg.version < st.tried:
            return Refuse(
                "stale", msg.version, f"version {msg.version} is older than version {st.tried}, already tried"
            )
        try:
            cfg, kept = self.build(msg.config, st.running_doc)
        except TwinError as exc:
            self._tried(msg.version)
            return Refuse("rejected", msg.version, str(exc))
        return Apply(msg.version, cfg, kept)

    def rejected(self, version: int, error: str) -> None:
        self._tried(version)
        self._note("rejected", version, error)

    def refused(self, decision: Refuse) -> None:
        if decision.state == "rejected" and decision.mark:
            self._tried(decision.version)
        self._note(decision.state, decision.version, decision.error)

    def applied(self, version: int, doc: dict[str, Any], *, trial: bool) -> None:
        st = self.st
        st.tried = max(st.tried, version)
        st.running, st.running_doc, st.good = version, doc, not trial
        st.trial_since = datetime.now(UTC).timestamp() if trial else None
        if not trial:
            st.lkg, st.lkg_doc = version, doc
        self._note("applied", version, None)

    def confirm(self) -> None:
        st = self.st
        st.good, st.trial_since, st.lkg, st.lkg_doc = True, None, st.running, st.running_doc
        self.state.save_twin(st)

    def revert(self, reason: str) -> EdgeConfig:
        """Back to the last good version (its configuration is returned)."""
        tried = self.st.running
        self._run_lkg()
        self._note("reverted", tried, reason)
        return self.current()

    @property
    def on_trial(self) -> bool:
        return not self.st.good

    def _run_lkg(self) -> None:
        st = self.st
        st.running, st.running_doc, st.good, st.trial_since = st.lkg, st.lkg_doc, True, None

    def _tried(self, version: int) -> None:
        self.st.tried = max(self.st.tried, version)

    def _note(self, state: str, version: int, error: str | None) -> None:
        st = self.st
        st.state, st.version, st.error = state, version, error
        self.state.save_twin(st)
