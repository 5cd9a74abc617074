"""The journal is the ack point and the disk spool: it must survive restarts and crashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloud.storage.journal import Journal


def _lines(a: int, b: int) -> bytes:
    return b"".join(f"m v={i}.0 {i}\n".encode() for i in range(a, b))


def _drain(j: Journal, max_lines: int = 1000) -> list[bytes]:
    out = []
    while (batch := j.read_batch(max_lines)) is not None:
        out.extend(batch.data.splitlines())
        j.commit_read(batch)
    return out


def test_batches_respect_max_lines_and_depth(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.append(_lines(0, 25), 25)
    assert (j.depth_lines, j.depth_bytes) == (25, len(_lines(0, 25)))
    batch = j.read_batch(10)
    assert batch is not None and batch.lines == 10 and batch.data == _lines(0, 10)
    assert j.read_batch(10) == batch  # not consumed until committed
    j.commit_read(batch)
    assert j.depth_lines == 15
    assert len(_drain(j, 10)) == 15
    assert j.depth_lines == 0 and j.depth_bytes == 0 and j.lag_s() == 0


def test_reopen_resumes_at_cursor_and_survives_torn_tail(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.append(_lines(0, 10), 10)
    batch = j.read_batch(4)
    assert batch is not None
    j.commit_read(batch)
    j.close()
    seg = next(tmp_path.glob("*.lp"))
    with seg.open("ab") as f:
        f.write(b"m v=99.0 9")  # a crash in the middle of an append that was never acked
    j2 = Journal(tmp_path)
    assert j2.depth_lines == 6
    assert _drain(j2) == _lines(4, 10).splitlines()
    j2.append(_lines(10, 12), 2)
    assert _drain(j2) == _lines(10, 12).splitlines()


def test_segments_rotate_and_are_deleted_once_drained(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_max_bytes=200)
    for i in range(0, 100, 10):
        j.append(_lines(i, i + 10), 10)
    assert len(list(tmp_path.glob("*.lp"))) > 3
    assert _drain(j, 7) == _lines(0, 100).splitlines()
    assert len(list(tmp_path.glob("*.lp"))) == 1
    j.close()
    assert Journal(tmp_path).depth_lines == 0


def test_failed_append_leaves_no_torn_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(tmp_path)
    j.append(_lines(0, 2), 2)
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cloud.storage.journal.os.write", half_then_full)
    with pytest.raises(OSError):
        j.append(_lines(2, 4), 2)
    monkeypatch.undo()
    j.append(_lines(2, 4), 2)  # the committer's retry
    assert _drain(j) == _lines(0, 4).splitlines()
