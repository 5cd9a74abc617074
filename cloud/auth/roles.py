"""Roles and what each may do. A user holds one or more roles.

Police see motion events and snapshots of their own communes only; MIC staff see the
Wi-Fi reports; technicians see device health and alerts; admins see everything,
including users and the audit trail. Police never see reports unless also given ``mic``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    ADMIN = "admin"
    TECHNICIAN = "technician"
    POLICE = "police"
    MIC = "mic"


class Perm(StrEnum):
    EVENTS = "events"  # motion events, snapshots, notes, review, evidence export
    DEVICES = "devices"  # device list, dead letters, alerts, maintenance
    REPORTS = "reports"  # Wi-Fi usage reports
    AUDIT = "audit"  # the audit trail
    USERS = "users"  # user administration


PERMISSIONS: Final[dict[Role, frozenset[Perm]]] = {
    Role.ADMIN: frozenset(Perm),
    Role.TECHNICIAN: frozenset({Perm.DEVICES}),
    Role.POLICE: frozenset({Perm.EVENTS}),
    Role.MIC: frozenset({Perm.REPORTS}),
}


def roles_with(perm: Perm) -> list[Role]:
    """The roles that grant ``perm`` (for a 403 that says who may)."""
    return [role for role, perms in PERMISSIONS.items() if perm in perms]


def parse_roles(text: str) -> frozenset[Role]:
    """``"police,mic"`` -> roles; unknown names are an error, not silently dropped."""
    out: set[Role] = set()
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        try:
            out.add(Role(name))
        except ValueError:
            raise ValueError(f"unknown role {name!r} (known: {', '.join(r.value for r in Role)})") from None
    if not out:
        raise ValueError("a user needs at least one role")
    return frozenset(out)
