"""Reconnect delays: capped exponential backoff with full jitter.

Jitter matters here: after a commune's uplink or the broker comes back, dozens of
boards would otherwise reconnect in lock-step and hit the broker at the same instant.
paho's own ``reconnect_delay_set`` doubles without jitter, so the link uses this.
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    min_s: float,
    max_s: float,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> float:
    """Delay before reconnect attempt ``attempt`` (0 = first retry after a failure).

    The ceiling grows as ``min_s * 2**attempt`` up to ``max_s``; the result is drawn
    uniformly from ``[ceiling * (1 - jitter), ceiling]``, so it never exceeds ``max_s``
    and never drops below ``min_s * (1 - jitter)``.
    """
    if min_s <= 0 or max_s < min_s:
        raise ValueError(f"need 0 < min_s <= max_s, got min_s={min_s} max_s={max_s}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be within 0..1, got {jitter}")
    exp = min(max(attempt, 0), 62)  # 2**62 * min_s already exceeds any sane cap
    ceiling = min(max_s, min_s * 2.0**exp)
    draw = (rng or random).random()
    return ceiling * (1.0 - jitter * draw)
