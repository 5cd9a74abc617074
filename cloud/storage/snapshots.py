"""Snapshot JPEGs on disk, content-addressed by SHA-256 (``ab/cd/<sha>.jpg``).

Content addressing makes a redelivered or replayed snapshot a no-op and lets a motion
event refer to its picture by the hash the camera computed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class SnapshotStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.jpg"

    def thumb_path_for(self, sha256: str) -> Path:
        """Where the snapshot's thumbnail is kept once made (see :mod:`cloud.storage.thumbnails`)."""
        return self.root / "thumbs" / sha256[:2] / sha256[2:4] / f"{sha256}.jpg"

    def delete(self, sha256: str) -> bool:
        """Remove the snapshot and its thumbnail; True when the snapshot was there."""
        self.thumb_path_for(sha256).unlink(missing_ok=True)
        path = self.path_for(sha256)
        if not path.exists():
            return False
        path.unlink(missing_ok=True)
        return True

    def put(self, data: bytes) -> str:
        """Store durably (write, fsync, rename) and return the SHA-256 hex digest."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha)
        if path.exists():
            return sha
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return sha
