"""Collector names -> ``module:Class``, imported only when a config uses them.

Lazy import keeps a board's memory and start time to what it runs: an AP board never
imports OpenCV because the camera collector's module is never loaded there.
"""

from __future__ import annotations

import importlib
from typing import Final

from edge.collectors.base import Collector

BUILTIN: Final[dict[str, str]] = {
    "camera": "edge.collectors.camera.collector:Camera",
    "sim_ap": "edge.collectors.sim_ap:SimAccessPoint",
    "sim_camera": "edge.collectors.sim_camera:SimCamera",
    "snmp_ap": "edge.collectors.snmp.collector:SnmpAccessPoints",
}


class RegistryError(ValueError):
    """Unknown or broken plug-in."""


def resolve(name: str) -> type[Collector]:
    """The collector class for a registry name or an explicit ``package.module:Class``."""
    target = BUILTIN.get(name)
    if target is None:
        if ":" not in name:
            known = ", ".join(sorted(BUILTIN))
            raise RegistryError(
                f"unknown collector type {name!r}; known: {known} (or 'package.module:Class')"
            )
        target = name
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"collector {name!r}: cannot import {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Collector):
        raise RegistryError(f"collector {name!r}: {target} is not a Collector subclass")
    return cls
