"""The console's pages as one router (technicians and admins; see the package docstring)."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.web.console import alertpages, boardpages, fleetpages, maintpages
from cloud.web.console.services import Console


def console_router(c: Console) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    for module in (fleetpages, alertpages, maintpages, boardpages):
        r.include_router(module.router(c))
    return r
