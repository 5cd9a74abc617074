"""How busy a Vietnamese village is at a given hour, for the simulators.

Anchors (local time, Asia/Ho_Chi_Minh): almost nobody online at night, a small
morning bump before work in the fields, a modest midday (lunch at home), and the
evening peak after dinner when families are on their phones.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from datetime import datetime, timedelta, timezone, tzinfo

try:
    from zoneinfo import ZoneInfo

    VN_TZ: tzinfo = ZoneInfo("Asia/Ho_Chi_Minh")
except Exception:  # no tzdata on the board: Vietnam has had no DST since 1975
    VN_TZ = timezone(timedelta(hours=7), "ICT")

# (hour, activity 0..1); linear between anchors, wrapping at midnight.
_ANCHORS: tuple[tuple[float, float], ...] = (
    (0, 0.04),
    (4, 0.02),
    (6, 0.15),
    (7, 0.25),
    (9, 0.15),
    (11.5, 0.40),
    (13, 0.35),
    (15, 0.20),
    (17, 0.35),
    (19, 0.85),
    (20.5, 1.00),
    (22, 0.50),
    (24, 0.04),
)


def activity(at: datetime) -> float:
    """Village activity at ``at`` (aware datetime), 0 (asleep) .. 1 (evening peak)."""
    local = at.astimezone(VN_TZ)
    hour = local.hour + local.minute / 60 + local.second / 3600
    for (h0, a0), (h1, a1) in itertools.pairwise(_ANCHORS):
        if h0 <= hour <= h1:
            return a0 + (a1 - a0) * (hour - h0) / (h1 - h0)
    return _ANCHORS[0][1]


def seeded_rng(*parts: str) -> random.Random:
    """A generator that gives the same sequence for the same device on every board."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
