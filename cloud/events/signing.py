"""The server's Ed25519 key that signs evidence exports, kept outside the database.

The private key is a PEM file (PKCS#8) at ``events.signing_key_file``, created with mode
0600 (its folder 0700) the first time an export is signed. A copy of the database, or of
an export, therefore never carries it. A key is named by its fingerprint: the SHA-256 of
its 32 public key bytes, in hex; that is what the export page publishes and what
``commune-iot evidence verify --trusted-fingerprint`` compares.

Rotation (``commune-iot evidence rotate-key``) first files the old public key under
``retired/`` beside the key file, then replaces the key. An export carries the public key
that signed it, so exports made before a rotation keep verifying, and the retired keys
stay listed as the server's own. The key file is read at every signing, so a rotation
takes effect without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class PublicKey:
    pem: str
    fingerprint: str  # SHA-256 of the raw 32-byte key, hex

    @classmethod
    def of(cls, key: Ed25519PublicKey) -> PublicKey:
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(pem.decode(), fingerprint(key))

    @property
    def grouped(self) -> str:
        """The fingerprint in groups of four, for reading aloud or comparing by eye."""
        return " ".join(self.fingerprint[i : i + 4] for i in range(0, len(self.fingerprint), 4))


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def normalise_fingerprint(text: str) -> str:
    """A fingerprint as typed (spaces, colons, capitals) in the canonical lower-case hex."""
    return "".join(ch for ch in text.lower() if ch in "0123456789abcdef")


class EvidenceSigner:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file

    @property
    def retired_dir(self) -> Path:
        return self.key_file.parent / "retired"

    def sign(self, message: bytes) -> tuple[bytes, PublicKey]:
        """The signature of ``message`` and the public key that checks it."""
        key = self._load_or_create()
        return key.sign(message), PublicKey.of(key.public_key())

    def current(self) -> PublicKey:
        return PublicKey.of(self._load_or_create().public_key())

    def retired(self) -> list[PublicKey]:
        """Public keys of earlier signing keys, oldest first."""
        if not self.retired_dir.is_dir():
            return []
        files = sorted(self.retired_dir.glob("*.pub.pem"), key=lambda p: (p.stat().st_mtime, p.name))
        out = []
        for p in files:
            key = serialization.load_pem_public_key(p.read_bytes())
            if isinstance(key, Ed25519PublicKey):
                out.append(PublicKey.of(key))
        return out

    def rotate(self) -> tuple[PublicKey | None, PublicKey]:
        """File the current public key under ``retired/`` and make a new key: (old, new)."""
        old = None
        if self.key_file.exists():
            old = self.current()
            self.retired_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_new(self.retired_dir / f"{old.fingerprint}.pub.pem", old.pem.encode(), 0o644, replace=True)
        new = Ed25519PrivateKey.generate()
        _write_new(self.key_file, _private_pem(new), 0o600, replace=True)
        return old, PublicKey.of(new.public_key())

    def _load_or_create(self) -> Ed25519PrivateKey:
        if not self.key_file.exists():
            _write_new(self.key_file, _private_pem(Ed25519PrivateKey.generate()), 0o600, replace=False)
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{self.key_file} does not hold an Ed25519 private key")
        return key


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_new(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write durably with ``mode`` from the start; without ``replace`` an existing file wins
    (two processes creating the key at once end up with the same one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
