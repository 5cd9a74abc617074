"""The release key: an Ed25519 private key in a PEM file readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from wire.release import ReleaseError, key_id, public_key_text


def generate(path: Path) -> Ed25519PrivateKey:
    """Write a new private key to ``path`` (mode 0600, never overwritten) and its public key
    beside it (``<path>.pub``: one line for the boards' ``update.trusted_keys``)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ReleaseError(
            f"{path} exists; a release key is never overwritten (choose another path)"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = key.public_key()
    path.with_name(path.name + ".pub").write_text(f"{public_key_text(pub)}  # key id {key_id(pub)}\n")
    return key


def load(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"release key {path}: {exc.strerror}") from None
    if path.stat().st_mode & 0o077:
        raise ReleaseError(f"release key {path} is readable by others: chmod 600 {path}")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"release key {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"release key {path} is not an Ed25519 key")
    return key
