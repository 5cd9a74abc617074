"""Polygons in frame fractions -> pixel masks at whatever size the detector works at.

Polygons are given as fractions of the frame (0..1) so one configuration survives a change of
the camera's resolution or the detector's ``detect_width``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[Any]  # cv2 returns loosely typed arrays; uint8 by construction
Polygon = Sequence[tuple[float, float]]


def polygon_mask(polygons: Sequence[Polygon], width: int, height: int) -> U8:
    """1 inside any of ``polygons``, 0 elsewhere."""
    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        pts = np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in poly], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask


def keep_mask(ignore: Sequence[Polygon], width: int, height: int, only: Sequence[Polygon] = ()) -> U8 | None:
    """Where motion counts: everywhere but ``ignore``, and only inside ``only`` when given.
    None when nothing is masked (the detector then skips the AND)."""
    if not ignore and not only:
        return None
    keep = polygon_mask(only, width, height) if only else np.ones((height, width), np.uint8)
    if ignore:
        keep &= 1 - polygon_mask(ignore, width, height)
    return keep


def zones_touched(mask: U8, zones: dict[str, U8]) -> list[str]:
    """Names of the zones that share at least one moving pixel with ``mask``."""
    hit: list[str] = []
    for name, zone in zones.items():
        if zone.shape != mask.shape:
            zone = cv2.resize(zone, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
            zones[name] = zone
        if np.any(mask & zone):
            hit.append(name)
    return hit
