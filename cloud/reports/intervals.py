"""Time intervals for availability: union, clipping and difference, in milliseconds."""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[int, int]


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping; empty spans dropped (overlapping outages count once)."""
    out: list[Span] = []
    for s, e in sorted(x for x in spans if x[1] > x[0]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def clip(spans: Iterable[Span], start: int, end: int) -> list[Span]:
    return union((max(s, start), min(e, end)) for s, e in spans)


def minus(spans: Iterable[Span], cut: Iterable[Span]) -> list[Span]:
    """``spans`` without the parts covered by ``cut``."""
    cuts = union(cut)
    out: list[Span] = []
    for s, e in union(spans):
        cur = s
        for cs, ce in cuts:
            if ce <= cur or cs >= e:
                continue
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
        if cur < e:
            out.append((cur, e))
    return out


def length(spans: Iterable[Span]) -> int:
    return sum(e - s for s, e in spans)
