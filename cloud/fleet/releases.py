"""Published release bundles: one directory per version under ``releases.dir``.

The cloud stores and serves bundles; it cannot make or alter one that a board would
accept, because boards check the release key's signature themselves. Publishing still
checks everything a board will check (every file at its signed size and hash, and the
signature when ``releases.trusted_keys`` is set), so a broken upload is refused here and
not found out by 59 boards over 3G.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from wire.release import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SIGNATURE,
    Manifest,
    ReleaseError,
    Signatures,
    parse_manifest,
    verify,
)


@dataclass(frozen=True)
class Release:
    version: str
    created: datetime
    total_bytes: int
    files: list[str]
    key_ids: list[str]
    manifest_sha256: str
    min_previous_version: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "created": self.created,
            "total_bytes": self.total_bytes,
            "files": self.files,
            "key_ids": self.key_ids,
            "manifest_sha256": self.manifest_sha256,
            "min_previous_version": self.min_previous_version,
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read(bundle: Path, name: str) -> bytes:
    path = bundle / name
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ReleaseError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"{path}: {exc.strerror}") from None


class ReleaseStore:
    def __init__(self, directory: Path, trusted_keys: list[str]) -> None:
        self.dir = directory
        self.trusted_keys = trusted_keys

    def check(self, bundle: Path) -> tuple[Manifest, bytes, bytes]:
        """Everything a board will check, on a bundle directory; ReleaseError says what fails."""
        body, sig = _read(bundle, MANIFEST), _read(bundle, SIGNATURE)
        if self.trusted_keys:
            manifest, _ = verify(body, sig, self.trusted_keys)
        else:
            manifest = parse_manifest(body)
            try:
                Signatures.model_validate_json(sig)
            except ValueError:
                raise ReleaseError(f"{bundle / SIGNATURE} is not a signature file") from None
        for f in manifest.files:
            path = bundle / f.name
            if not path.is_file():
                raise ReleaseError(f"{path} is missing")
            if path.stat().st_size != f.size:
                raise ReleaseError(f"{path}: {path.stat().st_size} bytes, the manifest says {f.size}")
            if _sha256(path) != f.sha256:
                raise ReleaseError(f"{path}: SHA-256 differs from the manifest")
        return manifest, body, sig

    def publish(self, bundle: Path) -> Release:
        """Copy a checked bundle to ``<dir>/<version>/`` (a second publish of the same bundle is
        a no-op; a different bundle under a published version is refused: versions are final)."""
        manifest, body, _ = self.check(bundle)
        target = self.dir / manifest.version
        if target.exists():
            if (target / MANIFEST).read_bytes() == body:
                rel = self.get(manifest.version)
                assert rel is not None
                return rel
            raise ReleaseError(f"version {manifest.version} is already published with other contents")
        staging = self.dir / f".{manifest.version}.publishing"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in [f.name for f in manifest.files] + [SIGNATURE, MANIFEST]:
            shutil.copyfile(bundle / name, staging / name)
        staging.rename(target)
        rel = self.get(manifest.version)
        assert rel is not None
        return rel

    def get(self, version: str) -> Release | None:
        d = self.dir / version
        if version.startswith(".") or "/" in version or not (d / MANIFEST).is_file():
            return None
        try:
            body = (d / MANIFEST).read_bytes()
            manifest = parse_manifest(body)
            sigs = Signatures.model_validate_json((d / SIGNATURE).read_bytes())
        except (OSError, ValueError):
            return None
        return Release(
            version=manifest.version,
            created=manifest.created,
            total_bytes=manifest.total_bytes,
            files=[f.name for f in manifest.files],
            key_ids=[s.key_id for s in sigs.signatures],
            manifest_sha256=hashlib.sha256(body).hexdigest(),
            min_previous_version=manifest.min_previous_version,
        )

    def all(self) -> list[Release]:
        if not self.dir.is_dir():
            return []
        found = [self.get(d.name) for d in self.dir.iterdir() if d.is_dir()]
        return sorted((r for r in found if r is not None), key=lambda r: r.created, reverse=True)

    def file(self, version: str, name: str) -> Path | None:
        """A file a board may fetch: the manifest, its signature, or a file it lists."""
        rel = self.get(version)
        if rel is None or name not in (*rel.files, MANIFEST, SIGNATURE):
            return None
        path = self.dir / version / name
        return path if path.is_file() else None

    def manifest_json(self, version: str) -> object:
        return json.loads((self.dir / version / MANIFEST).read_bytes())
