"""Thumbnails of snapshots for the event list: small, re-encoded, made once and kept on disk.

A thumbnail is 240 px wide (the list shows it 120 CSS px wide, sharp on a phone's
double-density screen), a fresh JPEG at quality 70 without the original's metadata:
a few kB, and never the full picture, which is served (and audited) only on its own.
It is made on first request from the snapshot (JPEG decoded at a reduced scale, so a
large picture costs little) and written beside the snapshots, named by the snapshot's
SHA-256; retention deletes it with its snapshot.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Final

from PIL import Image

from cloud.storage.snapshots import SnapshotStore

THUMB_WIDTH: Final = 240
QUALITY: Final = 70


def thumbnail(store: SnapshotStore, sha256: str) -> Path | None:
    """The thumbnail's file, made now if it is not there yet; None when there is no snapshot.

    Raises ``OSError`` (``PIL.UnidentifiedImageError`` included) for a snapshot that is not a
    readable image."""
    dst = store.thumb_path_for(sha256)
    if dst.exists():
        return dst
    src = store.path_for(sha256)
    if not src.exists():
        return None
    with Image.open(src) as im:
        im.draft("RGB", (THUMB_WIDTH, THUMB_WIDTH))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
        small = im.convert("RGB")
        small.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=QUALITY, optimize=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, dst)  # concurrent makers write the same bytes; the last rename wins
    return dst
