"""Append-only, fsynced journal of line-protocol lines: the ack point and the disk spool.

Ingest acknowledges an MQTT message only after its lines are here and fsynced (group
commit: one fsync per batch of messages), so a crash of the worker, of InfluxDB or of the
machine loses nothing the broker considers delivered. A drainer sends the lines on to
InfluxDB at its own pace; while InfluxDB is down they simply accumulate. Replaying a
line twice is harmless (same series and timestamp), so the read cursor is saved without
fsync and a crash may resend the last batch.

Layout: ``<dir>/<segment:012d>.lp`` files of newline-terminated lines, and ``cursor``
(``<segment> <offset>``) pointing at the first line not yet in InfluxDB.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Batch:
    data: bytes  # newline-terminated lines, ready to POST
    lines: int
    segment: int
    end: int  # offset after the batch in ``segment``


class Journal:
    def __init__(self, directory: Path, *, segment_max_bytes: int = 64 * 1024 * 1024) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_max_bytes = segment_max_bytes
        self._lock = threading.Lock()
        segs = self._segments()
        self._r_seg, self._r_off = self._load_cursor(segs)
        self._w_seg = max(segs[-1] if segs else 0, self._r_seg)
        self._recover_tail()
        self._w_fd = os.open(self._path(self._w_seg), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._w_size = os.fstat(self._w_fd).st_size
        self._depth_lines = self._count_pending()
        self._depth_bytes = self._pending_bytes()
        self.appended_lines = 0
        self._avg_line = 256.0  # bytes per line, to size reads
        self.drained_lines = 0
        # (cumulative lines appended, monotonic time of the commit) for the ingest lag
        self._commits: collections.deque[tuple[int, float]] = collections.deque()
        # lines counted from the restored backlog on, so the backlog has an age too
        self._cum_in = self._depth_lines
        self._cum_out = 0
        if self._depth_lines:
            self._commits.append((self._cum_in, time.monotonic()))

    # ----------------------------------------------------------------------- files
    def _path(self, seg: int) -> Path:
        return self.dir / f"{seg:012d}.lp"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.lp") if p.stem.isdigit())

    def _load_cursor(self, segs: list[int]) -> tuple[int, int]:
        try:
            seg_s, off_s = (self.dir / "cursor").read_text().split()
            seg, off = int(seg_s), int(off_s)
        except (OSError, ValueError):
            return (segs[0] if segs else 0), 0
        if segs and seg < segs[0]:
            return segs[0], 0
        return seg, off

    def _recover_tail(self) -> None:
        """Cut a line torn by a crash mid-append; it was never fsynced, so never acked."""
        path = self._path(self._w_seg)
        if not path.exists():
            return
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with path.open("r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())

    def _count_pending(self) -> int:
        n = 0
        for seg in self._segments():
            if seg < self._r_seg:
                continue
            with self._path(seg).open("rb") as f:
                if seg == self._r_seg:
                    f.seek(self._r_off)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    n += chunk.count(b"\n")
        return n

    def _pending_bytes(self) -> int:
        total = 0
        for seg in self._segments():
            if seg >= self._r_seg:
                total += self._path(seg).stat().st_size - (self._r_off if seg == self._r_seg else 0)
        return total

    def _save_cursor(self) -> None:
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(f"{self._r_seg} {self._r_off}\n")
        os.replace(tmp, self.dir / "cursor")

    # ----------------------------------------------------------------------- writer
    def append(self, data: bytes, lines: int) -> None:
        """Append newline-terminated ``data`` (``lines`` lines) and fsync before returning."""
        if not data:
            return
        with self._lock:
            if self._w_size >= self.segment_max_bytes:
                os.close(self._w_fd)
                self._w_seg += 1
                self._w_fd = os.open(self._path(self._w_seg), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                self._w_size = 0
            fd = self._w_fd
            size_before = self._w_size
        view = memoryview(data)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)  # outside the lock: the drainer keeps reading meanwhile
        except OSError:
            # e.g. disk full: cut the partial batch so the caller's retry cannot glue a
            # torn line onto the next one (the batch was never acknowledged)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size_before)
            raise
        with self._lock:
            self._w_size += len(data)
            self._depth_lines += lines
            self._depth_bytes += len(data)
            self.appended_lines += lines
            self._cum_in += lines
            self._commits.append((self._cum_in, time.monotonic()))

    def close(self) -> None:
        with self._lock:
            os.close(self._w_fd)

    # ----------------------------------------------------------------------- reader
    def read_batch(self, max_lines: int, max_bytes: int = 8 * 1024 * 1024) -> Batch | None:
        """The next lines not yet drained (committed ones only), or None when empty."""
        while True:
            with self._lock:
                seg, off, w_seg = self._r_seg, self._r_off, self._w_seg
                end = self._w_size if seg == w_seg else None
            if end is None:
                end = self._path(seg).stat().st_size if self._path(seg).exists() else 0
            if off < end:
                break
            if seg >= w_seg:
                return None
            with self._lock:  # segment finished: move on and delete it
                self._r_seg, self._r_off = seg + 1, 0
                self._save_cursor()
            self._path(seg).unlink(missing_ok=True)
        # Read about what max_lines need (from the average line length seen so far),
        # not max_bytes every time: profiling showed 8 MB reads per batch dominating.
        want = min(end - off, max_bytes, max(65536, int(max_lines * self._avg_line * 1.25)))
        with self._path(seg).open("rb") as f:
            f.seek(off)
            data = f.read(want)
        count = data.count(b"\n")
        if 0 < count <= max_lines:
            cut = data.rfind(b"\n")
            self._avg_line = (cut + 1) / count
            return Batch(data[: cut + 1], count, seg, off + cut + 1)
        cut = -1
        count = 0
        pos = 0
        while count < max_lines:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            cut, pos, count = nl, nl + 1, count + 1
        if count == 0:
            if want < min(end - off, max_bytes):  # a line longer than our estimate: read more
                self._avg_line *= 4
                return self.read_batch(max_lines, max_bytes)
            raise RuntimeError(f"journal line longer than {max_bytes} bytes in {self._path(seg)}")
        return Batch(data[: cut + 1], count, seg, off + cut + 1)

    def commit_read(self, batch: Batch) -> None:
        """Mark ``batch`` as stored in InfluxDB (or deliberately dropped)."""
        with self._lock:
            self._r_seg, self._r_off = batch.segment, batch.end
            self._depth_lines -= batch.lines
            self._depth_bytes -= len(batch.data)
            self.drained_lines += batch.lines
            self._cum_out += batch.lines
            while self._commits and self._commits[0][0] <= self._cum_out:
                self._commits.popleft()
            self._save_cursor()

    # ----------------------------------------------------------------------- gauges
    @property
    def depth_lines(self) -> int:
        return self._depth_lines

    @property
    def depth_bytes(self) -> int:
        return self._depth_bytes

    def lag_s(self) -> float:
        """Age of the oldest line not yet in InfluxDB (0 when the journal is drained)."""
        with self._lock:
            if self._depth_lines <= 0 or not self._commits:
                return 0.0
            return time.monotonic() - self._commits[0][1]
