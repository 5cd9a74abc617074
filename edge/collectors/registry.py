"""Collector names -> ``module:Class``, imported only when a config uses them.

Lazy import keeps a board's memory and start time to what it runs: an AP board never
imports OpenCV because the camera collector's module is never loaded there. Options are
listed apart from the collectors: their modules import pydantic only, so a configuration
is validated (by the board before it applies one, by the cloud before it sends one)
without loading OpenCV or pysnmp.
"""

from __future__ import annotations

import importlib
from typing import Final

from edge.collectors.base import Collector, CollectorOptions

BUILTIN: Final[dict[str, str]] = {
    "camera": "edge.collectors.camera.collector:Camera",
    "sim_ap": "edge.collectors.sim_ap:SimAccessPoint",
    "sim_camera": "edge.collectors.sim_camera:SimCamera",
    "snmp_ap": "edge.collectors.snmp.collector:SnmpAccessPoints",
}
#: The options model of each built-in collector (its ``Options``), in a light module.
OPTIONS: Final[dict[str, str]] = {
    "camera": "edge.collectors.camera.config:CameraOptions",
    "sim_ap": "edge.collectors.sim_ap:SimAPOptions",
    "sim_camera": "edge.collectors.sim_camera:SimCameraOptions",
    "snmp_ap": "edge.collectors.snmp.config:SnmpApOptions",
}


class RegistryError(ValueError):
    """Unknown or broken plug-in."""


def _load(name: str, target: str) -> object:
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"collector {name!r}: cannot import {module_name}: {exc}") from None
    return getattr(module, class_name, None)


def resolve_options(name: str) -> type[CollectorOptions]:
    """The options model of a collector, without importing the collector itself when built in."""
    target = OPTIONS.get(name)
    if target is None:
        return resolve(name).Options
    cls = _load(name, target)
    if not isinstance(cls, type) or not issubclass(cls, CollectorOptions):
        raise RegistryError(f"collector {name!r}: {target} is not a CollectorOptions subclass")
    return cls


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
    cls = _load(name, target)
    if not isinstance(cls, type) or not issubclass(cls, Collector):
        raise RegistryError(f"collector {name!r}: {target} is not a Collector subclass")
    return cls
