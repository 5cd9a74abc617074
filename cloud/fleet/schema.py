"""A desired configuration checked in the cloud with the edge agent's own models.

The twin's schema is ``edge.config.ManagedConfig`` and the collectors' option models, the
very ones a board validates with (they import pydantic only: no OpenCV, no pysnmp), so a
configuration the board would refuse is refused here first, with the field's path, and
never leaves the cloud. This module is the one place the cloud reaches into ``edge``.

Secrets: the document may hold a secret field only as ``REDACTED`` (keep the board's) or
sealed; clear values come separately, are sealed here to the key the board reported, and
are forgotten.
"""

from __future__ import annotations

import itertools
from typing import Any

from edge.config import ManagedConfigError, reported, secret_paths, url_password_paths, validate_managed
from wire import crypto


class ConfigRejected(ValueError):
    """The schema refuses a desired configuration: (path, message) pairs, paths as lists."""

    def __init__(self, errors: list[tuple[list[str | int], str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in errors[:5]))


def _path(dotted: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in dotted.split(".")] if dotted != "(top level)" else []


def _get(doc: Any, path: list[str | int]) -> Any:
    for part in path:
        found = (isinstance(doc, dict) and part in doc) or (
            isinstance(doc, list) and isinstance(part, int) and part < len(doc)
        )
        if not found:
            return None
        doc = doc[part]
    return doc


def check(doc: Any) -> None:
    """ConfigRejected unless ``doc`` is a valid desired configuration with no clear secret."""
    try:
        managed = validate_managed(doc)
    except ManagedConfigError as exc:
        raise ConfigRejected([(_path(where), msg) for where, msg in exc.errors]) from None
    errors: list[tuple[list[str | int], str]] = []
    for dotted in secret_paths(managed):
        value = _get(doc, _path(dotted))
        if not (crypto.is_sealed(value) or value == crypto.REDACTED):
            errors.append(
                (
                    _path(dotted),
                    "a secret in clear: send it in `secrets` (sealed for the board), or "
                    f"'{crypto.REDACTED}' to keep the board's",
                )
            )
    for dotted in url_password_paths(doc):
        errors.append(
            (_path(dotted), "a password in a URL: set the password field through `secrets` instead")
        )
    if errors:
        raise ConfigRejected(errors)


def seal_into(doc: dict[str, Any], secrets: dict[str, str], board_key: str | None) -> list[str]:
    """Seal each clear secret (dotted path -> value) for the board and put it at its path in
    ``doc`` (creating missing mappings). Returns the paths; the clear values are not kept."""
    if not secrets:
        return []
    if not board_key:
        raise ConfigRejected(
            [(["secrets"], "the board has not reported its key yet (it must be online once): cannot seal")]
        )
    for dotted, value in secrets.items():
        path = _path(dotted)
        holder: Any = doc
        try:
            for part, nxt in itertools.pairwise(path):
                if isinstance(holder, list):
                    holder = holder[int(part)]
                else:
                    holder = holder.setdefault(part, [] if isinstance(nxt, int) else {})
            last = path[-1]
            if isinstance(holder, list):
                holder[int(last)] = crypto.seal(board_key, value)
            else:
                holder[last] = crypto.seal(board_key, value)
        except (IndexError, KeyError, TypeError, ValueError, AttributeError):
            raise ConfigRejected([(["secrets", dotted], "no such place in the configuration")]) from None
    return sorted(secrets)


def diff(desired: Any, reported: Any, path: str = "") -> list[dict[str, Any]]:
    """Where the desired and the reported configuration differ: [{path, desired, reported}],
    down to the field (a section set on one side only is compared field by field with an empty
    one). A sealed secret and the board's ``REDACTED`` count as equal (the board never shows it)."""
    if isinstance(desired, dict) and reported is None and path:
        reported = {}
    elif isinstance(reported, dict) and desired is None and path:
        desired = {}
    if isinstance(desired, dict) and isinstance(reported, dict):
        out = []
        for key in sorted(set(desired) | set(reported)):
            sub = f"{path}.{key}" if path else str(key)
            out += diff(desired.get(key), reported.get(key), sub)
        return out
    if isinstance(desired, list) and isinstance(reported, list) and len(desired) == len(reported):
        return [
            d
            for i, (a, b) in enumerate(zip(desired, reported, strict=True))
            for d in diff(a, b, f"{path}.{i}")
        ]
    if crypto.is_sealed(desired) and reported == crypto.REDACTED:
        return []
    if desired != reported:
        return [{"path": path or "(top level)", "desired": desired, "reported": reported}]
    return []


def normalized(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A desired document as the board will report it (defaults out, secrets ``REDACTED``), so
    that desired and reported compare field by field."""
    if config is None:
        return None
    try:
        return reported(validate_managed(config))
    except ValueError:
        return config


def snmp_profiles() -> list[str]:
    """The SNMP vendor profiles boards know (``auto`` first), for the onboarding form."""
    from edge.collectors.snmp.profile import builtin_profiles

    return ["auto", *sorted(builtin_profiles())]
