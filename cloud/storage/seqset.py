"""The distinct sequence numbers received in one node session, as merged ranges.

Gaps are ``max_seq - first_seq + 1 - received``. Counting ``received`` as a sum counts a
redelivered message twice (QoS 1 is at-least-once, and a cloud killed between its journal
fsync and the ack gets the batch again), which hides real gaps; a set of ranges merged with
each batch's seqs counts every seq once, in any order, however often it arrives, and from
several workers at once. A healthy session is one range (``1-86400``); each lost stretch
adds one.

A session with more than ``MAX_RANGES`` holes (a board throttled for flooding, whose admitted
messages are scattered) folds its oldest holes into ``sealed``, but only holes more than
``RECENT`` seqs behind its newest seq: seqs up to ``sealed_to`` are not tracked one by one
any more, their holes are counted as lost (``sealed``), and a late arrival among them counts
nothing. A board sends in order (its outbox replays before newer data) and workers reorder
only what is in flight, so a seq that far behind will not come any more. The text stays
bounded (``MAX_RANGES + RECENT / 2`` ranges at worst, a board losing every other message)
and the count exact for any session with fewer holes, or with no late arrival that far back.

Text form (column ``node_sessions.seqs``): ``"1-500,502-900"``, prefixed with
``"<sealed>/<sealed_to>;"`` once holes were sealed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

MAX_RANGES: Final = 256
#: Holes closer than this to the newest seq are never sealed: what is in flight may still fill
#: them. Far more than a worker's in-flight window (receive_maximum 4,096 messages, all nodes
#: together) and about a day of one board's messages.
RECENT: Final = 10_000

Range = tuple[int, int]  # inclusive


@dataclass(slots=True)
class SeqSet:
    ranges: list[Range] = field(default_factory=list)  # sorted, disjoint, not adjacent
    sealed: int = 0  # seqs missing below ``sealed_to`` that are no longer tracked (counted lost)
    sealed_to: int = 0  # seqs at or below this are summarised, not tracked (0: none)

    @classmethod
    def of(cls, seqs: Iterable[int]) -> SeqSet:
        out: list[Range] = []
        for s in sorted(set(seqs)):
            if out and s == out[-1][1] + 1:
                out[-1] = (out[-1][0], s)
            else:
                out.append((s, s))
        return cls(out)

    @property
    def first(self) -> int:
        return self.ranges[0][0]

    @property
    def last(self) -> int:
        return self.ranges[-1][1]

    @property
    def received(self) -> int:
        """Distinct seqs received."""
        return sum(hi - lo + 1 for lo, hi in self.ranges) - self.sealed

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def merge(self, other: SeqSet) -> SeqSet:
        """The union (``other`` unsealed: a batch), holes sealed beyond ``MAX_RANGES``."""
        incoming = other.ranges
        if self.sealed_to:  # (0: nothing sealed; a seal always ends at a seq of 2 or more)
            incoming = [(max(lo, self.sealed_to + 1), hi) for lo, hi in incoming if hi > self.sealed_to]
        merged: list[Range] = []
        for lo, hi in sorted([*self.ranges, *(r for r in incoming if r[0] <= r[1])]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        out = SeqSet(merged, self.sealed + other.sealed, max(self.sealed_to, other.sealed_to))
        while len(out.ranges) > MAX_RANGES and out.ranges[1][1] < out.last - RECENT:
            (lo, hi), (lo2, hi2) = out.ranges[0], out.ranges[1]
            out.sealed += lo2 - hi - 1
            out.sealed_to = hi2
            out.ranges[:2] = [(lo, hi2)]
        return out

    def encode(self) -> str:
        body = ",".join(f"{lo}-{hi}" for lo, hi in self.ranges)
        return f"{self.sealed}/{self.sealed_to};{body}" if self.sealed_to else body

    @classmethod
    def decode(cls, text: str) -> SeqSet:
        sealed = sealed_to = 0
        head, sep, body = text.partition(";")
        if sep:
            s, _, t = head.partition("/")
            sealed, sealed_to = int(s), int(t)
        else:
            body = head
        ranges: list[Range] = []
        for part in body.split(","):
            if part:
                lo, _, hi = part.partition("-")
                ranges.append((int(lo), int(hi)))
        return cls(ranges, sealed, sealed_to)

    @classmethod
    def legacy(cls, first_seq: int, received: int) -> SeqSet:
        """A session counted before the seqs were kept: as many seqs as it counted, from its first.

        Its gap count carries over; which seqs were missing is unknown, so a late one is counted
        as long as it lies beyond that block.
        """
        return cls([(first_seq, first_seq + received - 1)] if received > 0 else [])
