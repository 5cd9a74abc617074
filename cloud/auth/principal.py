"""Who is asking: the user behind a session cookie or an API token, with their scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cloud.auth.roles import PERMISSIONS, Perm, Role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    display_name: str
    roles: frozenset[Role]
    #: Communes whose events the user may see; None: all (admins).
    communes: frozenset[str] | None
    via: Literal["session", "token"]
    session_id: str | None = None  # the session row's key (hash of the cookie)
    csrf_token: str | None = None
    lang: str = "vi"

    @property
    def perms(self) -> frozenset[Perm]:
        out: set[Perm] = set()
        for r in self.roles:
            out |= PERMISSIONS[r]
        return frozenset(out)

    def can(self, perm: Perm) -> bool:
        return perm in self.perms

    def event_scope(self) -> frozenset[str] | None:
        """Communes for event queries: everything for admins, the listed ones for police."""
        if Role.ADMIN in self.roles:
            return None
        return self.communes or frozenset()

    def sees_commune(self, commune: str) -> bool:
        scope = self.event_scope()
        return scope is None or commune in scope

    def device_scope(self) -> frozenset[str] | None:
        """Communes whose devices, alerts and boards the user manages: all (None) for admins and
        for technicians given no commune, else the listed ones."""
        if Role.ADMIN in self.roles or not self.communes:
            return None
        return self.communes

    def manages(self, commune: str) -> bool:
        scope = self.device_scope()
        return scope is None or commune in scope
